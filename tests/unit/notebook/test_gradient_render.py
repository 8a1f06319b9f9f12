"""``outlive notebook gradient``: a valid nbformat v4 notebook whose first cell is the danger
clocks and the auto-shutdown count; its setup puts everything under
``$OUTLIVE_STORAGE_DIR/<project>/<name>``, never ``/notebooks``; the box side's margin."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from outlive.agent.box.gradient import margin_s, run, venv_path
from outlive.agent.box.notebook import STOP_JSON, time_left_s
from outlive.agent.bundle import zipapp
from outlive.notebook.cells import dumps
from outlive.notebook.common import launch_request, project_zip
from outlive.notebook.gradient import build


def _doc(**kw: object) -> nbformat.NotebookNode:
    doc = build(project="proj", name="toy", command=["python", "t.py"], code=b"PK", agent=b"PK",
                **kw)  # type: ignore[arg-type]  # fmt: skip
    return nbformat.reads(dumps(doc), as_version=4)


def _exec(source: str, cwd: Path, env: dict[str, str], *show: str) -> dict[str, object]:
    """Run cell sources in a fresh interpreter; the values of the names in ``show``."""
    tail = f"\nimport json as _j\nprint(_j.dumps({{k: globals()[k] for k in {list(show)!r}}}))\n"
    full = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")} | env
    done = subprocess.run([sys.executable, "-"], input=source + tail, cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    values: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return values


def _run(tmp_path: Path, workdir: str, **clock: float) -> tuple[str, str]:
    """The box side of a Gradient run of ``python t.py`` (no requirements) in ``workdir``: its
    state and what it said."""
    request = launch_request(
        "paperspace-notebook", name="toy", command=["python", "t.py"], env=None, target=None,
        run_id=None,
    )  # fmt: skip
    doc = dict(request, workdir=str(tmp_path / workdir), durable=str(tmp_path / "ckpt"))
    out = io.StringIO()
    state = run(doc, "agent.pyz", archive="", root=str(tmp_path), requirements="", out=out,
                **clock)  # fmt: skip
    return state, out.getvalue()


def test_notebook_is_valid_v4_with_clocks_first_and_no_keep_alive() -> None:
    nb = _doc()
    nbformat.validate(nb)
    first = nb.cells[0]
    assert first.cell_type == "code"
    assert first.source.index("free notebook auto-shutdown") < first.source.index("SHUTDOWN_S")
    assert "/storage bills until deleted" in first.source
    assert "21600.0" in first.source  # the free tier's 6 h: the default timer
    assert "colab" not in nb.metadata
    text = "\n".join(c.source for c in nb.cells)
    for trick in ("setInterval", "IPython.display.Javascript", "keep_alive", "while True"):
        assert trick not in text


def test_notebooks_dir_is_named_only_in_comments_and_prose() -> None:
    for cell in _doc().cells:
        if cell.cell_type == "code":
            for line in cell.source.splitlines():
                assert "/notebooks" not in line or line.lstrip().startswith("#"), line


def test_configured_timer_goes_into_the_clock_cell() -> None:
    assert "43200.0" in _doc(shutdown_h=12.0).cells[0].source


def test_setup_puts_code_and_records_under_storage_project_name_only(tmp_path: Path) -> None:
    storage, nbdir = tmp_path / "storage", tmp_path / "notebooks"
    storage.mkdir()
    nbdir.mkdir()
    code = project_zip(Path(__file__).parent, [Path(__file__).name])
    doc = build(project="proj", name="toy", command=["python", "t.py"], code=code,
                agent=zipapp())  # fmt: skip
    cells = nbformat.reads(dumps(doc), as_version=4).cells
    source = "\n".join(c.source for c in cells[:3] if c.cell_type == "code")  # all but the run
    env = {"OUTLIVE_STORAGE_DIR": str(storage), "OUTLIVE_GRADIENT_STARTED_AT": str(time.time())}
    got = _exec(source, nbdir, env, "WORKDIR", "CKPT_ROOT", "PROJECT_DIR", "AGENT", "CODE")
    run_dir = storage / "proj" / "toy"
    assert got["WORKDIR"] == str(run_dir) and got["PROJECT_DIR"] == str(storage / "proj")
    for key in ("CKPT_ROOT", "AGENT", "CODE"):
        assert Path(str(got[key])).is_relative_to(run_dir), got[key]
    written = [p for p in storage.rglob("*") if p.is_file()]
    assert written and all(p.is_relative_to(run_dir) for p in written)
    assert list(nbdir.iterdir()) == []


def test_clock_counts_from_the_notebook_container_start(tmp_path: Path) -> None:
    """PID 1's start is the notebook's start on Gradient; psutil reads it independently."""
    clock = _doc().cells[0].source
    got = _exec(clock, tmp_path, {"OUTLIVE_GRADIENT_SHUTDOWN_S": "1e12"}, "STARTED_AT", "_FROM")
    assert got["_FROM"] == "the notebook's start"
    assert abs(float(str(got["STARTED_AT"])) - psutil.Process(1).create_time()) < 1.0


def test_clock_counts_from_now_when_the_start_is_past_the_timer(tmp_path: Path) -> None:
    clock = _doc().cells[0].source
    began = time.time() - 3600
    env = {"OUTLIVE_GRADIENT_SHUTDOWN_S": "60", "OUTLIVE_GRADIENT_STARTED_AT": str(began)}
    got = _exec(clock, tmp_path, env, "STARTED_AT", "_FROM")
    assert str(got["_FROM"]).startswith("now")
    assert float(str(got["STARTED_AT"])) > began


def test_clock_counts_from_now_when_the_start_is_ahead_of_a_clock_set_back(tmp_path: Path) -> None:
    clock = _doc().cells[0].source
    env = {
        "OUTLIVE_GRADIENT_SHUTDOWN_S": "600",
        "OUTLIVE_GRADIENT_STARTED_AT": str(time.time() + 3600),
    }
    got = _exec(clock, tmp_path, env, "STARTED_AT", "_FROM", "_LEFT_S")
    assert str(got["_FROM"]).startswith("now") and "ahead of this clock" in str(got["_FROM"])
    assert 0 <= float(str(got["_LEFT_S"])) <= 600


def test_a_start_ahead_of_the_clock_never_gives_more_than_the_timer(tmp_path: Path) -> None:
    # one hour ahead: the clock was set back, and the timer (200 s) is within the margin of 300 s
    state, out = _run(tmp_path, "run", shutdown_s=200.0, started_at=time.time() + 3600.0,
                      margin_floor_s=300.0)  # fmt: skip
    assert state == "stopped"
    assert "auto-shutdown in 0 h 03 min" in out and "is 200 s away" in out
    assert time_left_s(200.0, 5000.0, now=1000.0) == 200.0
    assert time_left_s(200.0, 1000.0, now=5000.0) == 0.0  # past the timer: nothing left


def test_margin_is_the_floor_until_a_stop_is_measured_then_three_stops(tmp_path: Path) -> None:
    assert margin_s(str(tmp_path), 300.0) == 300.0
    (tmp_path / STOP_JSON).write_text(json.dumps({"stop_s": 200.0}))
    assert margin_s(str(tmp_path), 300.0) == 600.0
    assert margin_s(str(tmp_path), 900.0) == 900.0


@pytest.mark.parametrize("other", ["numpy==2.0\n", "numpy==1.26\n"])
def test_venv_is_named_by_its_requirements(tmp_path: Path, other: str) -> None:
    base = venv_path(str(tmp_path), "numpy==1.26\n")
    assert base.startswith(str(tmp_path / ".venv-"))
    assert (venv_path(str(tmp_path), other) == base) == (other == "numpy==1.26\n")


def test_no_attempt_starts_inside_the_margin(tmp_path: Path) -> None:
    state, out = _run(tmp_path, "run", shutdown_s=3600.0, started_at=time.time() - 3590.0,
                      margin_floor_s=60.0)  # fmt: skip
    assert state == "stopped"
    assert "inside the 60 s needed to save: not starting toy" in out
    assert not (tmp_path / "run" / ".outlive").exists() and not (tmp_path / "ckpt").exists()


def test_a_file_where_the_run_directory_goes_is_one_sentence_not_a_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "run").write_text("in the way")
    state, out = _run(tmp_path, "run/toy", shutdown_s=3600.0, started_at=time.time(),
                      margin_floor_s=60.0)  # fmt: skip
    assert state == "failed"
    said = out.splitlines()[-1]
    assert said.startswith("[outlive] cannot make the directory") and "in the way" in said
    assert (tmp_path / "run").read_text() == "in the way"
