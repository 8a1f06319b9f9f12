"""A run page in a real browser: every record of the progress file on the curves, the log
followed as text, the exit record, checkpoints and their verified pull, explain's matches linked
to the catalog; cancel only after a confirmation and with the CSRF token."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect
from ui_helpers import OUTLIVE, Ui, UiProject, progress_lines, save_screenshot

import outlive.examples.train_numpy as train_numpy

expect.set_options(timeout=60_000)
STEPS = 5000


def _run_dir(proj: UiProject, run_id: str) -> Path:
    return proj.dir / ".outlive" / "runs" / run_id


def test_curves_hold_every_progress_record_and_the_log_follows(
    page: Any, ui: Ui, ui_project: UiProject, tmp_path: Path
) -> None:
    run_id = ui_project.launch("curves", steps=STEPS)
    page.goto(ui.url)
    page.goto(f"{ui.base}/run/{run_id}")
    log = page.locator("#log")
    expect(log).to_contain_text(f"progress written: {STEPS}")
    n = progress_lines(_run_dir(ui_project, run_id))
    assert n == STEPS
    expect(page.locator("#charts")).to_have_attribute("data-points", str(n))
    for metric in ("loss", "lr", "throughput"):
        chart = page.locator(f'.chart[data-metric="{metric}"]')
        expect(chart).to_have_attribute("data-points", str(n))  # records held for the metric
        expect(chart.locator("canvas")).to_have_count(1)
    expect(log).to_contain_text("<script>document.title='pwned'</script> & <b>not bold</b>")
    expect(log.locator("b")).to_have_count(0)
    expect(page.locator("#state")).to_have_attribute("data-state", "running")
    ui_project.finish("curves")
    expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
    expect(log).to_contain_text("done")  # the tail kept following to the end
    expect(page.locator('#exit dd[data-key="exit code"]')).to_have_text("0")
    match = page.locator('#explain li[data-gotcha="U26"]')
    expect(match).to_contain_text("line")
    save_screenshot(page, tmp_path / "screenshots", "ui-run-page.png")
    match.locator("a.gotcha").click()
    expect(page.locator("#gid")).to_have_text("U26")
    expect(page.locator("#title")).not_to_be_empty()
    assert "pwned" not in page.title()
    assert page.dialogs == []
    assert page.console_errors == []  # uPlot draws under the CSP (no inline script or style)


def test_checkpoints_show_verified_after_a_pull(page: Any, ui: Ui, ui_project: UiProject) -> None:
    shutil.copyfile(train_numpy.__file__, ui_project.dir / "train_numpy.py")
    done = ui_project.cli(
        "run", "--json", "--name", "ckpts", "--",
        "python3", "train_numpy.py", "--steps", "60", "--save-every", "20",
    )  # fmt: skip
    run_id = json.loads(done.stdout)["run_id"]
    page.goto(ui.url)
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#state")).to_have_attribute("data-state", "succeeded")
    rows = page.locator("#checkpoints tbody tr[data-step]")
    expect(rows.first).to_contain_text("not pulled")
    ui_project.cli("pull", run_id)
    page.reload()
    expect(rows.first).to_contain_text("yes (pulled, SHA-256)")
    steps = [int(s) for s in rows.evaluate_all("rs => rs.map(r => r.dataset.step)")]
    assert steps and steps == sorted(steps, reverse=True)
    expect(page.locator("#pulls tbody tr")).to_contain_text("verified")


def _post_cancel(ui: Ui, run_id: str, headers: dict[str, str], body: dict[str, str]) -> int:
    netloc = urlsplit(ui.base).netloc
    conn = http.client.HTTPConnection(netloc, timeout=120)
    data = json.dumps(body)
    all_headers = {"Host": netloc, "Content-Type": "application/json", **headers}
    conn.request("POST", f"/api/run/{run_id}/cancel", body=data, headers=all_headers)
    status = conn.getresponse().status
    conn.close()
    return status


def _state(proj: UiProject, run_id: str) -> str:
    out = subprocess.run(
        [OUTLIVE, "status", "--json", run_id],
        cwd=proj.dir, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return str(json.loads(out.stdout)["runs"][0]["state"])


def test_cancel_needs_the_token_a_csrf_token_and_a_confirmation(
    page: Any, ui: Ui, ui_project: UiProject
) -> None:
    run_id = ui_project.launch("to-cancel", steps=3)
    page.goto(ui.url)
    page.goto(f"{ui.base}/run/{run_id}")
    expect(page.locator("#state")).to_have_attribute("data-state", "running")
    csrf = page.locator('meta[name="csrf"]').get_attribute("content")
    cookie = f"outlive_ui={ui.token}"
    confirm = {"confirm": run_id}
    assert _post_cancel(ui, run_id, {"X-Outlive-Csrf": csrf}, confirm) == 403  # no token
    assert _post_cancel(ui, run_id, {"Cookie": cookie}, confirm) == 403  # no CSRF token
    wrong = {"Cookie": cookie, "X-Outlive-Csrf": "wrong"}
    assert _post_cancel(ui, run_id, wrong, confirm) == 403
    other_site = {"Cookie": cookie, "X-Outlive-Csrf": csrf, "Origin": "http://evil.example"}
    assert _post_cancel(ui, run_id, other_site, confirm) == 403
    unconfirmed = {"Cookie": cookie, "X-Outlive-Csrf": csrf}
    assert _post_cancel(ui, run_id, unconfirmed, {}) == 400
    page.locator("#cancel").click()
    expect(page.locator("#confirm")).to_be_visible()
    page.locator("#confirm-keep").click()  # the confirmation declined: nothing is sent
    expect(page.locator("#confirm")).to_be_hidden()
    assert _state(ui_project, run_id) == "running"
    page.locator("#cancel").click()
    page.locator("#confirm-cancel").click()
    expect(page.locator("#cancel-result")).to_contain_text("sent")
    expect(page.locator("#state")).to_have_attribute("data-state", "cancelled")
