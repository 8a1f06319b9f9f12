"""An SSH transport to a made-up host; building its argv never starts ssh."""

from __future__ import annotations

import pytest

from outlive.config import Connection, JobPolicy, Placement, Target
from outlive.transport.ssh import SshTransport


@pytest.fixture
def ssh_transport() -> SshTransport:
    """``ssh_config`` holds a space and a quote: each ssh argument must stay one word."""
    connection = Connection(transport="ssh", host="gpu-box", ssh_config="/tmp/my cfg/it's")
    return SshTransport(
        Target(
            name="gpu",
            profile="generic-ssh",
            kind="ssh",
            backend="process",
            connection=connection,
            placement=Placement(workdir="/w", durable="/w/.outlive/durable"),
            policy=JobPolicy(),
        )
    )
