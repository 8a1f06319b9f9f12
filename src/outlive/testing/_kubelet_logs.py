"""The process kubelet's HTTPS API, as far as ``kubectl logs [-f]`` and ``kubectl exec`` need it:
the apiserver proxies ``GET /containerLogs/{namespace}/{pod}/{container}`` here (``follow``,
``tailLines``, ``limitBytes``, ``timestamps``, ``sinceTime``, ``sinceSeconds``), and
``/exec/{namespace}/{pod}/{container}`` with an upgrade to SPDY (``_kubelet_exec``)."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from outlive.testing._kubelet_exec import ExecTarget, plain_response, serve_exec
from outlive.testing._kubelet_logfile import parse_records, render, since_stamp

__all__ = ["ExecSource", "LogSource", "serve_logs"]

# (namespace, pod, container) -> (log file, whether the container has finished), or None
LogSource = Callable[[str, str, str], "tuple[Path, Callable[[], bool]] | None"]
# (namespace, pod, container) -> where a command runs in it, or None when it is not running
ExecSource = Callable[[str, str, str], "ExecTarget | None"]
_FOLLOW_POLL_S = 0.1


def serve_logs(
    port: int, cert: Path, key: Path, source: LogSource, exec_source: ExecSource
) -> ThreadingHTTPServer:
    """Start serving on 127.0.0.1:PORT in a daemon thread; return the server."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # the apiserver's requests are not worth a log line each

        def do_POST(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if len(parts) == 4 and parts[0] == "exec":
                self._exec(parts, parse_qs(url.query))
                return
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._error(
                    404, f"the process kubelet serves /containerLogs and /exec, not {url.path}"
                )
                return
            found = source(parts[1], parts[2], parts[3])
            if found is None:
                self._error(404, f"container {parts[3]!r} of pod {parts[1]}/{parts[2]} not found")
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            with contextlib.suppress(OSError):
                _stream(self.wfile, *found, query)

        def _exec(self, parts: list[str], query: dict[str, list[str]]) -> None:
            self.close_connection = True
            target = exec_source(parts[1], parts[2], parts[3])
            if target is None:
                self._error(
                    404, f"container {parts[3]!r} of pod {parts[1]}/{parts[2]} is not running"
                )
                return
            with contextlib.suppress(OSError):
                serve_exec(self, target, query)

        def _error(self, code: int, message: str) -> None:
            plain_response(self, code, message)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="kubelet-api", daemon=True).start()
    return server


def _stream(
    out: BufferedIOBase, log: Path, finished: Callable[[], bool], query: dict[str, str]
) -> None:
    left = int(query["limitBytes"]) if "limitBytes" in query else None
    since = since_stamp(query.get("sinceTime"), query.get("sinceSeconds"))
    timestamps = query.get("timestamps") in ("true", "1")
    follow = query.get("follow") in ("true", "1")
    with open(log, "rb") as f:
        records, rest = parse_records(f.read())
        if since:
            records = [r for r in records if r[0] >= since]
        data = render(records, timestamps=timestamps)
        if "tailLines" in query:
            n = int(query["tailLines"])
            data = b"".join(data.splitlines(keepends=True)[-n:]) if n > 0 else b""
        at_line_start = not records or records[-1][2]
        while True:
            if left is not None:
                data = data[:left]
                left -= len(data)
            if data:
                out.write(data)
                out.flush()
            if not follow or left == 0:
                return
            done = finished()  # read before the file: the last records are in it once done
            chunk = f.read()
            if not chunk:
                if done:
                    return
                time.sleep(_FOLLOW_POLL_S)
                data = b""
                continue
            records, rest = parse_records(rest + chunk)
            data = render(records, timestamps=timestamps, at_line_start=at_line_start)
            at_line_start = records[-1][2] if records else at_line_start
