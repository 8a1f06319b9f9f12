"""A minimal Kubernetes API client for the testbed (stdlib only): JSON requests and watches with
a bearer token over HTTPS, verified against the cluster's own CA."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from typing import Any

from outlive.testing._errors import TestbedError

__all__ = ["ApiError", "KubeApi"]

Obj = dict[str, Any]


class ApiError(TestbedError):
    """The API server answered with an error status."""

    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        super().__init__(f"{method} {path} answered {status}: {message}.")
        self.status = status


class KubeApi:
    """``request(method, path, body)`` → the decoded JSON answer; ``watch(path)`` → events."""

    def __init__(self, port: int, token: str, ca_file: str, host: str = "127.0.0.1") -> None:
        self.host, self.port, self.token = host, port, token
        self._ctx = ssl.create_default_context(cafile=ca_file)

    def _conn(self, timeout_s: float | None) -> http.client.HTTPSConnection:
        return http.client.HTTPSConnection(
            self.host, self.port, context=self._ctx, timeout=timeout_s
        )

    def request(
        self,
        method: str,
        path: str,
        body: Obj | None = None,
        *,
        content_type: str = "application/json",
        timeout_s: float = 30.0,
    ) -> Obj:
        data = json.dumps(body).encode() if body is not None else None
        text = self.send(method, path, data, content_type=content_type, timeout_s=timeout_s)
        return json.loads(text) if text else {}

    def send(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout_s: float = 30.0,
    ) -> str:
        """One request; the answer's body as text (``/readyz`` answers ``ok``, not JSON)."""
        conn = self._conn(timeout_s)
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = content_type
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            text = resp.read().decode(errors="replace")
        finally:
            conn.close()
        if resp.status >= 400:
            raise ApiError(resp.status, method, path, text)
        return text

    def get(self, path: str) -> Obj:
        return self.request("GET", path)

    def patch_status(self, path: str, status: Obj) -> Obj:
        """A strategic merge patch of ``status`` (lists keyed as the API defines: conditions by
        type, containerStatuses by name), so fields others set (PodScheduled) are kept."""
        return self.request(
            "PATCH",
            path + "/status",
            {"status": status},
            content_type="application/strategic-merge-patch+json",
        )

    def watch(self, path: str, timeout_s: float = 300.0) -> Iterator[Obj]:
        """The events of ``path?watch=1&...`` (path includes its query) until the server ends
        the watch (``timeoutSeconds``) or the connection drops."""
        conn = self._conn(timeout_s + 30)
        try:
            sep = "&" if "?" in path else "?"
            conn.request(
                "GET",
                f"{path}{sep}watch=1&timeoutSeconds={int(timeout_s)}",
                headers={"Authorization": f"Bearer {self.token}"},
            )
            resp = conn.getresponse()
            if resp.status >= 400:
                raise ApiError(resp.status, "GET", path, resp.read().decode(errors="replace"))
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            conn.close()
