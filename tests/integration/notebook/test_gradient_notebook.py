"""The Gradient notebook on a real Jupyter kernel, ``$OUTLIVE_STORAGE_DIR`` standing in for
``/storage``: killed mid-run and executed again, bit-identical to an uninterrupted run; an
auto-shutdown a few seconds away saves before the kill and the next session resumes; the venv on
storage is created once and reused."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from nb_helpers import EXAMPLE, generate, make_project, run_notebook
from nbclient.exceptions import DeadKernelError

from outlive import wire
from outlive.ckpt.directory import committed_steps
from outlive.demo import _same_weights

STEPS = 150


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """final.npz of an uninterrupted run of the same ``--steps`` (no notebook: the weights do
    not depend on how often it saves or how long it sleeps)."""
    ckpt = tmp_path_factory.mktemp("reference")
    env = dict(os.environ, OUTLIVE_CKPT_DIR=str(ckpt))
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--steps", str(STEPS), "--step-sleep-s", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return ckpt / "final.npz"


def _command(save_every: int, sleep_s: float) -> list[str]:
    return ["python", "train_numpy.py", "--steps", str(STEPS), "--save-every", str(save_every),
            "--step-sleep-s", str(sleep_s)]  # fmt: skip


def _env(storage: Path, **extra: str) -> dict[str, str]:
    return {"OUTLIVE_STORAGE_DIR": str(storage), "OUTLIVE_GRADIENT_STARTED_AT": repr(time.time()),
            **extra}  # fmt: skip


def _generated(tmp_path: Path, save_every: int, sleep_s: float) -> tuple[Path, Path, Path]:
    """A project with a notebook ``toy`` of the toy training; (notebook, storage, ckpt dir)."""
    project = make_project(tmp_path)
    done = generate(project, "toy", _command(save_every, sleep_s), "gradient")
    assert done.returncode == 0, done.stderr
    storage = tmp_path / "storage"
    storage.mkdir()
    return project / "toy.ipynb", storage, storage / "proj" / "toy" / "checkpoints" / "toy"


def _run_dir(storage: Path, name: str = "toy") -> Path:
    (run_dir,) = (storage / "proj" / name / ".outlive" / "runs").iterdir()
    return run_dir


def test_gradient_notebook_killed_mid_run_resumes_bit_identical(
    tmp_path: Path, reference: Path
) -> None:
    notebook, storage, ckpt = _generated(tmp_path, 10, 0.02)
    project = notebook.parent
    generated = sorted((p.name, p.stat().st_mtime_ns) for p in project.rglob("*"))

    with pytest.raises(DeadKernelError):
        run_notebook(notebook, _env(storage), ckpt.parent, kill_at_step=40)
    assert not (ckpt / "final.npz").exists()
    assert 40 <= max(committed_steps(ckpt)) < STEPS
    assert not (_run_dir(storage) / "exit.json").exists()  # no signal, no exit record

    out = run_notebook(notebook, _env(storage), ckpt.parent)
    first = out.splitlines()
    assert first[0].startswith("free notebook auto-shutdown (~6 h)")  # the clocks come first
    assert any(line.startswith("/storage bills until deleted") for line in first[:5])
    assert "auto-shutdown: 6 h after $OUTLIVE_GRADIENT_STARTED_AT" in out
    assert "[outlive] auto-shutdown in 5 h 5" in out  # printed again by the resuming cell
    assert "[outlive] resuming toy (attempt 1)" in out
    assert "resumed from step " in out
    assert "[outlive] toy: succeeded" in out
    same, detail = _same_weights(reference, ckpt / "final.npz")
    assert same, detail
    # everything the run wrote is under /storage/<project>/<name>; the notebook's folder is
    # untouched (on Gradient that is /notebooks, which dies with the notebook)
    assert [p.name for p in storage.iterdir()] == ["proj"]
    assert [p.name for p in (storage / "proj").iterdir()] == ["toy"]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in project.rglob("*")) == generated

    before = sorted((p.name, p.stat().st_mtime_ns) for p in ckpt.iterdir())
    out = run_notebook(notebook, _env(storage), ckpt.parent)
    assert "[outlive] toy already ended (succeeded); nothing to do" in out
    assert sorted((p.name, p.stat().st_mtime_ns) for p in ckpt.iterdir()) == before


def test_gradient_auto_shutdown_saves_before_the_kill_then_resumes(
    tmp_path: Path, reference: Path
) -> None:
    # --save-every past the end: the only checkpoint of the first session is the one taken
    # because the auto-shutdown was near; were the kill first, nothing would be saved
    notebook, storage, ckpt = _generated(tmp_path, 10_000, 0.1)

    env = _env(storage, OUTLIVE_GRADIENT_SHUTDOWN_S="40", OUTLIVE_GRADIENT_MARGIN_S="25")
    shutdown_at = float(env["OUTLIVE_GRADIENT_STARTED_AT"]) + 40
    try:
        out = run_notebook(notebook, env, ckpt.parent, kill_at=shutdown_at)
    except DeadKernelError:
        out = ""  # the auto-shutdown came while the cell still ran: what is on storage tells
    steps = committed_steps(ckpt)
    assert len(steps) == 1 and 0 < steps[0] < STEPS, steps
    if out:
        assert "[outlive] the auto-shutdown is near: asking the job to save and stop" in out
        assert f"preempted at step {steps[0]}: saved, exiting for requeue" in out
        assert "[outlive] toy: stopped" in out
    exit_rec = json.loads((_run_dir(storage) / "exit.json").read_text())
    assert exit_rec["exit_code"] == wire.REQUEUE_EXIT
    assert (_run_dir(storage) / "notebook-stop.json").is_file()  # the next margin's measure

    out = run_notebook(notebook, _env(storage), ckpt.parent)  # the next session: a fresh clock
    assert "[outlive] resuming toy (attempt 1)" in out
    assert f"resumed from step {steps[0]}" in out
    assert "[outlive] toy: succeeded" in out
    same, detail = _same_weights(reference, ckpt / "final.npz")
    assert same, detail


def _wheel(directory: Path) -> Path:
    """A one-module wheel built by hand, so pip installs it with no index and no build step."""
    files = {
        "tinydep.py": b"VALUE = 42\n",
        "tinydep-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n",
        "tinydep-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: outlive-test\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append("tinydep-1.0.dist-info/RECORD,,")
    files["tinydep-1.0.dist-info/RECORD"] = ("\n".join(record) + "\n").encode()
    path = directory / "tinydep-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_gradient_venv_on_storage_is_created_once_and_reused(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels)
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"--no-index\n--find-links {wheels}\ntinydep==1.0\n")
    (project / "use_dep.py").write_text(
        "import sys, tinydep\nprint('tinydep', tinydep.VALUE, 'in', sys.prefix)\n"
    )
    command = ["python", "use_dep.py"]
    options = ("--requirements", str(requirements))
    for name in ("toy", "toy2"):
        done = generate(project, name, command, "gradient", options)
        assert done.returncode == 0, done.stderr
    storage = tmp_path / "storage"
    storage.mkdir()

    out = run_notebook(project / "toy.ipynb", _env(storage), storage)
    (venv,) = [p for p in (storage / "proj").glob(".venv-*") if p.is_dir()]  # not its .lock
    assert f"[outlive] installed venv {venv} in " in out
    assert "[outlive] toy: succeeded" in out
    log = (_run_dir(storage) / wire.STDOUT_LOG).read_text()
    assert f"tinydep 42 in {venv}" in log
    marker = venv / ".outlive-venv.json"
    stamp = marker.stat().st_mtime_ns

    out = run_notebook(project / "toy2.ipynb", _env(storage), storage)  # another session
    assert f"[outlive] reusing venv {venv} (first install took " in out
    assert "[outlive] installed venv" not in out
    assert "[outlive] toy2: succeeded" in out
    log = (_run_dir(storage, "toy2") / wire.STDOUT_LOG).read_text()
    assert f"tinydep 42 in {venv}" in log
    assert marker.stat().st_mtime_ns == stamp
