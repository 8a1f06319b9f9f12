"""The cluster through the user's own ``kubectl``: their kubeconfig (``$KUBECONFIG``) and the
target's ``context``. One process per request; every failure is one sentence.

Why kubectl and not the API over HTTPS: it honours every kubeconfig auth mechanism the user
already has (exec plugins, OIDC, client certificates) with nothing to install, and a request
costs its start-up plus one round trip (measured in bench/k8s_latency.py; docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from outlive.errors import ConfigError, TransportError
from outlive.transport.kubectl import NO_KUBECTL

__all__ = ["Kubectl"]

DEFAULT_TIMEOUT_S = 30.0


class Kubectl:
    """``kubectl`` for one context and namespace."""

    def __init__(self, context: str | None, namespace: str, cache_dir: Path | None = None) -> None:
        self.context = context
        self.namespace = namespace
        self.cache_dir = cache_dir  # where the server's version is kept once learned

    def argv(self, *args: str, namespaced: bool = True) -> list[str]:
        out = ["kubectl"]
        if self.context:
            out.append(f"--context={self.context}")
        if namespaced:
            out.append(f"--namespace={self.namespace}")
        return [*out, *args]

    def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        namespaced: bool = True,
    ) -> bytes:
        """kubectl's stdout; TransportError with its own last words when it fails."""
        argv = self.argv(*args, namespaced=namespaced)
        try:
            done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout_s)
        except FileNotFoundError:
            raise TransportError(NO_KUBECTL) from None
        except subprocess.TimeoutExpired:
            raise TransportError(
                f"kubectl {args[0]} did not answer in {timeout_s:.0f} s; check that the cluster "
                "is reachable (`kubectl cluster-info`)"
            ) from None
        if done.returncode != 0:
            raise TransportError(f"kubectl {args[0]} failed: {_last_words(done.stderr)}")
        return done.stdout

    def get_json(self, what: str, *args: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> Any:
        return json.loads(self.run("get", what, *args, "-o", "json", timeout_s=timeout_s))

    def apply(self, doc: dict[str, Any]) -> None:
        """Create or update ``doc`` (a ``v1 List``) in one request, read from stdin. Server-side
        apply: no last-applied annotation holding a second copy of the ConfigMap's bytes."""
        self.run(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=outlive",
            "-f",
            "-",
            stdin=json.dumps(doc).encode(),
            timeout_s=60.0,
        )

    def server_minor(self) -> int:
        """The API server's minor version, asked once per context and kubeconfig and cached."""
        cache = self._version_cache()
        if cache is not None:
            try:
                return int(json.loads(cache.read_text())["minor"])
            except (OSError, ValueError, KeyError, TypeError):
                pass
        doc = json.loads(self.run("version", "-o", "json", namespaced=False))
        server = doc.get("serverVersion") or {}
        minor = int("".join(c for c in str(server.get("minor", "")) if c.isdigit()) or 0)
        if not minor:
            raise ConfigError(
                f"the cluster did not say its version ({server}); check `kubectl version`"
            )
        if cache is not None:
            try:
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps({"minor": minor, "git": server.get("gitVersion")}))
            except OSError:
                pass  # asked again next time
        return minor

    def _version_cache(self) -> Path | None:
        if self.cache_dir is None:
            return None
        key = json.dumps([self.context, os.environ.get("KUBECONFIG", "~/.kube/config")])
        return self.cache_dir / f"version-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def _last_words(stderr: bytes) -> str:
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith("WARNING:")]  # version skew notes
    return lines[-1][:400] if lines else "no message"
