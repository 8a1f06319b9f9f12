"""The curves of a long run stay truthful when the page draws fewer points than the file holds:
a one-point spike among 100,000 records is in what the chart plots, a zoom plots every record of
its range exactly as written, and a double-click gives the whole run back. ``series.js`` on its
own, in the same browser: lines that are not records, keys that appear late, repeated steps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect
from ui_helpers import Ui, UiProject

import outlive.ui
from outlive.testing import wait_until

expect.set_options(timeout=120_000)
POINTS = 100_000
UP_AT, DOWN_AT = 61_803, 33_333
SPIKE_JOB = f"""\
from outlive import progress
for i in range({POINTS}):
    loss = 50.0 if i == {UP_AT} else 1.0 + 0.001 * (i % 7)
    acc = -7.0 if i == {DOWN_AT} else 0.5 + 0.0001 * (i % 11)
    progress(i, loss=loss, acc=acc)
"""
SERIES_JS = Path(outlive.ui.__file__).with_name("static") / "series.js"
AFTER_PAINT = "new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)))"


def _plotted(page: Any, metric: str) -> list[list[float]]:
    data: list[list[float]] = page.evaluate(
        f"async m => {{ await {AFTER_PAINT}; const u = window.outliveCharts[m]; "
        "return [Array.from(u.data[0]), Array.from(u.data[1])]; }",
        metric,
    )
    return data


def _zoom(page: Any, metric: str, lo: float, hi: float) -> None:
    page.evaluate(
        "([m, lo, hi]) => window.outliveCharts[m].setScale('x', {min: lo, max: hi})",
        [metric, lo, hi],
    )


def _spike_and_zoom_hold(page: Any, records: list[dict[str, Any]]) -> None:
    expect(page.locator("#charts")).to_have_attribute("data-points", str(POINTS))
    xs, ys = _plotted(page, "loss")
    assert len(xs) < POINTS // 10  # drawn decimated ...
    assert max(ys) == 50.0 and xs[ys.index(50.0)] == UP_AT  # ... with the spike where it is
    assert min(ys) == 1.0 and xs[0] == 0 and xs[-1] == POINTS - 1
    xs, ys = _plotted(page, "acc")
    assert min(ys) == -7.0 and xs[ys.index(-7.0)] == DOWN_AT  # a dip is kept as well
    chart = page.locator('.chart[data-metric="loss"]')
    expect(chart).to_have_attribute("data-points", str(POINTS))
    expect(chart).to_have_attribute("data-plotted", str(len(_plotted(page, "loss")[0])))

    lo, hi = UP_AT - 100, UP_AT + 100
    _zoom(page, "loss", lo, hi)
    xs, ys = _plotted(page, "loss")
    # every record of the range as written, and one beyond each end (the line meets the frame)
    want = [(float(r["step"]), float(r["loss"])) for r in records if lo - 1 <= r["step"] <= hi + 1]
    assert list(zip(xs, ys, strict=True)) == want
    expect(chart).to_have_attribute("data-plotted", str(len(want)))
    y_max = page.evaluate("window.outliveCharts.loss.scales.y.max")
    assert y_max >= 50.0  # the y axis follows the zoomed data: the spike is inside the frame

    page.locator('.chart[data-metric="loss"] .u-over').dblclick()
    xs, ys = _plotted(page, "loss")
    assert xs[0] == 0 and xs[-1] == POINTS - 1 and max(ys) == 50.0
    assert page.console_errors == []


def _spike_run(ui_project: UiProject, name: str) -> tuple[str, Path]:
    (ui_project.dir / "spike.py").write_text(SPIKE_JOB)
    done = ui_project.cli("run", "--json", "--name", name, "--", "python3", "spike.py")
    run_id = json.loads(done.stdout)["run_id"]

    def ended() -> bool:
        doc = json.loads(ui_project.cli("status", "--json", run_id).stdout)
        return bool(doc["runs"][0]["state"] == "succeeded")

    wait_until(ended, f"run {name} to succeed", 120)
    return run_id, ui_project.dir / ".outlive" / "runs" / run_id


def _records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "progress.jsonl").read_text().splitlines()]


def test_a_spike_in_100k_points_is_plotted_and_a_zoom_plots_every_record(
    page: Any, ui: Ui, ui_project: UiProject
) -> None:
    run_id, run_dir = _spike_run(ui_project, "spike")
    page.goto(ui.url)
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#charts")).to_have_attribute("data-points", str(POINTS))
    records = _records(run_dir)
    assert len(records) == POINTS  # the run ended before the page read the file
    # the first open: the box's frames of the records, decoded in the page
    expect(page.locator("#charts")).to_have_attribute("data-format", "frames")
    _spike_and_zoom_hold(page, records)
    _reopened_with_columns(page)  # the server made columns of the frames it sent
    _spike_and_zoom_hold(page, records)


def test_an_older_runs_lines_are_parsed_in_the_page_then_served_as_columns(
    page: Any, ui: Ui, ui_project: UiProject
) -> None:
    run_id, run_dir = _spike_run(ui_project, "older")
    (run_dir / "progress.jsonl.bin").unlink()  # a run whose library wrote no frames
    page.goto(ui.url)
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#charts")).to_have_attribute("data-points", str(POINTS))
    records = _records(run_dir)
    expect(page.locator("#charts")).to_have_attribute("data-format", "lines")
    _spike_and_zoom_hold(page, records)
    _reopened_with_columns(page)  # the server has parsed the lines it sent
    _spike_and_zoom_hold(page, records)


def _reopened_with_columns(page: Any) -> None:
    def columns() -> bool:
        page.reload()
        expect(page.locator("#charts")).to_have_attribute("data-points", str(POINTS))
        return page.locator("#charts").get_attribute("data-format") == "columns"

    wait_until(columns, "a later open getting the server's columns", 120)


def _series(page: Any, script: str) -> Any:
    page.goto("about:blank")
    page.add_script_tag(content=SERIES_JS.read_text())
    return page.evaluate(script)


def test_series_js_skips_lines_that_are_not_records_and_fills_late_keys(page: Any) -> None:
    got = _series(
        page,
        """() => {
        const c = series.columns();
        const first = '{"step":0,"loss":2}\\nnot json\\n[1]\\n{"step":1,"loss":"x"}\\n';
        series.append(c, series.parse(first));
        series.append(c, series.parse('{"step":2,"loss":1.5,"lr":0.1}\\n\\n'));
        const col = k => Array.from(c.cols.get(k).subarray(0, c.n), v => isNaN(v) ? null : v);
        return {n: c.n, step: col("step"), loss: col("loss"), lr: col("lr")};
    }""",
    )
    assert got == {
        "n": 3,
        "step": [0, 1, 2],
        "loss": [2, None, 1.5],  # text is no point
        "lr": [None, None, 0.1],  # a key first seen in a later record
    }


def test_series_js_orders_a_resumed_run_by_step_and_keeps_few_points_whole(page: Any) -> None:
    got = _series(
        page,
        """() => {
        const c = series.columns();
        const lines = [0, 1, 2, 3, 2, 3, 4].map((s, i) => JSON.stringify({step: s, loss: i}));
        series.append(c, series.parse(lines.join("\\n") + "\\n"));
        const cv = series.curve(c, "step", "loss");
        return {x: Array.from(cv.x), y: Array.from(cv.y), view: series.view(cv, 1, 3, 800)};
    }""",
    )
    assert got["x"] == [0, 1, 2, 2, 3, 3, 4]
    assert got["y"] == [0, 1, 2, 4, 3, 5, 6]  # a repeated step keeps the file's order
    assert got["view"] == [[0, 1, 2, 2, 3, 3, 4], [0, 1, 2, 4, 3, 5, 6]]


def test_series_js_reads_a_reply_cut_anywhere_as_it_arrives(page: Any) -> None:
    """The run page parses the lines while the rest of the reply is on its way: however the
    reply is cut into chunks (inside the header, a line, a character of several bytes), every
    record comes out once and as written; the server's columns read back in place."""
    got = _series(
        page,
        """async () => {
        const enc = new TextEncoder();
        const frame = (head, body) => {  // what the server sends: progress.py's _frame
          let raw = enc.encode(JSON.stringify(head));
          const pad = (8 - (4 + raw.length) % 8) % 8;
          raw = enc.encode(JSON.stringify(head) + " ".repeat(pad));
          const out = new Uint8Array(4 + raw.length + body.length);
          new DataView(out.buffer).setUint32(0, raw.length, true);
          out.set(raw, 4); out.set(body, 4 + raw.length);
          return out;
        };
        const stream = (bytes, cuts) => new ReadableStream({start(c) {
          let at = 0;
          for (const cut of [...cuts, bytes.length]) { c.enqueue(bytes.slice(at, cut)); at = cut; }
          c.close();
        }});
        const lines = [];
        for (let i = 0; i < 500; i++) {
          lines.push(JSON.stringify({step: i, loss: 1 / (i + 1), note: "é€😀"}));
        }
        lines.push("not a record");
        const body = enc.encode(lines.join("\\n") + "\\n");
        const bytes = frame({format: "lines", since: 0, end: body.length, complete: true}, body);
        const want = JSON.stringify(lines.slice(0, 500).map(l => JSON.parse(l).loss));
        const results = [];
        let seed = 7;
        for (let t = 0; t < 40; t++) {
          const cuts = [];
          for (let at = 0; at < bytes.length;) {
            seed = (seed * 1103515245 + 12345) % 2147483648;
            at += 1 + seed % (t < 20 ? 13 : 4000);
            if (at < bytes.length) cuts.push(at);
          }
          const got = await series.readFrame(stream(bytes, cuts), () => series.columns());
          const loss = Array.from(got.cols.cols.get("loss").subarray(0, got.cols.n));
          const same = JSON.stringify(loss) === want;
          results.push(got.cols.n === 500 && same && got.head.end === body.length);
        }
        const col = new Float64Array([0, 1, 2, 0.5, 0.25, 0.125]);
        const chead = {format: "columns", n: 3, keys: ["step", "loss"]};
        const cbytes = frame(chead, new Uint8Array(col.buffer));
        const c = await series.readFrame(stream(cbytes, [1, 5, 17, 30]), () => null);
        const col2 = k => Array.from(c.cols.cols.get(k));
        return {lines: results, step: col2("step"), loss: col2("loss")};
    }""",
    )
    assert got["lines"] == [True] * 40
    assert got["step"] == [0, 1, 2] and got["loss"] == [0.5, 0.25, 0.125]
