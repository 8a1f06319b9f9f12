"""A run page's first read of an older run's curves (JSON lines, no frames: ODD_JOB writes the
lines itself) runs in a worker once the server knows the run has no frames
(``static/runfirst.js`` starts ``series.js`` as one, as the page opens, under the page's own
CSP): the columns it posts back
are the ones the page would parse itself, lines that are not records skipped, keys that appear
late filled, the first records' keys told early (charts made meanwhile, one holding no
number dropped); a reply the worker cannot read comes back as an error, not as curves."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import expect
from ui_helpers import Ui, UiProject

from outlive import wire
from outlive.testing import wait_until

expect.set_options(timeout=120_000)
RECORDS = 3000
ODD_JOB = f"""\
import json, os
with open(os.environ[{wire.ENV_PROGRESS_FILE!r}], "a", encoding="utf-8") as f:
    for i in range({RECORDS}):
        rec = {{"step": i, "loss": 1 / (i + 1), "note": "é€😀"}}
        if i >= {RECORDS // 2}:
            rec["acc"] = i / {RECORDS}  # a key that appears late
        if i % 500 == 7:
            rec["loss"] = "nan?"  # not a number: no point
        f.write(json.dumps(rec) + "\\n")
        if i % 700 == 3:  # lines that are not records
            f.write("not a record\\n[1, 2]\\nnull\\n\\n")
"""

# The curves the page drew from the worker's columns next to the page's own parse of the same
# URL; the worker's reply times (runfirst.js marks them only when a worker replied).
SAME_AS_THE_PAGE = """async url => {
  const r = await fetch(url, {credentials: "same-origin"});
  const mine = await series.readFrame(r.body, () => series.columns());
  const out = {worker: performance.getEntriesByName("progress-received").length, curves: {}};
  const same = (a, b) => JSON.stringify(Array.from(a)) === JSON.stringify(Array.from(b));
  for (const [key, u] of Object.entries(window.outliveCharts)) {
    const cv = series.curve(mine.cols, "step", key);
    const both = same(u.curve.x, cv.x) && same(u.curve.y, cv.y);
    out.curves[key] = {points: u.curve.x.length, same: both};
  }
  return out;
}"""

WORKER_ERROR = """url => new Promise(done => {
  const w = new Worker("/static/series.js");
  w.onmessage = e => { w.terminate(); done(e.data); };
  w.onerror = e => { w.terminate(); done({failed: String(e.message)}); };
  w.postMessage({url});
})"""


def test_the_first_read_in_a_worker_gives_the_columns_the_page_parses(
    page: Any, ui: Ui, ui_project: UiProject
) -> None:
    (ui_project.dir / "odd.py").write_text(ODD_JOB)
    done = ui_project.cli("run", "--json", "--name", "odd", "--", "python3", "odd.py")
    run_id = json.loads(done.stdout)["run_id"]
    run_dir = ui_project.dir / ".outlive" / "runs" / run_id
    wait_until(lambda: (run_dir / "exit.json").exists(), "the run to end", 60)
    page.goto(ui.url)

    def worker_page() -> bool:  # the server has looked for frames of the run, found none
        html = page.request.get(f"{ui.base}/run/{run_id}").text()
        return '<script src="/static/runfirst.js"></script>' in html

    wait_until(worker_page, "the server to know the run has lines and no frames", 60)
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#charts")).to_have_attribute("data-points", str(RECORDS))
    expect(page.locator("#charts")).to_have_attribute("data-format", "lines")  # not parsed yet
    url = f"/api/run/{run_id}/progress?since=0"
    got: dict[str, Any] = page.evaluate(SAME_AS_THE_PAGE, url)
    assert got["worker"] == 1, "no worker: the page read the file itself"
    odd = len(range(7, RECORDS, 500))  # records whose loss is not a number
    assert got["curves"] == {
        "loss": {"points": RECORDS - odd, "same": True},
        "acc": {"points": RECORDS - RECORDS // 2, "same": True},  # the key that came late
    }
    # The first records' keys came before the rest and made charts early; "note" (text only)
    # had one made for it, dropped once the records showed it holds no number.
    assert page.evaluate("window.outliveFirstKeys")[:3] == ["step", "loss", "note"]
    expect(page.locator("#charts .chart")).to_have_count(2)
    expect(page.locator('#charts .chart[data-metric="note"]')).to_have_count(0)
    assert page.console_errors == []  # the page's CSP let the worker run and fetch


def test_a_reply_the_worker_cannot_read_comes_back_as_an_error(
    page: Any, ui: Ui, ui_project: UiProject
) -> None:
    page.goto(ui.url)
    missing = page.evaluate(WORKER_ERROR, "/api/run/no-such-run/progress?since=0")
    assert "error" in missing and "no-such-run" in missing["error"]
    # a reply that is not a progress frame (the board's JSON): an error, no columns
    odd = page.evaluate(WORKER_ERROR, "/api/board")
    assert set(odd) == {"error"}
