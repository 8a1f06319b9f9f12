"""The board against a real sshd box (its own network and PID namespace): a cut link shows the
run stale, never dead; a reboot shows it vanished with the reboot diagnosis and its gotcha ids.
Screenshots of the board and the run page go under the test's own directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from ui_helpers import Ui, UiProject, save_screenshot

from outlive.testing import Box

expect.set_options(timeout=90_000)


@pytest.fixture
def box_project(tmp_path: Path, box: Box, tag: str) -> Iterator[UiProject]:
    proj = tmp_path / "proj"
    proj.mkdir()
    lines = ["[targets.box]"]
    for key, value in box.target.items():
        if key == "workdir":
            value = str(box.workdir / f"ui {tag}")
        if key == "durable":
            value = str(box.durable / tag)
        lines.append(f"{key} = {json.dumps(value)}")
    lines.append("kill_grace_s = 2")
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    yield UiProject(proj)


@pytest.fixture
def box_ui(box_project: UiProject) -> Iterator[Ui]:
    server = Ui(box_project.dir)
    yield server
    server.stop()


def test_cut_shows_stale_and_reboot_shows_vanished_with_its_diagnosis(
    page: Any, box: Box, box_project: UiProject, box_ui: Ui, tmp_path: Path
) -> None:
    run_id = box_project.launch("on-the-box", steps=200, target="box")
    page.goto(box_ui.url)
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_have_attribute("data-state", "running")
    expect(row.locator("td.progress")).to_contain_text("step 199")
    run_page = page.context.new_page()  # a second page: the board's look is still shared
    run_page.goto(f"{box_ui.base}/run/{run_id}")
    expect(run_page.locator("#charts")).to_have_attribute("data-points", "200")
    expect(run_page.locator("#log")).to_contain_text("progress written: 200")
    expect(page.locator("#board")).to_have_attribute("data-source", "daemon")
    serving = [c for c in box.procs().values() if "box.main" in c and "serve" in c.split()]
    assert len(serving) == 1, serving  # the daemon's one channel; the pages opened none
    run_page.close()
    box.cut()
    expect(row).to_have_attribute("data-stale", "true")
    expect(row).to_have_attribute("data-state", "running")  # unreachable is not dead
    box.restore()
    expect(row).not_to_have_attribute("data-stale", "true")
    box.reboot()
    expect(row).to_have_attribute("data-state", "vanished")
    diag = row.locator("td.diag")
    expect(diag.locator("b")).to_have_text("reboot")
    expect(diag.locator("a.gotcha").first).to_have_attribute("href", "/gotcha/U3")
    save_screenshot(page, tmp_path / "screenshots", "ui-board.png")
    row.locator("td.name a").click()
    expect(page.locator("#state")).to_have_attribute("data-state", "vanished")
    expect(page.locator('#exit dd[data-key="diagnosis"] b')).to_have_text("reboot")
    expect(page.locator("#charts")).to_have_attribute("data-points", "200")
    save_screenshot(page, tmp_path / "screenshots", "ui-run-vanished.png")
