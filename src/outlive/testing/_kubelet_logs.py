"""The process kubelet's HTTPS API, as far as ``kubectl logs [-f]`` needs it: the apiserver
proxies ``GET /containerLogs/{namespace}/{pod}/{container}`` here (``follow``, ``tailLines``,
``limitBytes``; other options are ignored)."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["LogSource", "serve_logs"]

# (namespace, pod, container) -> (log file, whether the container has finished), or None
LogSource = Callable[[str, str, str], "tuple[Path, Callable[[], bool]] | None"]
_FOLLOW_POLL_S = 0.1


def serve_logs(port: int, cert: Path, key: Path, source: LogSource) -> ThreadingHTTPServer:
    """Start serving on 127.0.0.1:PORT in a daemon thread; return the server."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass  # the apiserver's requests are not worth a log line each

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            parts = [unquote(p) for p in url.path.strip("/").split("/")]
            if len(parts) != 4 or parts[0] != "containerLogs":
                self._error(404, f"the process kubelet serves only /containerLogs, not {url.path}")
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

        def _error(self, code: int, message: str) -> None:
            body = message.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, name="kubelet-api", daemon=True).start()
    return server


def _stream(out: object, log: Path, finished: Callable[[], bool], query: dict[str, str]) -> None:
    write = out.write  # type: ignore[attr-defined]
    flush = out.flush  # type: ignore[attr-defined]
    left = int(query["limitBytes"]) if "limitBytes" in query else None
    with open(log, "rb") as f:
        data = f.read()
        if "tailLines" in query:
            n = int(query["tailLines"])
            data = b"".join(data.splitlines(keepends=True)[-n:]) if n > 0 else b""
        follow = query.get("follow") in ("true", "1")
        while True:
            if left is not None:
                data = data[:left]
                left -= len(data)
            if data:
                write(data)
                flush()
            if not follow or left == 0:
                return
            done = finished()  # read before the file: the last bytes are in it once done
            data = f.read()
            if not data:
                if done:
                    return
                time.sleep(_FOLLOW_POLL_S)
