"""The dashboard's checks: the per-start token (query or cookie), the Host, the CSRF token."""

from __future__ import annotations

from outlive.ui.auth import COOKIE, Guard


def test_only_this_start_s_token_passes() -> None:
    guard, other = Guard("127.0.0.1", 8123), Guard("127.0.0.1", 8123)
    assert guard.token != other.token and guard.csrf != guard.token
    assert guard.token_in_query(f"token={guard.token}")
    assert not guard.token_in_query(f"token={other.token}")
    assert not guard.token_in_query("")
    assert guard.cookie_ok(f"a=b; {COOKIE}={guard.token}")
    assert not guard.cookie_ok(f"{COOKIE}={other.token}")
    assert not guard.cookie_ok('bad"cookie')
    assert not guard.cookie_ok(None)
    cookie = guard.set_cookie()
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and guard.token in cookie


def test_host_and_origin_must_be_the_dashboard_itself() -> None:
    guard = Guard("127.0.0.1", 8123)
    assert guard.host_ok("127.0.0.1:8123") and guard.host_ok("localhost:8123")
    assert not guard.host_ok("evil.example:8123") and not guard.host_ok(None)
    assert guard.csrf_ok(guard.csrf, None)
    assert guard.csrf_ok(guard.csrf, "http://127.0.0.1:8123")
    assert not guard.csrf_ok(guard.csrf, "http://evil.example")
    assert not guard.csrf_ok("wrong", None) and not guard.csrf_ok(None, None)
    assert guard.url().startswith("http://127.0.0.1:8123/?token=")
