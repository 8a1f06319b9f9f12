"""The run page charts the box's frames of a run's progress (``progress.jsonl.bin``, written by
``progress()`` next to each JSON line): ``series.js`` decodes what the real writer wrote as the
Python reader does (key changes, text values, several processes, a line with no row, a torn
tail); where the frames stop holding the file's lines (a run begun by an older library, a
damaged frames file), the page reads the JSON lines from there; a live run is followed by its
lines after the frames, a text metric shown with the last record, not charted."""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from ui_helpers import Ui, UiProject, clean_env

import outlive.ui
from outlive import wire
from outlive.ckpt import ProgressWriter
from outlive.ckpt.frames import covered, decode
from outlive.testing import wait_until

expect.set_options(timeout=120_000)
SERIES_JS = Path(outlive.ui.__file__).with_name("static") / "series.js"

# The frames as the page reads them from a reply: series.readFrame on a framed body.
DECODE = """async b64 => {
  const body = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  let head = JSON.stringify({format: "frames", since: 0, end: null, lines_size: 0});
  const pad = " ".repeat((8 - (4 + head.length) % 8) % 8);  // as the server pads it
  head = new TextEncoder().encode(head + pad);
  const bytes = new Uint8Array(4 + head.length + body.length);
  new DataView(bytes.buffer).setUint32(0, head.length, true);
  bytes.set(head, 4); bytes.set(body, 4 + head.length);
  const got = await series.readFrame(new Response(bytes).body, () => series.columns());
  const cols = {};
  for (const [k, v] of got.cols.cols) {
    cols[k] = Array.from(v.subarray(0, got.cols.n), x => isNaN(x) ? null : x);
  }
  return {end: got.end, n: got.cols.n, cols};
}"""

RANK_JOB = """\
import sys
from outlive import progress
for i in range(200):
    progress(i, rank=int(sys.argv[1]), loss=i / 7, pad="x" * (1 + i % 50))
"""


def _write_frames(path: Path) -> None:
    """A progress file and its frames as jobs leave them: key sets that change, values that are
    not numbers, two processes appending at once, a line that has no row, a torn last frame."""
    writer = ProgressWriter(path)
    writer.write(0, {"loss": 2.0})
    writer.write(1, {"loss": float("nan"), "phase": "warmup", "ok": True})
    env = dict(clean_env(), **{wire.ENV_PROGRESS_FILE: str(path)})
    ranks = [subprocess.Popen([sys.executable, "-c", RANK_JOB, str(r)], env=env) for r in (1, 2)]
    writer.write(2, {"loss": 0.5, "lr": 1e-3})
    assert [p.wait(timeout=60) for p in ranks] == [0, 0]
    writer.write(3, {"loss": 0.25})
    writer.close()
    with path.open("ab") as f:
        f.write(b'{"step": 4, "loss": 9}\n')  # not progress()'s: no row; what follows is past it
    writer.write(5, {"loss": 0.125})
    writer.close()
    side = path.with_name(path.name + wire.PROGRESS_BIN_SUFFIX)
    row = side.read_bytes()[-(24 + 2 * 8) :]  # the last row: step and loss
    assert row[:1] == b"R"
    with side.open("ab") as f:
        f.write(row[:11])  # torn


def test_series_js_decodes_the_writers_frames_as_python_does(page: Any, tmp_path: Path) -> None:
    path = tmp_path / "progress.jsonl"
    _write_frames(path)
    data = (tmp_path / "progress.jsonl.bin").read_bytes()
    want = decode(data)
    end, kept = covered(want.rows)
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(kept) == 404 and end == sum(len(line) for line in lines[:404])  # up to the gap
    page.goto("about:blank")
    page.add_script_tag(content=SERIES_JS.read_text())
    got = page.evaluate(DECODE, base64.b64encode(data).decode())
    assert got["end"] == end and got["n"] == len(kept)
    keys = list(dict.fromkeys(k for names in want.keys.values() for k in names))
    assert sorted(got["cols"]) == sorted(keys)
    for key in keys:
        col = []
        for i in kept:  # in the lines' order
            key_id, _, _, values = want.rows[i]
            names = want.keys[key_id]
            v = values[names.index(key)] if key in names else math.nan
            col.append(None if math.isnan(v) else v)
        assert got["cols"][key] == col, key
    for i, line in zip(range(len(kept)), lines, strict=False):  # each row is its own line's
        record = json.loads(line)
        assert got["cols"]["step"][i] == record["step"]
        assert got["cols"]["loss"][i] == (record["loss"] if record["loss"] != "nan" else None)


def _finished(ui_project: UiProject, name: str, code: str) -> tuple[str, Path]:
    (ui_project.dir / f"{name}.py").write_text(code)
    done = ui_project.cli("run", "--json", "--name", name, "--", "python3", f"{name}.py")
    run_id = json.loads(done.stdout)["run_id"]
    run_dir = ui_project.dir / ".outlive" / "runs" / run_id
    wait_until(lambda: (run_dir / wire.EXIT_JSON).exists(), f"run {name} to end", 120)
    return run_id, run_dir


def _page_curve(page: Any, metric: str) -> list[float]:
    return list(page.evaluate(f"Array.from(window.outliveCharts[{metric!r}].curve.y)"))


def _file_curve(run_dir: Path, metric: str) -> list[float]:
    if not (run_dir / "progress.jsonl").exists():
        return []
    records = [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]
    return [float(r[metric]) for r in records if isinstance(r.get(metric), (int, float))]


TAKEN_OVER = f"""\
import json, os
from outlive import progress
with open(os.environ[{wire.ENV_PROGRESS_FILE!r}], "a") as f:  # an older library's line
    f.write(json.dumps({{"step": -1, "loss": 7.0}}) + "\\n")
for i in range(300):
    progress(i, loss=1 / (i + 1))
"""
WHOLE = "from outlive import progress\nfor i in range(300):\n    progress(i, loss=1 / (i + 1))\n"


def test_frames_short_of_the_lines_are_completed_from_the_lines(
    page: Any, ui: Ui, ui_project: UiProject
) -> None:
    page.goto(ui.url)
    # frames that hold none of the lines from byte 0 (the first line is not progress()'s)
    run_id, run_dir = _finished(ui_project, "taken-over", TAKEN_OVER)
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#charts")).to_have_attribute("data-points", "301")
    expect(page.locator("#charts")).to_have_attribute("data-format", "lines")
    assert _page_curve(page, "loss") == _file_curve(run_dir, "loss")
    # a damaged frames file: cut in the middle of a row, something else after it
    run_id, run_dir = _finished(ui_project, "damaged", WHOLE)
    side = run_dir / wire.PROGRESS_BIN
    size = side.stat().st_size
    with side.open("r+b") as f:
        f.truncate(size // 2 + 3)
        f.seek(0, os.SEEK_END)
        f.write(b"\x00garbage")
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#charts")).to_have_attribute("data-points", "300")
    expect(page.locator("#charts")).to_have_attribute("data-format", "frames")
    assert _page_curve(page, "loss") == _file_curve(run_dir, "loss")
    assert page.console_errors == []


FOLLOWED = """\
import os, sys, time
from outlive import progress
for i in range(200):
    progress(i, loss=1 / (i + 1))
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
for i in range(200, 450):
    progress(i, loss=1 / (i + 1), note="later")
"""


def test_a_live_run_is_followed_by_its_lines_after_the_frames(
    page: Any, ui: Ui, ui_project: UiProject
) -> None:
    (ui_project.dir / "followed.py").write_text(FOLLOWED)
    go = ui_project.dir / "go-followed"
    done = ui_project.cli(
        "run", "--json", "--name", "followed", "--", "python3", "followed.py", str(go)
    )
    run_id = json.loads(done.stdout)["run_id"]
    run_dir = ui_project.dir / ".outlive" / "runs" / run_id
    wait_until(lambda: len(_file_curve(run_dir, "loss")) == 200, "the job's first 200 records", 60)
    page.goto(ui.url)
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#charts")).to_have_attribute("data-points", "200")
    expect(page.locator("#charts")).to_have_attribute("data-format", "frames")
    go.write_text("go")
    expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#charts")).to_have_attribute("data-points", "450")
    assert _page_curve(page, "loss") == _file_curve(run_dir, "loss")
    # a metric that is text has no chart, and shows where it did: the last record's facts
    expect(page.locator('#facts dd[data-key="progress"]')).to_contain_text("note later")
    expect(page.locator('.chart[data-metric="note"]')).to_have_count(0)
    assert page.console_errors == []
