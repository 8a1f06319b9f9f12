"""Fixtures for the dashboard's tests in a real browser: the system Chromium driven by
Playwright (``executable_path``; Playwright cannot download its own browsers here), and
``outlive ui`` started for a fresh project of each test's own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_helpers import Ui, UiProject

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium (scripts/test.sh does, as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(60_000)
    dialogs: list[str] = []
    pg = context.new_page()
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.dialogs = dialogs  # an alert() would mean a hostile name ran as script
    errors: list[str] = []  # script errors and CSP refusals (the console's errors)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.console_errors = errors
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def ui_project(tmp_path: Path) -> Iterator[UiProject]:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "outlive.toml").write_text("")
    proj = UiProject(d)
    yield proj
    proj.kill_leftovers()


@pytest.fixture
def ui(ui_project: UiProject) -> Iterator[Ui]:
    server = Ui(ui_project.dir)
    yield server
    server.stop()
