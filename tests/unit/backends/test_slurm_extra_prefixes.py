"""Issue 12 item 9: sbatch (getopt_long) takes any unambiguous prefix of a long option and lets
short options cluster, so an ``sbatch_extra`` line may not reach an option outlive owns (the log,
the working directory, requeue) by abbreviation either; ordinary options still pass."""

from __future__ import annotations

import pytest

from outlive.backends.slurm_script import spec_for
from outlive.config import SlurmOptions
from outlive.errors import ConfigError

RUN_ID = "20260101-000000-abcdef"

REFUSED = [
    "--outp=/tmp/x",
    "--output=/tmp/x",
    "--no-requeu",
    "--no-req",
    "--err /tmp/e",
    "--chd=/",
    "--open=append",
    "-o/tmp/x",
    "-Qo /tmp/x",
    "-vD /",
    "#SBATCH --outp=/tmp/x",
]
ALLOWED = ["--exclusive", "--requeue", "--nodes=2", "--mem-per-cpu=2G", "-p debug", "--export=ALL"]


@pytest.mark.parametrize("line", REFUSED)
def test_an_abbreviated_or_clustered_reserved_option_is_refused(line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        spec_for(SlurmOptions(sbatch_extra=(line,)), RUN_ID, "n")
    text = str(caught.value)
    assert "\n" not in text and "outlive owns" in text, text


@pytest.mark.parametrize("line", ALLOWED)
def test_other_options_still_pass(line: str) -> None:
    spec = spec_for(SlurmOptions(sbatch_extra=(line,)), RUN_ID, "n")
    assert spec.extra == (line,)
