"""Dashboard speed in the real browser: the board's first paint with 1,000 runs, and a run page
with 100,000 metric points until its curves are painted -- its first open (a new `outlive ui`,
a new browser context) apart from later ones -- and a zoom on them; next to the CLI's
`outlive status` of the same registry (the peer: what a user runs instead of opening the page).

    python bench/ui.py [--quick]

The 1,000 runs are real run directories on the `local` target (one finished run, cloned), so
the live look behind the board probes them all; the 100k-point run is a real job that called
`progress()` 100,000 times. Times come from the page's own performance marks (navigation start
to the frame after the rows / curves are drawn), in the system Chromium driven by Playwright;
each figure is the median of several tries, printed with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, median, result_line

from outlive.store import RunRecord, Store
from outlive.ui.auth import COOKIE

CHROMIUM = "/usr/bin/chromium"
RUNS = 1000
POINTS = 100_000
BIG_JOB = (
    "import math\n"
    "from outlive import progress\n"
    f"for i in range({POINTS}):\n"
    "    loss = math.exp(-i / 20000) + 0.001 * (i % 17)\n"
    "    progress(i, loss=loss, lr=3e-4, throughput=900.0 + i % 50)\n"
)


def cli(proj: Path, *args: str) -> str:
    return subprocess.run(
        [OUTLIVE, *args], cwd=proj, capture_output=True, text=True, check=True
    ).stdout


def wait_ended(proj: Path, run_id: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        st = json.loads(cli(proj, "status", "--json", run_id))["runs"][0]
        if st["state"] not in ("pending", "running"):
            if st["state"] != "succeeded":
                raise RuntimeError(f"run {run_id} ended {st['state']}")
            return
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} did not end")


def make_project() -> tuple[Path, str, str]:
    """A project holding RUNS runs on `local`: one with POINTS progress records, the rest
    clones of a small finished run. Returns the project, the big run's id and the small one's."""
    proj = Path(tempfile.mkdtemp(prefix="outlive-bench-ui-"))
    (proj / "outlive.toml").write_text("")
    (proj / "big.py").write_text(BIG_JOB)
    (proj / "small.py").write_text("from outlive import progress\nprogress(7, loss=0.5)\n")
    big = json.loads(cli(proj, "run", "--json", "--name", "big", "--", sys.executable, "big.py"))
    small = json.loads(cli(proj, "run", "--json", "--name", "s", "--", sys.executable, "small.py"))
    wait_ended(proj, small["run_id"])
    wait_ended(proj, big["run_id"])
    runs_dir = proj / ".outlive" / "runs"
    src = runs_dir / small["run_id"]
    store = Store(proj / ".outlive")
    base = next(r for r in store.all() if r.run_id == small["run_id"])
    for i in range(RUNS - 2):
        run_id = f"{small['run_id']}-c{i:04d}"
        name = f"sweep-{i:04d}"
        dst = runs_dir / run_id
        shutil.copytree(src, dst)
        spec = json.loads((dst / "run.json").read_text())
        spec.update(run_id=run_id, name=name)
        (dst / "run.json").write_text(json.dumps(spec))
        store.add(
            RunRecord(
                run_id=run_id,
                name=name,
                target="local",
                command=base.command,
                run_dir=str(dst),
                ckpt_dir=base.ckpt_dir,
                created_at=base.created_at + i,
                state="succeeded",
            )
        )
    return proj, str(big["run_id"]), str(small["run_id"])


def start_ui(proj: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [OUTLIVE, "ui", "--json", "--no-browser"],
        cwd=proj,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())["url"]


def stop_ui(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait()


def mark(page: Any, name: str) -> float:
    page.wait_for_function(f"performance.getEntriesByName({name!r}).length > 0", timeout=120_000)
    return float(page.evaluate(f"performance.getEntriesByName({name!r})[0].startTime"))


def fetched_ms(page: Any, part: str, when: str = "responseEnd") -> float:
    """When the page had the whole response of the request whose URL holds ``part`` (or,
    with ``when="responseStart"``, its first byte). The run page's first read of its progress
    is made by a worker (static/runfirst.js): its times come as the page's marks."""
    js = "([p, w]) => performance.getEntriesByType('resource').find(e => e.name.includes(p))?.[w]"
    got = page.evaluate(js, [part, when])
    if got is None and part.startswith("/progress"):
        return mark(page, {"responseStart": "progress-begins"}.get(when, "progress-received"))
    return float(got)


def fresh_tab(browser: Any, url: str) -> tuple[Any, Any]:
    """A new browser context (nothing cached) holding the cookie the URL's token buys, on no
    page yet (no board open: its live looks would compete with what is measured)."""
    base, token = url.split("/?", 1)[0], url.split("token=", 1)[1]
    # bypass_csp: wait_for_function evaluates string predicates (the page needs no eval)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    context.add_cookies([{"name": COOKIE, "value": token, "url": base}])
    return context, context.new_page()


def board_paint_ms(page: Any, base: str) -> dict[str, float]:
    """Navigation start -> the first screenful of rows painted, and what came before it (the
    page, the board's data, its script) and after (all RUNS rows in the page). Each load is a
    new document in the same tab, as when a user opens or reloads the board."""
    page.goto(base + "/")
    page.wait_for_function(
        f"document.querySelectorAll('#board tbody tr').length >= {RUNS}", timeout=120_000
    )
    return {
        "painted": mark(page, "board-painted"),
        "html": float(page.evaluate("performance.getEntriesByType('navigation')[0].responseEnd")),
        "data": fetched_ms(page, "/api/board"),
        "script": fetched_ms(page, "/static/board.js"),
        "rendered": mark(page, "board-rendered"),
        "complete": mark(page, "board-complete"),
    }


def run_page_ms(page: Any, base: str, run_id: str) -> dict[str, float]:
    """Navigation start -> the frame after the curves are drawn (when the progress bytes had
    arrived, and when the charts were handed their data), and one zoom until it is painted."""
    page.goto(f"{base}/run/{run_id}")
    page.wait_for_function(
        f"document.getElementById('charts').dataset.points === '{POINTS}'", timeout=120_000
    )
    times = {
        "painted": mark(page, "charts-painted"),
        "progress_start": fetched_ms(page, "/progress?since=0", "responseStart"),
        "progress": fetched_ms(page, "/progress?since=0"),
        "decoded": mark(page, "progress-decoded"),
        "rendered": mark(page, "charts-rendered"),
    }
    times["zoom"] = float(
        page.evaluate(
            """() => new Promise(done => {
            const u = window.outliveCharts.loss, t0 = performance.now();
            u.setScale("x", {min: 40000, max: 50000});
            requestAnimationFrame(() => setTimeout(() => done(performance.now() - t0), 0));
        })"""
        )
    )
    return times


def first_opens(
    browser: Any, proj: Path, run_id: str, other: str, reps: int
) -> list[dict[str, float]]:
    """The first open of the run page: each try a new `outlive ui` that has read nothing of
    this run yet (it has served another run's progress: its modules are imported) and a new
    browser context (nothing cached)."""
    out = []
    for _ in range(reps):
        proc, url = start_ui(proj)
        try:
            context, tab = fresh_tab(browser, url)
            base = url.split("/?", 1)[0]
            assert tab.request.get(f"{base}/api/run/{other}/progress?since=0").ok
            out.append(run_page_ms(tab, base, run_id))
            context.close()
        finally:
            stop_ui(proc)
    return out


def warm_opens(browser: Any, url: str, run_id: str, reps: int) -> list[dict[str, float]]:
    """Opens once the server holds the run's progress as columns (made in the background a
    second after the first open: from the box's frames, or, for a run without them, by parsing
    its lines): each in a new browser context."""
    from outlive.testing import wait_until

    base = url.split("/?", 1)[0]

    def held_served() -> bool:
        context, tab = fresh_tab(browser, url)
        run_page_ms(tab, base, run_id)
        form = tab.locator("#charts").get_attribute("data-format")
        context.close()
        return form == "columns"

    wait_until(held_served, "the server's columns of the run", 300, interval_s=1.0)
    out = []
    for _ in range(reps):
        context, tab = fresh_tab(browser, url)
        out.append(run_page_ms(tab, base, run_id))
        context.close()
    return out


def cli_status_s(proj: Path, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        cli(proj, "status")
        times.append(time.perf_counter() - t0)
    return median(times)


def med(tries: list[dict[str, float]], key: str) -> float:
    return round(median([t[key] for t in tries]), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="5 tries of each (~1 min after setup)")
    args = ap.parse_args()
    reps = 5 if args.quick else 9
    from playwright.sync_api import sync_playwright

    load_start = os.getloadavg()
    proj, big, small = make_project()
    cli(proj, "status")  # the registry settles and the daemon warms, as after any look
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            first = first_opens(browser, proj, big, small, reps)
            proc, url = start_ui(proj)
            try:
                context, tab = fresh_tab(browser, url)
                board = [board_paint_ms(tab, url.split("/?", 1)[0]) for _ in range(reps)]
                context.close()
                warm = warm_opens(browser, url, big, reps)
            finally:
                stop_ui(proc)
            browser.close()
        status_s = cli_status_s(proj, reps)
    finally:
        shutil.rmtree(proj, ignore_errors=True)
    load_end = os.getloadavg()

    figures = {
        "board_first_paint_ms_1000_runs": med(board, "painted"),
        "board_all_rows_ms_1000_runs": med(board, "complete"),
        "run_page_100k_points_first_open_ms": med(first, "painted"),
        "run_page_100k_points_ms": med(warm, "painted"),
        "zoom_100k_points_ms": round(median([t["zoom"] for t in first + warm]), 1),
        "cli_status_1000_runs_ms": round(status_s * 1000, 1),
        "load_avg_1min_start": round(load_start[0], 2),
        "load_avg_1min_end": round(load_end[0], 2),
    }
    ratios = {
        "board_first_paint_vs_cli_status": round(
            figures["board_first_paint_ms_1000_runs"] / figures["cli_status_1000_runs_ms"], 2
        ),
    }
    goals = {
        "board_first_paint_1000_runs_le_300_ms": figures["board_first_paint_ms_1000_runs"] <= 300,
        # the very first open: a new `outlive ui` reads the 9 MB progress file from the box
        "run_page_100k_points_first_open_le_500_ms": (
            figures["run_page_100k_points_first_open_ms"] <= 500
        ),
        # any later open (the server holds the file's lines), in a new browser context
        "run_page_100k_points_interactive_le_500_ms": figures["run_page_100k_points_ms"] <= 500,
    }
    rows = [
        ("board: navigation -> page received", med(board, "html")),
        ("board: navigation -> board data received", med(board, "data")),
        ("board: navigation -> board.js received", med(board, "script")),
        ("board: navigation -> first rows in the page", med(board, "rendered")),
        ("board: navigation -> first rows painted", figures["board_first_paint_ms_1000_runs"]),
        ("board: navigation -> all 1,000 rows in the page", figures["board_all_rows_ms_1000_runs"]),
        ("run page, first open: navigation -> progress reply begins", med(first, "progress_start")),
        ("run page, first open: navigation -> progress received", med(first, "progress")),
        ("run page, first open: navigation -> progress in columns", med(first, "decoded")),
        ("run page, first open: navigation -> charts given data", med(first, "rendered")),
        ("run page, first open: navigation -> curves painted", med(first, "painted")),
        ("run page, warm server: navigation -> progress reply begins", med(warm, "progress_start")),
        ("run page, warm server: navigation -> progress received", med(warm, "progress")),
        ("run page, warm server: navigation -> progress in columns", med(warm, "decoded")),
        ("run page, warm server: navigation -> charts given data", med(warm, "rendered")),
        ("run page, warm server: navigation -> curves painted", med(warm, "painted")),
        ("zoom on 100k points -> painted", figures["zoom_100k_points_ms"]),
        ("peer: outlive status (same 1,000 runs, warm daemon)", status_s * 1000),
    ]
    print(f"outlive ui with {RUNS} runs and a {POINTS}-point run, median of {reps} tries")
    print(f"load average (1, 5, 15 min): start {load_start}, end {load_end}")
    for what, ms in rows:
        print(f"{what:58}  {ms:8.1f} ms")
    print(result_line("ui", figures, ratios, goals))


if __name__ == "__main__":
    main()
