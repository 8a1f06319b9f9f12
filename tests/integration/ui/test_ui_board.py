"""The board in a real browser: a local run shows up and turns succeeded live, hostile names stay
text, and nothing is served without the per-start token."""

from __future__ import annotations

import http.client
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect
from ui_helpers import Ui, UiProject

HOSTILE_NAME = "<img src=x onerror=alert(document.domain)> 'q' $(x) ü"
expect.set_options(timeout=60_000)


def _get(
    ui: Ui, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> http.client.HTTPResponse:
    netloc = urlsplit(ui.base).netloc
    conn = http.client.HTTPConnection(netloc, timeout=30)
    conn.request(method, path, headers={"Host": netloc, **(headers or {})})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_board_shows_a_local_run_and_it_turns_succeeded_live(
    page: Any, ui: Ui, ui_project: UiProject
) -> None:
    run_id = ui_project.launch(HOSTILE_NAME, steps=20)
    page.goto(ui.url)
    assert page.url == ui.base + "/"  # the token left the address bar for a cookie
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_have_attribute("data-state", "running")
    expect(row.locator("td.name a")).to_have_text(HOSTILE_NAME)
    expect(row.locator("td.target")).to_have_text("local")
    expect(row.locator("td.progress")).to_contain_text("step 19")
    expect(page.locator("#board")).to_have_attribute("data-source", "daemon")
    ui_project.finish(HOSTILE_NAME)
    expect(row).to_have_attribute("data-state", "succeeded")
    expect(row.locator("img")).to_have_count(0)
    assert page.dialogs == []  # the name never ran as markup
    assert page.console_errors == []


def test_every_request_without_the_token_gets_403(ui: Ui) -> None:
    for path in ("/", "/api/board", "/events", "/static/ui.css", "/run/x", "/api/gotcha/U6"):
        assert _get(ui, path).status == 403, path
    assert _get(ui, "/api/board", {"Cookie": "outlive_ui=wrong"}).status == 403
    assert _get(ui, "/?token=wrong").status == 403
    assert _get(ui, "/api/run/x/cancel", method="POST").status == 403
    first = _get(ui, "/?token=" + ui.token)
    assert first.status == 303 and first.getheader("Location") == "/"
    assert _get(ui, "//evil.example/?token=" + ui.token).getheader("Location") == "/evil.example/"
    cookie = first.getheader("Set-Cookie") or ""
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    with_cookie = {"Cookie": cookie.split(";", 1)[0]}
    assert _get(ui, "/api/board", with_cookie).status == 200
    # another Host (DNS rebinding) is refused even with the cookie
    netloc = urlsplit(ui.base).netloc
    conn = http.client.HTTPConnection(netloc, timeout=30)
    conn.request("GET", "/api/board", headers={"Host": "evil.example", **with_cookie})
    assert conn.getresponse().status == 403
    conn.close()
