"""Software on the box (issue 13, item 2): `run` warns, in the launch's own round trip, when the
command's program is not on the job's PATH there; `explain` and `doctor` name a run that failed
for a missing program or module (U44) and the fix."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from local_helpers import Project


def _box_with_only_python3(make_project, tmp_path: Path) -> Project:  # type: ignore[no-untyped-def]
    """A project whose jobs see a PATH holding `python3` and nothing called `python`."""
    bin_dir = tmp_path / "box bin"  # a space: the PATH entry is used as given
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python3")
    toml = f"[targets.local]\nenv = {{ PATH = {json.dumps(str(bin_dir))} }}\n"
    project = make_project(toml=toml)
    project.write("train.py", "print('training')\n")
    return project


def test_run_warns_when_the_program_is_not_on_the_boxs_path(make_project, tmp_path):
    project = _box_with_only_python3(make_project, tmp_path)

    done = project.cli("run", "--json", "--name", "py", "--", "python", "train.py")
    (warning,) = json.loads(done.stdout)["warnings"]
    assert "`python`" in warning and "python3" in warning and "exit 127" in warning
    assert "venv" in warning and "run it with `python3`" in warning
    assert f"warning: {warning}" in done.stderr  # said on stderr too, and launched anyway
    assert project.wait_ended(json.loads(done.stdout)["run_id"])["exit_code"] == 127

    done = project.cli("run", "--name", "tr", "--", "torchrun", "--nproc-per-node=1", "t.py")
    assert "`torchrun`" in done.stderr and "(it has" not in done.stderr
    assert done.stdout.strip()  # the run id: the launch went ahead

    fine = project.cli("run", "--json", "--name", "ok", "--", "python3", "train.py")
    assert json.loads(fine.stdout)["warnings"] == []
    assert project.wait_ended(json.loads(fine.stdout)["run_id"])["state"] == "succeeded"


def test_explain_and_doctor_name_a_missing_program_and_the_fix(make_project, tmp_path):
    project = _box_with_only_python3(make_project, tmp_path)
    project.write("needs_torch.py", "import outlive_test_no_such_module  # like torch\n")
    missing = json.loads(project.cli("run", "--json", "--", "python", "train.py").stdout)
    module = json.loads(project.cli("run", "--json", "--", "python3", "needs_torch.py").stdout)

    for run_id, said in ((missing["run_id"], "could not start 'python'"),
                         (module["run_id"], "No module named")):  # fmt: skip
        st = project.wait_ended(run_id)
        assert st["state"] == "failed", st
        explained = json.loads(project.cli("explain", "--json", run_id).stdout)["matches"]
        assert explained[0]["id"] == "U44" and said in explained[0]["text"], explained
        assert "venv" in explained[0]["fix"]

        done = project.cli("doctor", "--json", run_id, rc=1)  # a FAIL shown: exit 1
        (run,) = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "run"]
        assert run["status"] == "FAIL" and "U44" in run["gotchas"], run
        assert said in run["detail"] and "venv on durable storage" in run["detail"], run
