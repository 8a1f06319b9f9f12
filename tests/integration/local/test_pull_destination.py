"""Where `outlive pull --to` may land: a directory of its own. A file in the way, the
filesystem's root, the project or a directory above it, outlive's state directory and an empty
path are each refused in one sentence, exit 2, before anything is written anywhere; a new
directory, and one under the default pull root, are taken."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from local_helpers import Project


@pytest.fixture
def ended(project: Project) -> tuple[Project, str]:
    """A finished local run that saved one file in its checkpoint directory."""
    project.write(
        "save.py",
        "import os\n"
        "d = os.environ['OUTLIVE_CKPT_DIR']\n"
        "os.makedirs(d, exist_ok=True)\n"
        "open(os.path.join(d, 'w.bin'), 'wb').write(b'x' * 4096)\n",
    )
    run_id = project.python("save.py", name="dest")
    assert project.wait_ended(run_id)["state"] == "succeeded"
    return project, run_id


def _refused(project: Project, to: str) -> str:
    done = project.cli("pull", "dest", "--to", to, rc=2)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines and "Traceback" not in done.stderr, done.stderr
    return lines[-1]


def test_unsafe_destinations_are_refused_before_anything_is_written(
    ended: tuple[Project, str], tmp_path: Path
) -> None:
    project, _ = ended
    a_file = tmp_path / "a-file"
    a_file.write_bytes(b"keep me")
    before = sorted(p.name for p in project.dir.iterdir())
    state_before = sorted(p.name for p in (project.dir / ".outlive").iterdir())

    assert "is a file, not a directory" in _refused(project, str(a_file))
    assert a_file.read_bytes() == b"keep me"
    assert "filesystem's root" in _refused(project, "/")
    assert "holds the project" in _refused(project, str(project.dir))
    assert "holds the project" in _refused(project, str(project.dir.parent))
    assert "state directory" in _refused(project, str(project.dir / ".outlive"))
    assert "state directory" in _refused(project, str(project.dir / ".outlive" / "runs" / "x"))
    assert "empty path" in _refused(project, "")

    assert sorted(p.name for p in project.dir.iterdir()) == before
    assert sorted(p.name for p in (project.dir / ".outlive").iterdir()) == state_before
    assert not os.path.exists("/PULL_VERIFIED.json")


def test_a_new_directory_inside_the_project_is_taken(ended: tuple[Project, str]) -> None:
    project, run_id = ended
    done = project.cli("pull", "dest", "--to", "results/first", "--json")
    result = json.loads(done.stdout)
    assert result["ok"] and result["run_id"] == run_id
    assert (project.dir / "results" / "first" / "PULL_VERIFIED.json").is_file()
