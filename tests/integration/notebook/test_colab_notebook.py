"""The Colab notebook on a real Jupyter kernel: killed mid-run as a disconnect does, executed
again, and its result bit-identical to an uninterrupted run; a third execution does no work."""

from __future__ import annotations

from pathlib import Path

import pytest
from nb_helpers import COMMAND, execute, generate, make_project, run_notebook
from nbclient.exceptions import CellExecutionError, DeadKernelError

from outlive.ckpt.directory import committed_steps
from outlive.demo import _same_weights


def _run_dir(drive: Path) -> Path:
    (run_dir,) = (drive / "proj" / ".outlive" / "runs").iterdir()
    return run_dir


def test_colab_notebook_killed_mid_run_resumes_bit_identical(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    done = generate(project, "toy", COMMAND)
    assert done.returncode == 0, done.stderr
    notebook = project / "toy.ipynb"
    reference, drive = tmp_path / "drive-ref", tmp_path / "drive"

    out = execute(notebook, reference)
    assert "[outlive] toy: succeeded" in out
    assert "maximum VM lifetime" in out.splitlines()[1]  # danger clocks come first

    with pytest.raises(DeadKernelError):
        execute(notebook, drive, kill_at_step=40)
    ckpt = drive / "proj" / "checkpoints" / "toy"
    assert not (ckpt / "final.npz").exists()
    assert 40 <= max(committed_steps(ckpt)) < 120
    assert not (_run_dir(drive) / "exit.json").exists()  # no signal, no exit record (NB5)

    out = execute(notebook, drive)
    assert "[outlive] resuming toy (attempt 1)" in out
    assert "resumed from step " in out
    assert "[outlive] heartbeat: step" in out
    assert "[outlive] toy: succeeded" in out
    same, detail = _same_weights(
        reference / "proj" / "checkpoints" / "toy" / "final.npz", ckpt / "final.npz"
    )
    assert same, detail

    before = sorted((p.name, p.stat().st_mtime_ns) for p in ckpt.iterdir())
    out = execute(notebook, drive)
    assert "[outlive] toy already ended (succeeded); nothing to do" in out
    assert sorted((p.name, p.stat().st_mtime_ns) for p in ckpt.iterdir()) == before
    assert sorted(p.name for p in (_run_dir(drive) / "attempts").iterdir()) == ["0"]


def test_a_drive_that_is_not_there_stops_the_setup_and_makes_nothing(tmp_path: Path) -> None:
    """Drive not mounted (or $OUTLIVE_DRIVE_DIR mistyped): a directory made there would be the
    VM's own disk, and the checkpoints would die with the session while looking saved (NB4).
    The setup cell says so and writes nothing; the run cell never starts."""
    project = make_project(tmp_path)
    done = generate(project, "toy", COMMAND)
    assert done.returncode == 0, done.stderr
    missing = tmp_path / "not-mounted" / "MyDrive"
    (tmp_path / "vm-tmp").mkdir()
    env = {"OUTLIVE_DRIVE_DIR": str(missing), "TMPDIR": str(tmp_path / "vm-tmp")}
    with pytest.raises(CellExecutionError) as failed:
        run_notebook(project / "toy.ipynb", env, missing / "proj" / "checkpoints")
    assert f"{missing} is not a directory" in str(failed.value)
    assert "mount Drive" in str(failed.value)
    assert not (tmp_path / "not-mounted").exists()
