"""The plumbing the provider fakes share: a local HTTP server in a background process, started
by ``up`` and removed by ``down``, with a control surface under ``/_fake/`` for tests.

Every exchange on the API surface is logged (method, path, query, request body, status,
response headers and body) so tests can check each one against the provider's published
contract. Control verbs (not part of any provider's API, no key needed, 127.0.0.1 only):

- ``POST /_fake/ratelimit {"next": N, "retry_after_s": S}``: the next N API calls get 429
- ``POST /_fake/hang {"method": M, "path": P, "after": M2}``: the next matching call (once a
  call ``M2 P`` was answered, when ``after`` is given) blocks until ``release``
- ``POST /_fake/release``: answer the blocked calls
- ``POST /_fake/advance {"s": S}``: move the fake's clock (billing) forward
- ``GET /_fake/log``: ``{"exchanges": [...], "hanging": N}``
plus each fake's own (``balance``, ``preempt``...).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from outlive.testing._errors import TestbedError

START_TIMEOUT_S = 30.0
_children: dict[int, subprocess.Popen[bytes]] = {}  # started here: reaped by ``stop``


@dataclass
class Answer:
    """What a fake's route returns."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    method: str
    path: str  # below the API's base path, e.g. "/pods/abc"
    query: dict[str, list[str]]
    body: Any


class FakeApi:
    """Base of a provider fake: auth, rate limiting, hangs, the clock and the log. A subclass
    implements ``route`` (its API) and may add ``control`` verbs."""

    base_path = "/v1"
    provider = "fake"

    def __init__(self, key: str) -> None:
        self.key = key
        self.lock = threading.RLock()
        self.offset_s = 0.0
        self.limited = 0
        self.retry_after_s = 1.0
        self.hangs: list[tuple[str, str, str | None]] = []
        self.answered: set[tuple[str, str]] = set()
        self.hanging = 0
        self.release = threading.Event()
        self.log: list[dict[str, Any]] = []

    def now(self) -> float:
        return time.time() + self.offset_s

    # -- to override --------------------------------------------------------------------------

    def route(self, call: Call) -> Answer:  # pragma: no cover - abstract
        raise NotImplementedError

    def unauthorized(self) -> Answer:
        return Answer(401, {"message": "Unauthorized"})

    def control(self, verb: str, body: dict[str, Any]) -> Answer:
        return Answer(404, {"message": f"no control verb {verb}"})

    def tick(self) -> None:
        """Advance anything time-driven (billing, balance) to ``now``; called under the lock."""

    def serve_raw(self, handler: BaseHTTPRequestHandler, path: str) -> bool:
        """Answer ``path`` outside the API (a signed download URL) on ``handler``; whether it
        did. Such paths carry no key: their signature is in the URL, as a cloud bucket's is."""
        return False

    # -- the request path ---------------------------------------------------------------------

    def handle_api(self, call: Call, auth: str | None) -> Answer:
        with self.lock:
            self.tick()
            if auth != f"Bearer {self.key}":
                return self.unauthorized()
            if self.limited > 0:
                self.limited -= 1
                return Answer(
                    429, {"message": "Too many requests"},
                    {"Retry-After": f"{self.retry_after_s:g}"},
                )  # fmt: skip
            full = self.base_path + call.path
            hang = next((h for h in self.hangs if self._hangs_on(h, call.method, full)), None)
            if hang is not None:
                self.hangs.remove(hang)
                self.hanging += 1
        if hang is not None:
            self.release.wait()
            with self.lock:
                self.hanging -= 1
        with self.lock:
            self.tick()
            answer = self.route(call)
            self.answered.add((call.method, self.base_path + call.path))
            return answer

    def _hangs_on(self, hang: tuple[str, str, str | None], method: str, path: str) -> bool:
        after = hang[2]
        return hang[:2] == (method, path) and (after is None or (after, path) in self.answered)

    def handle_control(self, verb: str, body: dict[str, Any]) -> Answer:
        with self.lock:
            if verb == "log":
                return Answer(200, {"exchanges": list(self.log), "hanging": self.hanging})
            if verb == "ratelimit":
                self.limited = int(body.get("next", 1))
                self.retry_after_s = float(body.get("retry_after_s", 1.0))
                return Answer(200, {"ok": True})
            if verb == "hang":
                self.release.clear()
                after = body.get("after")
                self.hangs.append(
                    (str(body["method"]).upper(), str(body["path"]),
                     str(after).upper() if after else None)
                )  # fmt: skip
                return Answer(200, {"ok": True})
            if verb == "release":
                self.release.set()
                return Answer(200, {"ok": True})
            if verb == "advance":
                self.tick()
                self.offset_s += float(body.get("s", 0))
                self.tick()
                return Answer(200, {"ok": True, "now": self.now()})
            return self.control(verb, body)


def _handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _body(self) -> Any:
            n = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(n) if n else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _send(self, ans: Answer) -> None:
            data = b"" if ans.body is None else json.dumps(ans.body).encode()
            self.send_response(ans.status)
            for k, v in ans.headers.items():
                self.send_header(k, v)
            if ans.body is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _do(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            body = self._body()
            if parts.path.startswith("/_fake/"):
                doc = body if isinstance(body, dict) else {}
                self._send(api.handle_control(parts.path[len("/_fake/") :], doc))
                return
            if api.serve_raw(self, parts.path):
                return
            if not parts.path.startswith(api.base_path + "/"):
                self._send(Answer(404, {"message": "not found"}))
                return
            call = Call(
                method=self.command,
                path=parts.path[len(api.base_path) :],
                query=urllib.parse.parse_qs(parts.query, keep_blank_values=True),
                body=body,
            )
            ans = api.handle_api(call, self.headers.get("Authorization"))
            with api.lock:
                api.log.append(
                    {
                        "method": call.method,
                        "path": call.path,
                        "query": call.query,
                        "content_type": self.headers.get("Content-Type"),
                        "body": call.body,
                        "status": ans.status,
                        "response_headers": ans.headers,
                        "response": ans.body,
                    }
                )
            # the client may have gone away (a test killed it): the call still happened
            with contextlib.suppress(OSError):
                self._send(ans)

        do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _do

    return Handler


def serve(api: FakeApi, state_dir: Path) -> None:
    """Serve ``api`` on a free 127.0.0.1 port; write the port when ready; run until killed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    port = server.server_address[1]
    tmp = state_dir / "port.tmp"
    tmp.write_text(str(port))
    os.replace(tmp, state_dir / "port")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


# ---------------------------------------------------------------------------------------------
# the background process


@dataclass(frozen=True)
class Running:
    name: str
    state_dir: Path
    url: str  # http://127.0.0.1:PORT
    key: str


def start(kind: str, name: str, state_dir: Path) -> Running:
    """Start the fake KIND in a background process (its own session) and wait until it serves."""
    if (state_dir / "pid").exists():
        stop(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(16)
    key_file = state_dir / "key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    (state_dir / "port").unlink(missing_ok=True)
    with open(state_dir / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "outlive.testing._fakeprocess", kind, str(state_dir)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    (state_dir / "pid").write_text(str(proc.pid))
    deadline = time.monotonic() + START_TIMEOUT_S
    while not (state_dir / "port").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(state_dir)
            raise TestbedError(f"the {kind} fake did not start; see {state_dir / 'server.log'}")
        time.sleep(0.02)
    port = int((state_dir / "port").read_text())
    return Running(name, state_dir, f"http://127.0.0.1:{port}", key)


def stop(state_dir: Path) -> bool:
    """Stop the fake whose state is in ``state_dir``; whether one was running."""
    pid_file = state_dir / "pid"
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        existed = True
    except ProcessLookupError:
        existed = False
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=START_TIMEOUT_S)
    pid_file.unlink(missing_ok=True)
    (state_dir / "port").unlink(missing_ok=True)
    return existed
