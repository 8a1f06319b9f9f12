"""The ``kubectl exec`` transport: commands run in one container of one pod, through the user's
own ``kubectl`` (kubeconfig, context, namespace). It reaches what only a pod can read, such as a
PersistentVolumeClaim; the backend picks the pod (``backends.k8s_reader``).

rsync goes over it too: ``-e`` is ``kubectl exec -i POD -- sh -c 'shift; exec "$@"' sh``, and
rsync appends ``HOST rsync --server ...``; the small script drops HOST (the pod's name, which
kubectl was already given) and runs the rest as its argv. Every argument stays one argv entry
from here to the pod (no shell on either side splits it), and paths travel inside rsync's
protocol (``--protect-args``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

from outlive.errors import TransportError
from outlive.transport import files
from outlive.transport.base import Completed
from outlive.transport.files import Direction, RsyncOptions

__all__ = ["KubectlExecTransport"]

# What rsync appends after the remote shell is "HOST rsync --server ...": drop HOST, run the rest.
_DROP_HOST = 'shift; exec "$@"'
_GONE = ("not found", "unable to upgrade connection", "container not found", "is not running")

NO_KUBECTL = (
    "kubectl is not on PATH; install it (it reads your kubeconfig) or add its directory to PATH"
)


class KubectlExecTransport:
    """Runs argv in a container of a pod: ``where()`` says which (pod, container), resolved
    on first use, so a backend can hand the transport out before it knows which pod will do."""

    is_remote = True

    def __init__(
        self, name: str, kubectl_argv: Callable[..., list[str]],
        where: Callable[[], tuple[str, str]],
    ) -> None:  # fmt: skip
        self.name = name
        self._kubectl_argv = kubectl_argv  # Kubectl.argv: context and namespace
        self._where = where

    def _pod(self) -> str:
        return self._where()[0]

    def exec_argv(self, argv: Sequence[str], *, stdin: bool = True) -> list[str]:
        pod, container = self._where()
        flags = ["-i"] if stdin else []
        return self._kubectl_argv("exec", *flags, "-c", container, pod, "--", *argv)

    def run(
        self, argv: Sequence[str], *, stdin: bytes = b"", timeout_s: float | None = None
    ) -> Completed:
        full = self.exec_argv(argv)
        try:
            proc = subprocess.run(full, input=stdin, capture_output=True, timeout=timeout_s)
        except FileNotFoundError:
            raise TransportError(NO_KUBECTL) from None
        except subprocess.TimeoutExpired:
            raise TransportError(
                f"{argv[0]} did not finish within {timeout_s:.0f} s in pod {self._pod()} of "
                f"{self.name}; check the pod (`kubectl describe pod {self._pod()}`)"
            ) from None
        return Completed(tuple(full), proc.returncode, proc.stdout, proc.stderr)

    def command_argv(self, argv: Sequence[str]) -> list[str]:
        return self.exec_argv(argv)

    def recover(self, returncode: int, stderr: bytes) -> bool:
        return False

    def failure(self, returncode: int, stderr: bytes) -> Exception | None:
        """kubectl's own failure (the pod or container is gone, the exec was refused)."""
        text = stderr.decode("utf-8", errors="replace").strip()
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("WARNING:")]
        last = lines[-1] if lines else ""
        if last.startswith(("error:", "Error from server")) and any(g in last for g in _GONE):
            return TransportError(
                f"{self.name}: kubectl exec into pod {self._pod()} failed: {last}"
            )
        return None

    def rsync_argv(
        self, direction: Direction, here: str, there: str, opts: RsyncOptions
    ) -> list[str]:
        shell = self.exec_argv(["sh", "-c", _DROP_HOST, "sh"])
        return files.rsync_argv(direction, here, there, opts, remote_shell=shell, host=self._pod())

    def close(self) -> None:
        return None
