"""A run page's first read of its curves runs in a worker (``static/runfirst.js`` starts
``series.js`` as one, as the page opens, under the page's own CSP): the columns it posts back
are the ones the page would parse itself, lines that are not records skipped, keys that appear
late filled; a reply the worker cannot read comes back as an error, not as curves."""

from __future__ import annotations

import json
import math
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

# The worker's columns (what the page drew from) next to the page's own parse of the same URL.
SAME_AS_THE_PAGE = """async url => {
  const got = await window.outliveFirstRead;
  if (got === null || got.error !== undefined) return {got};
  const r = await fetch(url, {credentials: "same-origin"});
  const mine = await series.readFrame(r.body, () => series.columns());
  const cut = (a, n) => JSON.stringify(Array.from(a.subarray(0, n)));
  const keys = [...mine.cols.cols.keys()];
  const same = keys.every(k => {
    const i = got.keys.indexOf(k);
    return i >= 0 && cut(got.arrays[i], got.n) === cut(mine.cols.cols.get(k), mine.cols.n);
  });
  const acc = got.arrays[got.keys.indexOf("acc")];
  const loss = got.arrays[got.keys.indexOf("loss")];
  return {n: got.n, mine: mine.cols.n, keys: got.keys, same, format: got.head.format,
          accFirst: acc[0], accLate: acc[got.n - 1], lossOdd: loss[7], lossTwo: loss[2]};
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
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
    expect(page.locator("#charts")).to_have_attribute("data-points", str(RECORDS))
    url = f"/api/run/{run_id}/progress?since=0"
    got: dict[str, Any] = page.evaluate(SAME_AS_THE_PAGE, url)
    assert got.get("got", True) is not None, "no worker: the page read the file itself"
    assert "got" not in got, got
    assert got["n"] == got["mine"] == RECORDS and got["same"] is True
    assert got["format"] == "lines"  # the server had not parsed them yet: the worker did
    assert {"step", "loss", "acc", "note"} <= set(got["keys"])
    assert math.isnan(got["accFirst"]) and got["accLate"] == (RECORDS - 1) / RECORDS  # filled
    assert math.isnan(got["lossOdd"]) and got["lossTwo"] == 1 / 3
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
