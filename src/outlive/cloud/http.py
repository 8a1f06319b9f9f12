"""JSON over HTTPS with a bearer key, for the provider clients: the standard library's urllib,
a 429 honoured by waiting its ``Retry-After`` (bounded), and every failure turned into one
sentence that names the provider and what to do. The key goes in a header, never in a URL, a
log line or an error."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from outlive.errors import ProviderAuthError, ProviderError

TIMEOUT_S = 30.0
MAX_TRIES = 5  # a 429 is retried this many times in all
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is cut to this (the next try says if it is not)

Query = Mapping[str, str | list[str]]


@dataclass(frozen=True)
class Reply:
    """One HTTP answer: status, the JSON body (None when empty) and the headers."""

    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class JsonApi:
    """One provider's API: its base URL, its key, and how to wait before a retry."""

    provider: str  # for messages: "RunPod", "Paperspace"
    base_url: str
    key: str = field(repr=False)
    key_hint: str  # where the key came from, for the 401 sentence
    timeout_s: float = TIMEOUT_S
    sleep: Callable[[float], None] = time.sleep

    def url(self, path: str, query: Query | None = None) -> str:
        url = self.base_url.rstrip("/") + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        return url

    def call(
        self,
        method: str,
        path: str,
        *,
        query: Query | None = None,
        body: object | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> Reply:
        """Send one request (retrying a 429 after its Retry-After); return the reply when its
        status is in ``ok`` (a 404 too when listed there), else raise one sentence."""
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(1, MAX_TRIES + 1):
            reply = self._once(method, self.url(path, query), data)
            if reply.status == 429 and attempt < MAX_TRIES:
                self.sleep(_retry_after_s(reply.headers))
                continue
            break
        if reply.status in ok:
            return reply
        what = f"{method} {path}"
        if reply.status == 401:
            raise ProviderAuthError(
                f"the {self.provider} API refused the key from {self.key_hint} (401); "
                "check that it is a current API key with read and write access"
            )
        if reply.status == 429:
            raise ProviderError(
                f"the {self.provider} API is still rate-limiting after {MAX_TRIES} tries "
                f"({what}); wait a minute and run the command again"
            )
        raise ProviderError(
            f"the {self.provider} API answered {reply.status} to {what}"
            f"{_said(reply.body)}; check the id, or try again later"
        )

    def _once(self, method: str, url: str, data: bytes | None) -> Reply:
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.key}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return Reply(resp.status, _json(resp.read()), dict(resp.headers.items()))
        except urllib.error.HTTPError as exc:
            with exc:
                return Reply(exc.code, _json(exc.read()), dict(exc.headers.items()))
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise ProviderError(
                f"cannot reach the {self.provider} API at {self.base_url} ({reason}); "
                "check the network and try again"
            ) from None


def _json(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return {"message": raw[:200].decode("utf-8", "replace")}


def _said(body: Any) -> str:
    if isinstance(body, dict):
        msg = body.get("message") or body.get("error")
        if isinstance(msg, str) and msg:
            return f" ({msg[:200]})"
    return ""


def _retry_after_s(headers: Mapping[str, str]) -> float:
    """Seconds to wait from a Retry-After header (seconds form; 1 s when absent or a date)."""
    raw = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    try:
        wait = float(raw) if raw is not None else 1.0
    except ValueError:
        wait = 1.0
    return min(max(wait, 0.0), MAX_RETRY_AFTER_S)
