"""``outlive ui``'s HTTP server: the stdlib's ThreadingHTTPServer on 127.0.0.1.

Pages are static files from the package (no build step, no CDN); every value shown arrives as
JSON and is put into the page as text by the page's own script, never as markup. The board
streams snapshots as server-sent events from the one :class:`~outlive.ui.looks.Hub`; a run page
asks for what it shows (``/api/run/ID/...``). Routes and their checks are in :func:`route`.
"""

from __future__ import annotations

import functools
import html
import json
import re
import threading
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from outlive import wire
from outlive.errors import OutliveError, RunNotFound
from outlive.ui.auth import CSRF_HEADER, Guard
from outlive.ui.looks import Hub, registry_rows, status_look
from outlive.ui.runview import RunView

HOST = "127.0.0.1"
SSE_KEEPALIVE_S = 15.0
_STATIC = {
    "board.js": "text/javascript",
    "run.js": "text/javascript",
    "series.js": "text/javascript",
    "runfirst.js": "text/javascript",
    "gotcha.js": "text/javascript",
    "common.js": "text/javascript",
    "ui.css": "text/css",
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
    "uPlot.LICENSE": "text/plain",
}
# Each page: its title, what it loads besides ui.css, common.js and <page>.js (uPlot; the data it
# fetches first), and its body (static/<page>.html).
# What a board row shows (of a `status --json` row): the rest stays on the run's page.
BOARD_KEYS = (
    "run_id", "name", "target", "state", "stale", "unreachable", "progress", "heartbeat_age_s",
    "restarts", "diagnosis", "started_at", "created_at", "ended_at", "cost_usd",
)  # fmt: skip
_PAGES = {
    "board": ("runs", ("/api/board",)),
    "run": ("run", ("uPlot.min.css", "uPlot.iife.min.js", "series.js")),
    "gotcha": ("gotcha", ()),
}
# Scripts run as soon as the page's parser meets them (the page waits for them: keep them tiny),
# not once it is parsed: the run page's first read.
_FIRST = frozenset({"runfirst.js"})
_RUN_API = re.compile(r"^/api/run/([^/]+)(?:/(status|progress|log|explain|cancel))?$")
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


@functools.cache
def _static(name: str) -> bytes:
    return resources.files("outlive.ui").joinpath("static", name).read_bytes()


def _head_tag(ref: str) -> str:
    if ref.startswith("/api/"):  # data the page fetches first: asked for while it parses
        return f'<link rel="preload" href="{html.escape(ref)}" as="fetch" crossorigin="anonymous">'
    if ref.endswith(".css"):
        return f'<link rel="stylesheet" href="/static/{ref}">'
    if ref in _FIRST:
        return f'<script src="/static/{ref}"></script>'
    return f'<script src="/static/{ref}" defer></script>'


def page(name: str, csrf: str, first: tuple[str, ...] = ()) -> bytes:
    """A page: the shell with its title, its files (``first`` before the rest) and its body;
    nothing from a run in it but the (checked, quoted) run id in the URL of data it preloads."""
    title, extra = _PAGES[name]
    files = (*first, *extra, "ui.css", "common.js", f"{name}.js")
    head = [_head_tag(f) for f in files]
    shell = _static("shell.html").decode()
    body = _static(f"{name}.html").decode()
    for key, value in (("title", title), ("csrf", csrf), ("head", "\n".join(head))):
        shell = shell.replace("{{" + key + "}}", value)
    return shell.replace("{{body}}", body).encode()


class UiServer(ThreadingHTTPServer):
    """One dashboard for the project at ``project_dir``."""

    daemon_threads = True

    def __init__(self, project_dir: Path, port: int = 0, *, hub: Hub | None = None) -> None:
        super().__init__((HOST, port), _Handler)
        self.project_dir = project_dir
        self.guard = Guard(HOST, self.server_address[1])
        self.hub = hub or Hub(status_look(project_dir), lambda: registry_rows(project_dir))
        self.view = RunView(project_dir)
        self.targets = _targets(project_dir)
        self._encoded: tuple[object, bytes] = (None, b"")
        self._encoded_lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.guard.url("/")

    def board_json(self, snap: dict[str, Any] | None = None) -> bytes:
        """A board snapshot as JSON, encoded once however many pages receive it."""
        snap = self.hub.first_paint() if snap is None else snap
        with self._encoded_lock:
            if self._encoded[0] is not snap:
                runs = [{k: r[k] for k in BOARD_KEYS if k in r} for r in snap.get("runs", ())]
                doc = {**snap, "runs": runs, "targets": self.targets}
                self._encoded = (snap, json.dumps(doc, separators=(",", ":")).encode())
            return self._encoded[1]

    def server_close(self) -> None:
        hub = getattr(self, "hub", None)  # none yet when the bind failed (a port in use)
        if hub is not None:
            hub.close()
        super().server_close()


def _targets(project_dir: Path) -> dict[str, Any]:
    """Each target's profile and danger clocks (surfaced first), shown above the board."""
    from outlive.config import load_config
    from outlive.profiles import load_profile

    cfg = load_config(project_dir)
    out: dict[str, Any] = {}
    for name, target in cfg.targets.items():
        clocks: list[dict[str, Any]] = []
        try:
            profile = load_profile(target.profile, cfg.profile_dirs)
            for c in profile.clocks_first():
                clocks.append(
                    {
                        "name": c.name,
                        "kind": str(c.kind),
                        "duration_s": c.duration_s,
                        "what_happens": c.what_happens,
                        "surface_first": c.surface_first,
                        "gotchas": list(c.gotchas),
                    }
                )
        except OutliveError:
            pass  # a profile that does not load: the board still shows the runs
        out[name] = {"profile": target.profile, "clocks": clocks}
    return out


class _Handler(BaseHTTPRequestHandler):
    server: UiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the URL carries the token on the first load: never log request lines

    # -- the checks ----------------------------------------------------------------------------

    def _allowed(self) -> bool:
        guard = self.server.guard
        if not guard.host_ok(self.headers.get("Host")):
            return False
        query = urlsplit(self.path).query
        return guard.cookie_ok(self.headers.get("Cookie")) or guard.token_in_query(query)

    def do_GET(self) -> None:
        if not self._allowed():
            self._send_text(HTTPStatus.FORBIDDEN, "forbidden: open the URL `outlive ui` printed")
            return
        parts = urlsplit(self.path)
        if self.server.guard.token_in_query(parts.query):
            # Trade the token for the cookie, and take it out of the address bar.
            self.send_response(HTTPStatus.SEE_OTHER)
            self.send_header("Set-Cookie", self.server.guard.set_cookie())
            self.send_header("Location", "/" + parts.path.lstrip("/"))  # never //other.host
            self.send_header("Content-Length", "0")
            self._common_headers()
            self.end_headers()
            return
        try:
            self._get(parts.path, parse_qs(parts.query))
        except RunNotFound as exc:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except OutliveError as exc:
            self._send_json(HTTPStatus.BAD_GATEWAY, {"error": str(exc)})

    def do_POST(self) -> None:
        if not self._allowed():
            self._send_text(HTTPStatus.FORBIDDEN, "forbidden: open the URL `outlive ui` printed")
            return
        path = urlsplit(self.path).path
        match = _RUN_API.match(path)
        if match is None or match.group(2) != "cancel":
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "nothing to post here"})
            return
        guard = self.server.guard
        if not guard.csrf_ok(self.headers.get(CSRF_HEADER), self.headers.get("Origin")):
            self._send_json(HTTPStatus.FORBIDDEN, {"error": "missing or wrong CSRF token"})
            return
        body = self._body()
        run_id = match.group(1)
        if body.get("confirm") != run_id:
            self._send_json(
                HTTPStatus.BAD_REQUEST, {"error": "confirm the cancel with the run's id"}
            )
            return
        try:
            self._send_json(HTTPStatus.OK, self.server.view.cancel(run_id))
        except RunNotFound as exc:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
        except OutliveError as exc:
            self._send_json(HTTPStatus.BAD_GATEWAY, {"error": str(exc)})

    def do_PUT(self) -> None:
        self._send_text(HTTPStatus.METHOD_NOT_ALLOWED, "read-only")

    do_DELETE = do_PATCH = do_PUT

    # -- routes --------------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/":
            self._page("board")
        elif path.startswith("/run/"):
            run_id = path[len("/run/") :]
            # The curves' data is asked for while the page loads (a preload, taken by run.js):
            # the box's frames (read from the box now, decoded by the page in milliseconds) or
            # the columns parsed here already; else, for an older run's lines, by a worker
            # that the page's first script starts (static/runfirst.js), parsed off the page's
            # thread.
            first: tuple[str, ...] = ()
            if wire.run_id_problem(run_id) is None:
                view = self.server.view
                preload = (f"/api/run/{quote(run_id)}/progress?since=0",)
                if view.has_columns(run_id):
                    first = preload
                else:  # read from the box while the page loads
                    view.prefetch_progress(run_id)
                    first = preload if view.may_have_frames(run_id) else ("runfirst.js",)
            self._page("run", first)
        elif path.startswith("/gotcha/"):
            self._page("gotcha")
        elif path.startswith("/static/") and path[len("/static/") :] in _STATIC:
            name = path[len("/static/") :]
            self._send(HTTPStatus.OK, _static(name), _STATIC[name])
        elif path == "/api/board":
            self._send(HTTPStatus.OK, self.server.board_json(), "application/json")
        elif path == "/events":
            self._events()
        elif path.startswith("/api/gotcha/"):
            self._gotcha(path[len("/api/gotcha/") :])
        elif (match := _RUN_API.match(path)) is not None and match.group(2) != "cancel":
            self._run_api(match.group(1), match.group(2), query)
        else:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": "no such page"})

    def _run_api(self, run_id: str, what: str | None, query: dict[str, list[str]]) -> None:
        view = self.server.view
        doc: object
        if what is None:
            doc = view.details(run_id)
        elif what == "status":
            doc = view.status(run_id)
        elif what == "progress":
            frames = query.get("frames") != ["0"]  # no: the page has found them short
            body = view.progress(run_id, _int(query, "since") or 0, frames)
            if isinstance(body, bytes):
                self._send(HTTPStatus.OK, body, "application/octet-stream")
            else:
                self._send_chunked(body, "application/octet-stream")
            view.parse_progress(run_id)
            return
        elif what == "log":
            doc = view.log(run_id, _int(query, "offset"))
        else:
            doc = {"matches": view.explain(run_id)}
        self._send_json(HTTPStatus.OK, doc)

    def _gotcha(self, gotcha_id: str) -> None:
        from outlive.cli.catalog_cmds import gotcha_json
        from outlive.gotchas import by_id

        try:
            g = by_id(gotcha_id)
        except KeyError:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no gotcha {gotcha_id!r}"})
            return
        self._send_json(HTTPStatus.OK, {**gotcha_json(g), "related": list(g.related)})

    def _events(self) -> None:
        """Board snapshots as server-sent events, one per look, while the page stays."""
        hub = self.server.hub
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self._common_headers()
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seq = 0  # live looks only: the page painted the registry's rows from /api/board
        with hub.listening():
            try:
                while True:
                    snap = hub.wait_newer(seq, SSE_KEEPALIVE_S)
                    if hub.closed:
                        return
                    if snap["seq"] == seq:
                        self.wfile.write(b": keepalive\n\n")
                    else:
                        seq = snap["seq"]
                        data = self.server.board_json(snap)
                        self.wfile.write(b"event: board\ndata: " + data + b"\n\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                return

    # -- replies -------------------------------------------------------------------------------

    def _page(self, name: str, first: tuple[str, ...] = ()) -> None:
        self._send(HTTPStatus.OK, page(name, self.server.guard.csrf, first), "text/html")

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= 4096:
            return {}
        try:
            doc = json.loads(self.rfile.read(length))
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def _common_headers(self) -> None:
        for key, value in _SECURITY_HEADERS.items():
            self.send_header(key, value)

    def _send(self, status: HTTPStatus, body: bytes, ctype: str) -> None:
        if self.command == "POST" or status >= 400:
            self.close_connection = True  # a body we did not read must not become a request
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        self.end_headers()
        self.wfile.write(body)

    def _send_chunked(self, parts: Iterator[bytes], ctype: str) -> None:
        """A reply whose length is not known yet: its parts as they come (chunked coding)."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"{ctype}; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers()
        self.end_headers()
        for part in parts:
            if part:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def _send_json(self, status: HTTPStatus, doc: object) -> None:
        body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        self._send(status, body, "application/json")

    def _send_text(self, status: HTTPStatus, text: str) -> None:
        self._send(status, text.encode(), "text/plain")


def _int(query: dict[str, list[str]], key: str) -> int | None:
    values = query.get(key)
    if not values:
        return None
    try:
        return max(0, int(values[0]))
    except ValueError:
        return None
