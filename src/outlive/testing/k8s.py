"""A throwaway Kubernetes v1.20 cluster: etcd, kube-apiserver, kube-controller-manager (every
controller, the real Job controller among them), kube-scheduler and a process kubelet.

Everything of cluster NAME lives in ``<testbed root>/k8s-<name>/``: keys and certs (``pki/``),
etcd's data on a tmpfs (``etcd/``: no fsync cost), logs (``log/``), pid files (``pids/``), the
kubeconfig (its one context is named NAME), the volumes behind the PersistentVolumes
(``volumes/``) and the kubelet's per-pod files (``kubelet/``). ``down`` stops every process it
recorded, kills whatever a container left behind and removes the directory; it is idempotent.

The node (``<name>-node``) offers cpu 4, memory 8Gi, pods 110 and ``nvidia.com/gpu: 2``; it is
run by ``outlive.testing.kubelet``, which runs each container's command as a local process (the
image is not pulled). The namespace ``outlive`` holds two bound claims: ``outlive-ckpt``
(ReadWriteOnce) and ``outlive-shared`` (ReadWriteMany), both hostPath volumes under ``volumes/``.
Binaries come from ``outlive.testing.k8s_build`` (built once, cached).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, TypedDict

from outlive.errors import ConfigError
from outlive.testing import _k8s_pki
from outlive.testing._errors import TestbedError, TestbedUnavailable
from outlive.testing._kubeapi import ApiError, KubeApi
from outlive.testing.box import testbed_root
from outlive.testing.k8s_build import wait_for_binaries

__all__ = ["DEFAULT_K8S_NAME", "K8sCluster", "K8sDoc", "check_k8s_prerequisites"]

DEFAULT_K8S_NAME = "k8s1"
NAMESPACE = "outlive"
IMAGE = "outlive-testbed"  # never pulled: the process kubelet runs commands on this machine
PVC = "outlive-ckpt"
PVC_RWX = "outlive-shared"
SERVICE_RANGE = "10.0.0.0/24"
_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?")
_TOOLS = {
    "etcd": "etcd-server",
    "openssl": "openssl",
    "unshare": "util-linux",
    "setsid": "util-linux",
    "mount": "mount",
}
# Stopped in this order by down: the kubelet first (it TERMs its containers), etcd last.
_DAEMONS = ("kubelet", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd")
MARKER_ENV = "OUTLIVE_K8S_TESTBED"  # in every container's environment: down finds leftovers by it


class K8sDoc(TypedDict):
    """``python -m outlive.testing k8s up --json``."""

    name: str
    target: dict[str, str]  # an outlive.toml [targets.<name>] table
    env: dict[str, str]  # export before calling kubectl or outlive


def check_k8s_prerequisites() -> Path:
    """Raise TestbedUnavailable naming what is missing; return the kube binaries' dir (waiting
    for a build under way, as scripts/test.sh starts one in the background)."""
    if os.geteuid() != 0:
        raise TestbedUnavailable(
            "The k8s testbed mounts volumes and memory cgroups for its containers; run as root."
        )
    missing = {t: p for t, p in _TOOLS.items() if shutil.which(t) is None}
    if missing:
        raise TestbedUnavailable(
            f"The k8s testbed needs {', '.join(sorted(missing))}, not found; install with "
            f"`apt-get install {' '.join(sorted(set(missing.values())))}`."
        )
    return wait_for_binaries()


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class K8sCluster:
    """A handle on cluster NAME: ``.up()`` starts it (or finds it healthy) and returns the
    ``up --json`` document; ``.down()``, ``.preempt(run_id)``, ``.kubectl(*args)``, ``.api``."""

    def __init__(self, name: str = DEFAULT_K8S_NAME) -> None:
        if not _NAME_RE.fullmatch(name):
            raise ConfigError(
                f"k8s testbed name {name!r} is invalid; use 1-30 lowercase letters, digits or "
                "'-', starting and ending with a letter or digit."
            )
        self.name = name
        self.dir = testbed_root() / f"k8s-{name}"

    def __repr__(self) -> str:
        return f"K8sCluster({self.name!r})"

    # -- what a test or an outlive.toml needs -------------------------------------------------

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def node(self) -> str:
        return f"{self.name}-node"

    @property
    def volumes(self) -> Path:
        """The directories behind the claims (``volumes/outlive-ckpt``, ``.../outlive-shared``)."""
        return self.dir / "volumes"

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.dir / "state.json").read_text())
        except (OSError, ValueError) as e:
            raise TestbedError(
                f"k8s testbed {self.name} is not up (no {self.dir}/state.json)."
            ) from e
        return state

    @property
    def bin_dir(self) -> Path:
        return Path(self._state()["bin_dir"])

    @property
    def api(self) -> KubeApi:
        st = self._state()
        return KubeApi(st["apiserver_port"], st["token"], str(self.dir / "pki" / "ca.crt"))

    def doc(self) -> K8sDoc:
        path = f"{self.bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        return {
            "name": self.name,
            "target": {
                "profile": "kubernetes",
                "namespace": NAMESPACE,
                "context": self.name,
                "image": IMAGE,
                "pvc": PVC,
            },
            "env": {"KUBECONFIG": str(self.kubeconfig), "PATH": path},
        }

    def kubectl(
        self, *args: str, check: bool = True, timeout_s: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the cluster's own kubectl (v1.20) against it."""
        argv = [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout_s,
            check=False,
        )  # fmt: skip
        if check and proc.returncode != 0:
            why = proc.stderr.strip() or f"exit status {proc.returncode}"
            raise TestbedError(f"`kubectl {' '.join(args)}` failed on cluster {self.name}: {why}.")
        return proc

    def is_running(self) -> bool:
        """Whether the apiserver is ready, the kubelet alive and the node Ready."""
        try:
            api = self.api
            if not _pid_alive(self.dir / "pids" / "kubelet.pid", "outlive.testing.kubelet"):
                return False
            node = api.get(f"/api/v1/nodes/{self.node}")
        except (TestbedError, OSError):
            return False
        conds = node.get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    # -- lifecycle ----------------------------------------------------------------------------

    def up(self, *, timeout_s: float = 90.0) -> K8sDoc:
        """Start the cluster and wait until its node is Ready and its claims are Bound; a
        healthy one is left running. Returns the ``up --json`` document."""
        bin_dir = check_k8s_prerequisites()
        if self.is_running():
            return self.doc()
        self.down()
        try:
            self._start(bin_dir, time.monotonic() + timeout_s)
        except BaseException:
            self.down()
            raise
        return self.doc()

    def _start(self, bin_dir: Path, deadline: float) -> None:
        d = self.dir
        for sub in ("log", "pids", "etcd", "kubelet", "volumes/" + PVC, "volumes/" + PVC_RWX):
            (d / sub).mkdir(parents=True, exist_ok=True)
        _mount_tmpfs(d / "etcd", "512m")
        token = _k8s_pki.make_pki(d / "pki", "10.0.0.1")
        etcd_port, peer_port, api_port, kubelet_port = _free_ports(4)
        state = {
            "name": self.name,
            "bin_dir": str(bin_dir),
            "token": token,
            "apiserver_port": api_port,
            "etcd_port": etcd_port,
            "kubelet_port": kubelet_port,
            "node": self.node,
            "namespace": NAMESPACE,
        }
        (d / "state.json").write_text(json.dumps(state, indent=2))
        _k8s_pki.write_kubeconfig(
            self.kubeconfig, context=self.name, namespace=NAMESPACE, port=api_port, token=token,
            ca=d / "pki" / "ca.crt",
        )  # fmt: skip
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn("etcd", shutil.which("etcd") or "etcd",
            "--name=default", f"--data-dir={d / 'etcd' / 'data'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=default={peer_url}", "--log-level=warn",
        )  # fmt: skip
        _wait(lambda: _http_ok(f"{etcd_url}/health"), deadline, "etcd answers", self._logs)
        pki = d / "pki"
        self._spawn("kube-apiserver", str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", f"--secure-port={api_port}", "--insecure-port=0",
            f"--cert-dir={pki}", f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}", "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_RANGE}", "--endpoint-reconciler-type=none",
            # No token volume to project: the process kubelet has no service-account mounts.
            "--disable-admission-plugins=ServiceAccount", "--allow-privileged=true",
            # kubectl logs: the apiserver reaches the kubelet at the node's InternalIP.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-certificate-authority={pki / 'ca.crt'}",
            "--profiling=false",
        )  # fmt: skip
        api = self.api
        _wait(lambda: _api_ready(api), deadline, "the apiserver is ready", self._logs)
        kubeconfig = str(self.kubeconfig)
        self._spawn("kube-controller-manager", str(bin_dir / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}", "--controllers=*", "--leader-elect=false",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}", "--port=0", "--secure-port=0",
            "--profiling=false",
        )  # fmt: skip
        self._spawn("kube-scheduler", str(bin_dir / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--port=0",
            "--secure-port=0", "--profiling=false",
        )  # fmt: skip
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._spawn("kubelet", sys.executable, "-m", "outlive.testing.kubelet", str(d), env=env)
        self._objects(api)
        _wait(self.is_running, deadline, "the node is Ready", self._logs)
        _wait(lambda: self._claims_bound(api), deadline, "the claims are Bound", self._logs)

    def _objects(self, api: KubeApi) -> None:
        """The namespace, the PersistentVolumes and their claims (pre-bound by claimRef)."""
        _create(api, "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        for claim, mode in ((PVC, "ReadWriteOnce"), (PVC_RWX, "ReadWriteMany")):
            pv_name = f"{self.name}-{claim}"
            _create(api, "/api/v1/persistentvolumes", {
                "metadata": {"name": pv_name},
                "spec": {
                    "capacity": {"storage": "10Gi"},
                    "accessModes": [mode],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "",
                    "hostPath": {"path": str(self.volumes / claim), "type": "Directory"},
                    "claimRef": {"namespace": NAMESPACE, "name": claim},
                },
            })  # fmt: skip
            _create(api, f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims", {
                "metadata": {"name": claim},
                "spec": {
                    "accessModes": [mode],
                    "storageClassName": "",
                    "volumeName": pv_name,
                    "resources": {"requests": {"storage": "10Gi"}},
                },
            })  # fmt: skip

    def _claims_bound(self, api: KubeApi) -> bool:
        items = api.get(f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims")["items"]
        return len(items) >= 2 and all(i.get("status", {}).get("phase") == "Bound" for i in items)

    def _spawn(self, daemon: str, *argv: str, env: dict[str, str] | None = None) -> None:
        """Start ARGV detached (``setsid -f``: not our child, so neither a zombie of a test
        process nor killed with it); it writes its own pid file before it execs."""
        pidfile = self.dir / "pids" / f"{daemon}.pid"
        with open(self.dir / "log" / f"{daemon}.log", "ab") as log:
            subprocess.run(
                ["setsid", "-f", "sh", "-c", 'echo $$ > "$0"; exec "$@"', str(pidfile), *argv],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                cwd=self.dir, check=True,
            )  # fmt: skip
        started = lambda: pidfile.exists() and pidfile.read_text().strip()  # noqa: E731
        _wait(started, time.monotonic() + 10, f"{daemon} started", self._logs)

    def _logs(self) -> str:
        tails = []
        for daemon in _DAEMONS:
            path = self.dir / "log" / f"{daemon}.log"
            if path.exists():
                lines = path.read_text(errors="replace").strip().splitlines()
                if lines:
                    tails.append(f"{daemon}: {lines[-1][:300]}")
        return "; ".join(tails)

    def down(self) -> bool:
        """Stop every process of the cluster and remove its directory; returns whether there
        was anything to remove."""
        if not self.dir.exists():
            return False
        for daemon in _DAEMONS:
            match = "outlive.testing.kubelet" if daemon == "kubelet" else daemon
            _stop_pid(self.dir / "pids" / f"{daemon}.pid", match)
        _kill_marked(f"{MARKER_ENV}={self.dir}")
        _unmount_under(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        return True

    # -- a node drain -------------------------------------------------------------------------

    def preempt(self, run_id: str) -> dict[str, Any]:
        """Play a node drain for the pod of run RUN_ID (label ``outlive/run-id``): the
        ``DisruptionTarget`` condition, then an eviction, so the kubelet TERMs the process, KILLs
        it after the grace period, and the Job controller makes a replacement pod."""
        api = self.api
        sel = urllib.parse.quote(f"outlive/run-id={run_id}", safe="=")
        pods = api.get(f"/api/v1/pods?labelSelector={sel}")["items"]
        live = [
            p for p in pods
            if not p["metadata"].get("deletionTimestamp")
            and p.get("status", {}).get("phase") in ("Pending", "Running")
        ]  # fmt: skip
        if not live:
            raise TestbedError(
                f"No running pod of run {run_id} on cluster {self.name} to preempt "
                f"({len(pods)} pod(s) carry the label outlive/run-id={run_id})."
            )
        pod = min(live, key=lambda p: p["status"]["phase"] != "Running")  # a running one first
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        path = f"/api/v1/namespaces/{ns}/pods/{name}"
        api.patch_status(path, {"conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting", "lastTransitionTime": _now(),
        }]})  # fmt: skip
        grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        api.request("POST", f"{path}/eviction", {
            "apiVersion": "policy/v1beta1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": ns},
        })  # fmt: skip
        return {"name": self.name, "ok": True, "pod": name, "namespace": ns, "grace_s": grace}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _create(api: KubeApi, path: str, obj: dict[str, Any]) -> None:
    try:
        api.request("POST", path, obj)
    except ApiError as e:
        if e.status != 409:  # already there (an up after a half-finished one)
            raise


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _api_ready(api: KubeApi) -> bool:
    try:
        return api.send("GET", "/readyz", timeout_s=5).strip() == "ok"
    except (TestbedError, OSError, ValueError):
        return False


def _wait(ok: Any, deadline: float, what: str, logs: Any) -> None:
    while time.monotonic() < deadline:
        try:
            if ok():
                return
        except (TestbedError, OSError):
            pass
        time.sleep(0.2)
    raise TestbedError(f"k8s testbed: timed out waiting until {what} ({logs()}).")


def _mount_tmpfs(path: Path, size: str) -> None:
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise TestbedError(f"Cannot mount a tmpfs for etcd at {path}: {proc.stderr.strip()}.")


def _unmount_under(d: Path) -> None:
    prefix = str(d) + "/"
    with open("/proc/self/mounts") as f:
        points = [ln.split()[1] for ln in f if ln.split()[1].startswith(prefix)]
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _pid_alive(pidfile: Path, match: str) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
        return match.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return False


def _stop_pid(pidfile: Path, match: str, timeout_s: float = 15.0) -> None:
    """TERM (then KILL) the process named in PIDFILE if its command line still holds MATCH."""
    if not _pid_alive(pidfile, match):
        return
    pid = int(pidfile.read_text().strip())
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid_alive(pidfile, match):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z"):
            break  # a zombie of a parent that is gone: already dead
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _kill_marked(marker: str) -> None:
    """KILL every process whose environment holds MARKER (a container the kubelet left)."""
    want = marker.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
        except OSError:
            continue
        if want in environ.split(b"\0"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry), signal.SIGKILL)
