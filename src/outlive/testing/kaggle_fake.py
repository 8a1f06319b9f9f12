"""A fake of Kaggle's kernels API as the official ``kaggle`` client (kagglesdk) speaks it:
``POST {endpoint}/api/v1/kernels.KernelsApiService/<Method>`` with a JSON body, camelCase
fields, enums by name. The client's only endpoint switch is ``KAGGLE_API_ENVIRONMENT``
(``LOCALHOST`` → ``http://localhost``), so the fake is reached as that host through
``HTTP_PROXY`` (the client uses ``requests``, which honours it): the fake answers the proxied
absolute-URI requests itself. Nothing in the client is patched.

Methods: ``SaveKernel`` (push: a new version, QUEUED → RUNNING → COMPLETE | ERROR with
``failureMessage``), ``GetKernelSessionStatus``, ``ListKernelSessionOutput`` (files with signed
URLs, served with ETag and byte ranges, and the log), ``ListKernels``, ``GetKernel``,
``CancelKernelSession`` (CANCEL_REQUESTED → CANCEL_ACKNOWLEDGED) and
``GetAcceleratorQuotaStatistics`` (the weekly GPU quota, spent by GPU sessions). Auth: the
user's legacy key (HTTP Basic ``username:key``) or an API token (Bearer); 401 otherwise.

Each version really runs (:mod:`outlive.testing._kaggle_sessions`). Control verbs besides the
shared ones: ``config`` (limits), ``cut {"next": N, "after_bytes": B, "file": F}`` (the next N
downloads, of output files named F or ending in ``/F`` when given, drop the connection after B
bytes; ``uncut`` drops the cuts left), ``state`` (every version, and every download: file,
first byte, bytes sent, cut).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from outlive.testing import _kaggle_sessions as ks
from outlive.testing._fakeserver import Answer, Call, FakeApi

USER = "outlive-tester"  # the account the fake's key belongs to
SERVICE = "/kernels.KernelsApiService/"
TICK_S = 0.05
CHUNK_BYTES = 1 << 20


class KaggleFake(FakeApi):
    base_path = "/api/v1"
    provider = "kaggle"

    def __init__(self, key: str, state_dir: Path) -> None:
        super().__init__(key)
        self.state_dir = state_dir
        config = state_dir / "config.json"
        doc = json.loads(config.read_text()) if config.exists() else {}
        self.limits = ks.Limits(**doc)
        self.versions: list[ks.Version] = []
        # (bytes, file or None): the next downloads (of that file) drop the connection after it
        self.cuts: list[tuple[int, str | None]] = []
        self.downloads: list[dict[str, Any]] = []
        self.gpu_spent_before_s = 0.0
        threading.Thread(target=self._loop, daemon=True).start()

    # -- auth ---------------------------------------------------------------------------------

    def handle_api(self, call: Call, auth: str | None) -> Answer:
        if auth and auth.startswith("Basic "):  # the legacy key: username:key
            with contextlib.suppress(ValueError):
                user, _, key = base64.b64decode(auth[6:]).decode().partition(":")
                auth = f"Bearer {key}" if user == USER else None
        return super().handle_api(call, auth)

    def unauthorized(self) -> Answer:
        return Answer(401, {"code": 401, "message": "Unauthenticated"})

    # -- time ---------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            time.sleep(TICK_S)
            with self.lock:
                self.tick()

    def tick(self) -> None:
        now = time.time()
        for v in self.versions:
            if v.status == ks.QUEUED and now - v.pushed_at >= self.limits.queue_s:
                ks.start(v, now)
            ks.advance(v, self.limits, now)

    # -- the API ------------------------------------------------------------------------------

    def route(self, call: Call) -> Answer:
        if call.method != "POST" or not call.path.startswith(SERVICE):
            return Answer(404, {"code": 404, "message": "Not found"})
        method = call.path[len(SERVICE) :]
        body = call.body if isinstance(call.body, dict) else {}
        handler = {
            "SaveKernel": self._save,
            "GetKernelSessionStatus": self._status,
            "ListKernelSessionOutput": self._output,
            "ListKernels": self._list,
            "GetKernel": self._get,
            "CancelKernelSession": self._cancel,
            "GetAcceleratorQuotaStatistics": self._quota,
        }.get(method)
        if handler is None:
            return Answer(404, {"code": 404, "message": f"Unknown method {method}"})
        return handler(body)

    def _save(self, body: dict[str, Any]) -> Answer:
        owner, _, slug = str(body.get("slug") or "").partition("/")
        if owner != USER or not slug:
            return Answer(
                403, {"code": 403, "message": f"Permission denied on kernel {owner}/{slug}"}
            )
        if body.get("language") != "python" or body.get("kernelType") not in ("script", "notebook"):
            return Answer(400, {"code": 400, "message": "language and kernelType are required"})
        sources, invalid = {}, []
        for ref in body.get("kernelDataSources") or []:
            done = self._latest(str(ref), complete=True)
            if done is None:
                invalid.append(ref)
            else:
                sources[done.slug] = done.output
        number = 1 + max((v.number for v in self.versions if v.ref == f"{owner}/{slug}"), default=0)
        session = 1000 + len(self.versions)
        kernel = self.state_dir / "kernels" / owner / slug
        home, root = kernel / str(number), kernel / "machine" / "kaggle"
        version = ks.Version(owner, slug, number, session, dict(body), home, root, time.time())
        version.sources = sources
        home.mkdir(parents=True)
        (home / "script.py").write_text(str(body.get("text") or ""))
        self.versions.append(version)
        return Answer(200, {
            "ref": f"/code/{owner}/{slug}",
            "url": f"http://localhost/code/{owner}/{slug}",
            "versionNumber": number,
            "invalidKernelSources": invalid,
            "kernelId": 1,
        })  # fmt: skip

    def _find(self, body: dict[str, Any]) -> ks.Version | Answer:
        ref = f"{body.get('userName')}/{body.get('kernelSlug')}"
        label = body.get("versionLabel")
        found = [v for v in self.versions if v.ref == ref]
        if label:  # the API wants "v<N>" and 404s a bare number (as the client's docs say)
            found = [v for v in found if f"v{v.number}" == str(label)]
        if not found:
            return Answer(404, {"code": 404, "message": f"Kernel {ref} not found"})
        return found[-1]

    def _latest(self, ref: str, *, complete: bool) -> ks.Version | None:
        found = [
            v for v in self.versions if v.ref == ref and (v.status == ks.COMPLETE or not complete)
        ]
        return found[-1] if found else None

    def _status(self, body: dict[str, Any]) -> Answer:
        v = self._find(body)
        if isinstance(v, Answer):
            return v
        doc: dict[str, Any] = {"status": v.status}
        if v.failure:
            doc["failureMessage"] = v.failure
        return Answer(200, doc)

    def _output(self, body: dict[str, Any]) -> Answer:
        v = self._find(body)
        if isinstance(v, Answer):
            return v
        names = ks.output_files(v)
        start = int(body.get("pageToken") or 0)
        size = int(body.get("pageSize") or 20)
        page = names[start : start + size]
        doc: dict[str, Any] = {
            "files": [{"fileName": n, "url": self._signed(v, n)} for n in page],
            "log": ks.log_json(v),
        }
        if start + size < len(names):
            doc["nextPageToken"] = str(start + size)
        return Answer(200, doc)

    def _list(self, body: dict[str, Any]) -> Answer:
        latest: dict[str, ks.Version] = {v.ref: v for v in self.versions}
        return Answer(200, {"kernels": [self._meta(v) for v in latest.values()]})

    def _get(self, body: dict[str, Any]) -> Answer:
        v = self._find(body)
        if isinstance(v, Answer):
            return v
        return Answer(200, {"metadata": self._meta(v), "blob": {
            "source": v.meta.get("text"), "language": "python",
            "kernelType": v.meta.get("kernelType"), "slug": v.slug,
        }})  # fmt: skip

    def _meta(self, v: ks.Version) -> dict[str, Any]:
        return {
            "id": v.session_id,
            "ref": v.ref,
            "title": v.meta.get("newTitle") or v.slug,
            "author": v.owner,
            "slug": v.slug,
            "lastRunTime": _iso(v.started_at or v.pushed_at),
            "language": "python",
            "kernelType": v.meta.get("kernelType"),
            "isPrivate": bool(v.meta.get("isPrivate")),
            "enableGpu": bool(v.meta.get("enableGpu")),
            "enableInternet": bool(v.meta.get("enableInternet")),
            "kernelDataSources": list(v.meta.get("kernelDataSources") or []),
            "currentVersionNumber": v.number,
            "machineShape": v.meta.get("machineShape"),
        }

    def _cancel(self, body: dict[str, Any]) -> Answer:
        wanted = int(body.get("kernelSessionId") or 0)
        v = next((v for v in self.versions if v.session_id == wanted), None)
        if v is None:
            return Answer(404, {"code": 404, "message": f"No session {wanted}"})
        if v.status == ks.QUEUED:
            v.status, v.ended_at = ks.CANCEL_ACKNOWLEDGED, time.time()
        elif v.status == ks.RUNNING:
            v.status = ks.CANCEL_REQUESTED
            ks.stop(v, time.time(), "cancel")
        return Answer(200, {})

    def _quota(self, body: dict[str, Any]) -> Answer:
        now = time.time()
        used = self.gpu_spent_before_s + sum(v.gpu_s(now) for v in self.versions)
        monday = dt.datetime.fromtimestamp(now, dt.timezone.utc) + dt.timedelta(days=7)
        return Answer(200, {
            "quotaRefreshTime": monday.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "gpuQuota": {
                "timeUsed": f"{int(used)}s",
                "totalTimeAllowed": f"{int(self.limits.gpu_quota_s)}s",
            },
        })  # fmt: skip

    # -- signed downloads ---------------------------------------------------------------------

    def _sign(self, session: int, name: str) -> str:
        return hmac.new(
            self.key.encode(), f"{session}/{name}".encode(), hashlib.sha256
        ).hexdigest()[:24]

    def _signed(self, v: ks.Version, name: str) -> str:
        return f"http://localhost/_blobs/{v.session_id}/{self._sign(v.session_id, name)}/{name}"

    def serve_raw(self, handler: BaseHTTPRequestHandler, path: str) -> bool:
        if not path.startswith("/_blobs/"):
            return False
        session, sig, name = ([*path[len("/_blobs/") :].split("/", 2), "", ""])[:3]
        with self.lock:
            v = next((v for v in self.versions if str(v.session_id) == session), None)
            ok = v is not None and hmac.compare_digest(sig, self._sign(v.session_id, name))
            cut = self._take_cut(name) if ok else None
        target = v.output / name if ok and v is not None else None
        if target is None or not target.is_file() or ".." in Path(name).parts:
            handler.send_response(403)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return True
        start, sent = _send_file(handler, target, cut)
        with self.lock:
            self.downloads.append({"file": name, "start": start, "sent": sent,
                                   "cut": cut is not None and sent == cut})  # fmt: skip
        return True

    def _take_cut(self, name: str) -> int | None:
        for i, (after, file) in enumerate(self.cuts):
            if file is None or name == file or name.endswith("/" + file):
                del self.cuts[i]
                return after
        return None

    def control(self, verb: str, body: dict[str, Any]) -> Answer:
        if verb == "config":
            for k, val in body.items():
                setattr(self.limits, k, float(val))
            return Answer(200, {"ok": True})
        if verb == "cut":
            file = body.get("file")
            cut = (int(body.get("after_bytes", 0)), None if file is None else str(file))
            self.cuts += [cut] * int(body.get("next", 1))
            return Answer(200, {"ok": True})
        if verb == "uncut":
            self.cuts.clear()
            return Answer(200, {"ok": True})
        if verb == "state":
            return Answer(200, {"versions": [{
                "ref": v.ref, "number": v.number, "session_id": v.session_id,
                "status": v.status, "failure": v.failure, "sources": sorted(v.sources),
                "enable_gpu": bool(v.meta.get("enableGpu")),
                "enable_internet": v.meta.get("enableInternet"),
            } for v in self.versions], "downloads": list(self.downloads)})  # fmt: skip
        return super().control(verb, body)


def _send_file(handler: BaseHTTPRequestHandler, path: Path, cut: int | None) -> tuple[int, int]:
    """The file with ETag and byte ranges (as a bucket serves it); ``cut`` drops the connection
    after that many body bytes. Returns the first byte served and how many were sent."""
    st = path.stat()
    size, etag = st.st_size, f'"{st.st_mtime_ns:x}-{st.st_size:x}"'
    start = 0
    rng = handler.headers.get("Range") or ""
    if rng.startswith("bytes=") and handler.headers.get("If-Range", etag) == etag:
        start = int(rng[6:].split("-")[0] or 0)
    if start > size:
        handler.send_response(416)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return start, 0
    handler.send_response(206 if start else 200)
    handler.send_header("Content-Type", "application/octet-stream")
    handler.send_header("Content-Length", str(size - start))
    handler.send_header("Accept-Ranges", "bytes")
    handler.send_header("ETag", etag)
    handler.send_header("Last-Modified", handler.date_time_string(int(st.st_mtime)))
    if start:
        handler.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
    if cut is not None:
        handler.send_header("Connection", "close")
    handler.end_headers()
    sent = 0
    with open(path, "rb") as f, contextlib.suppress(OSError):
        f.seek(start)
        while chunk := f.read(CHUNK_BYTES):
            if cut is not None and sent + len(chunk) > cut:
                handler.wfile.write(chunk[: max(0, cut - sent)])
                handler.wfile.flush()
                handler.close_connection = True
                return start, cut
            handler.wfile.write(chunk)
            sent += len(chunk)
    return start, sent


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
