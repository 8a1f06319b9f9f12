"""Suite-wide rules: under CI=true a skipped test is a failure, so a green CI means every
real-component test (namespaces, cgroups, sshd, Slurm) actually ran. Only tests marked ``gpu``
(they need a CUDA GPU, which no CI runner has) may skip there."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    # The one exception: a test marked ``gpu`` needs a CUDA GPU, which CI runners do not have.
    allowed = item.get_closest_marker("gpu") is not None
    if _in_ci() and report.skipped and not hasattr(report, "wasxfail") and not allowed:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is not allowed: {reason}"


@pytest.fixture(scope="session", autouse=True)
def _daemons_of_this_session(tmp_path_factory: pytest.TempPathFactory) -> Generator[None]:
    """Every `outlive status` the tests run goes through the local daemon, as a user's does; the
    daemons live in a directory of this session (not the user's own) and are stopped at the end."""
    from outlive.daemon.client import DIR_ENV, stop_all

    d = tmp_path_factory.mktemp("daemons")
    d.chmod(0o700)
    saved = os.environ.get(DIR_ENV)
    os.environ[DIR_ENV] = str(d)
    try:
        yield
    finally:
        stop_all()
        if saved is None:
            os.environ.pop(DIR_ENV, None)
        else:
            os.environ[DIR_ENV] = saved
