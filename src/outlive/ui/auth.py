"""Who may talk to the dashboard: the holder of the per-start token, on this machine only.

The URL printed at start carries a random token; the first page load trades it for an
``HttpOnly; SameSite=Strict`` cookie and redirects to the same page without it (so the token
leaves the address bar and the history). Every other request needs that cookie, or the token
in the query, else 403. The Host header must name the loopback address the server listens on
(a page on another site cannot reach it through DNS rebinding), and the one action that mutates
(cancel) also needs POST, a CSRF token that only the dashboard's own pages hold, and an Origin
(when the browser sends one) of the dashboard itself.
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

COOKIE = "outlive_ui"
TOKEN_PARAM = "token"
CSRF_HEADER = "X-Outlive-Csrf"


class Guard:
    """The tokens of one server start, and the checks every request passes."""

    def __init__(self, host: str, port: int) -> None:
        self.token = secrets.token_urlsafe(24)
        self.csrf = secrets.token_urlsafe(24)
        self.host = host
        self.port = port

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        return f"{self.origin}{path}?{TOKEN_PARAM}={self.token}"

    def host_ok(self, host_header: str | None) -> bool:
        return host_header in (f"{self.host}:{self.port}", f"localhost:{self.port}")

    def token_in_query(self, query: str) -> bool:
        given = parse_qs(query).get(TOKEN_PARAM, [])
        return any(hmac.compare_digest(g.encode(), self.token.encode()) for g in given)

    def cookie_ok(self, cookie_header: str | None) -> bool:
        if not cookie_header:
            return False
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except CookieError:
            return False
        morsel = jar.get(COOKIE)
        return morsel is not None and hmac.compare_digest(
            morsel.value.encode(), self.token.encode()
        )

    def set_cookie(self) -> str:
        return f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"

    def csrf_ok(self, header: str | None, origin: str | None) -> bool:
        if origin is not None and origin != self.origin and origin != self._alt_origin:
            return False
        return header is not None and hmac.compare_digest(header.encode(), self.csrf.encode())

    @property
    def _alt_origin(self) -> str:
        return f"http://localhost:{self.port}"
