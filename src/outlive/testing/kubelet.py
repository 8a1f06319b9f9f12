"""The process kubelet of the k8s testbed: ``python -m outlive.testing.kubelet STATE_DIR``.

It registers the node (cpu 4, memory 8Gi, pods 110, ``nvidia.com/gpu: 2``; Ready, heartbeats every
10 s), watches the pods the real scheduler binds to it and runs each container's command as a
local root process in a private mount namespace (``_kubelet_container``). It reports status
through the pods' status subresource as a kubelet does: Running with ``startedAt`` and the Ready
conditions, then Succeeded/Failed with exit code, reason (Completed, Error, OOMKilled,
DeadlineExceeded) and the termination message. A pod given a ``deletionTimestamp`` gets TERM on
its process groups, KILL after ``deletionGracePeriodSeconds``, a final status, then the deletion is
finished (``gracePeriodSeconds=0``). Logs are served for ``kubectl logs`` (``_kubelet_logs``), and
``kubectl exec`` runs commands in a running container's mount namespace (``_kubelet_exec``).
Init containers and restarts (``restartPolicy`` other than Never) are not played.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from outlive.testing._kubeapi import ApiError, KubeApi
from outlive.testing._kubelet_container import (
    ConfigMissing,
    Container,
    now,
    remove_paths,
    start_container,
)
from outlive.testing._kubelet_exec import ExecTarget
from outlive.testing._kubelet_logs import serve_logs

__all__ = ["Kubelet", "main"]

Obj = dict[str, Any]
CAPACITY = {"cpu": "4", "memory": "8Gi", "pods": "110", "nvidia.com/gpu": "2",
            "ephemeral-storage": "100Gi"}  # fmt: skip
HEARTBEAT_S = 10.0
TICK_S = 0.05
CONFIG_RETRY_S = 1.0
DELETE_RETRY_S = 2.0
MARKER_ENV = "OUTLIVE_K8S_TESTBED"


@dataclass
class PodRun:
    """One pod on this node, from first sight until the API forgets it."""

    pod: Obj
    dir: Path
    containers: dict[str, Container] = field(default_factory=dict)
    started_at: str = ""
    start_mono: float = 0.0
    waiting: str = ""  # why the containers could not start yet (CreateContainerConfigError)
    retry_at: float = 0.0
    kill_at: float | None = None  # set once terminating: KILL when reached
    deadline_exceeded: bool = False
    final: bool = False  # the final status was reported
    delete_retry_at: float = 0.0

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def path(self) -> str:
        m = self.pod["metadata"]
        return f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}"

    def done(self) -> bool:
        return bool(self.containers) and all(c.poll() for c in self.containers.values())


class Kubelet:
    """The loop: events from a watch thread, process exits and deadlines from ticks."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir
        state = json.loads((state_dir / "state.json").read_text())
        self.node = str(state["node"])
        self.port = int(state["kubelet_port"])
        self.api = KubeApi(
            state["apiserver_port"], state["token"], str(state_dir / "pki" / "ca.crt")
        )
        self.base_env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": "/root",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            MARKER_ENV: str(state_dir),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(state["apiserver_port"]),
        }
        self.pods: dict[str, PodRun] = {}
        self.lock = threading.Lock()  # guards pods against the log server's threads
        self.events: queue.Queue[Obj] = queue.Queue()
        self.created_paths: list[Path] = []
        self.stopping = threading.Event()

    # -- the node -----------------------------------------------------------------------------

    def register(self) -> None:
        labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64"}  # fmt: skip
        with contextlib.suppress(ApiError):
            self.api.request(
                "POST", "/api/v1/nodes", {"metadata": {"name": self.node, "labels": labels}}
            )
        self.api.patch_status(f"/api/v1/nodes/{self.node}", {
            "capacity": CAPACITY, "allocatable": CAPACITY,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": self.node}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {"kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                         "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "outlive-process://1", "osImage": "outlive",
                         "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "",
                         "bootID": ""},
            "conditions": self._node_conditions(),
        })  # fmt: skip

    def _node_conditions(self) -> list[Obj]:
        t = now()
        conds = [("Ready", "True", "KubeletReady", "the process kubelet is posting ready status")]
        for kind in ("MemoryPressure", "DiskPressure", "PIDPressure"):
            conds.append((kind, "False", f"KubeletHasNo{kind}", f"no {kind}"))
        return [
            {"type": k, "status": s, "reason": r, "message": m, "lastHeartbeatTime": t,
             "lastTransitionTime": t}
            for k, s, r, m in conds
        ]  # fmt: skip

    def heartbeat(self) -> None:
        conds = [{"type": c["type"], "lastHeartbeatTime": c["lastHeartbeatTime"]}
                 for c in self._node_conditions()]  # fmt: skip
        with contextlib.suppress(ApiError, OSError):
            self.api.patch_status(f"/api/v1/nodes/{self.node}", {"conditions": conds})

    # -- watching -----------------------------------------------------------------------------

    def watch_forever(self) -> None:
        sel = f"fieldSelector=spec.nodeName%3D{self.node}"
        while not self.stopping.is_set():
            try:
                listed = self.api.get(f"/api/v1/pods?{sel}")
                for pod in listed["items"]:
                    self.events.put({"type": "ADDED", "object": pod})
                self.events.put(
                    {"type": "SYNC", "uids": [p["metadata"]["uid"] for p in listed["items"]]}
                )
                rv = listed["metadata"]["resourceVersion"]
                while not self.stopping.is_set():
                    for ev in self.api.watch(
                        f"/api/v1/pods?{sel}&resourceVersion={rv}&allowWatchBookmarks=true"
                    ):
                        if ev["type"] == "ERROR":
                            raise ApiError(410, "WATCH", "pods", json.dumps(ev["object"]))
                        rv = ev["object"]["metadata"]["resourceVersion"]
                        if ev["type"] != "BOOKMARK":
                            self.events.put(ev)
            except (ApiError, OSError, ValueError):
                time.sleep(0.5)

    # -- the loop -----------------------------------------------------------------------------

    def run(self) -> None:
        self.register()
        pki = self.dir / "pki"
        server = serve_logs(
            self.port, pki / "kubelet.crt", pki / "kubelet.key", self.log_source, self.exec_target
        )
        threading.Thread(target=self.watch_forever, name="pod-watch", daemon=True).start()
        next_beat = time.monotonic() + HEARTBEAT_S
        try:
            while not self.stopping.is_set():
                try:
                    ev = self.events.get(timeout=TICK_S)
                except queue.Empty:
                    ev = None
                try:
                    if ev is not None:
                        self.handle(ev)
                        continue  # drain events first
                    self.tick()
                except Exception:  # a kubelet keeps serving its other pods
                    traceback.print_exc()
                    time.sleep(TICK_S)
                if time.monotonic() >= next_beat:
                    self.heartbeat()
                    next_beat = time.monotonic() + HEARTBEAT_S
        finally:
            server.shutdown()
            for run in self.pods.values():
                for c in run.containers.values():
                    c.signal(signal.SIGKILL)
                    c.proc.wait()
                    c.poll()
            self._remove_created_paths(force=True)

    def handle(self, ev: Obj) -> None:
        if ev["type"] == "SYNC":  # after a relist: pods deleted while we were not watching
            for uid in set(self.pods) - set(ev["uids"]):
                self.forget(self.pods[uid])
            return
        pod = ev["object"]
        uid = pod["metadata"]["uid"]
        run = self.pods.get(uid)
        if ev["type"] == "DELETED":
            if run:
                self.forget(run)
            return
        if run is None:
            phase = pod.get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed"):  # finished before this kubelet started
                if pod["metadata"].get("deletionTimestamp"):
                    self.finish_deletion(pod)
                return
            run = PodRun(pod=pod, dir=self.dir / "kubelet" / "pods" / uid)
            with self.lock:
                self.pods[uid] = run
        run.pod = pod
        if pod["metadata"].get("deletionTimestamp") and run.kill_at is None:
            self.terminate(run, float(pod["metadata"].get("deletionGracePeriodSeconds", 30)))

    def tick(self) -> None:
        mono = time.monotonic()
        for run in list(self.pods.values()):
            if not run.containers and run.kill_at is None and mono >= run.retry_at:
                self.start(run)
            if run.kill_at is not None and mono >= run.kill_at:
                for c in run.containers.values():
                    c.signal(signal.SIGKILL)
            if self._past_deadline(run, mono):
                run.deadline_exceeded = True
                grace = run.pod["spec"].get("terminationGracePeriodSeconds", 30)
                self.terminate(run, float(grace))
            if not run.final and (run.done() or (run.kill_at is not None and not run.containers)):
                self.report_final(run)
                self._remove_created_paths()
            deleting = run.final and run.pod["metadata"].get("deletionTimestamp")
            if deleting and mono >= run.delete_retry_at:  # again until the watch says DELETED
                run.delete_retry_at = mono + DELETE_RETRY_S
                self.finish_deletion(run.pod)

    @staticmethod
    def _past_deadline(run: PodRun, mono: float) -> bool:
        """The pod's own activeDeadlineSeconds (the Job's is the Job controller's business)."""
        deadline = run.pod["spec"].get("activeDeadlineSeconds")
        if not deadline or not run.containers or run.final or run.kill_at is not None:
            return False
        return mono - run.start_mono >= float(deadline)

    # -- one pod ------------------------------------------------------------------------------

    def start(self, run: PodRun) -> None:
        run.dir.mkdir(parents=True, exist_ok=True)
        env = dict(self.base_env, HOSTNAME=run.pod["metadata"]["name"])
        started: dict[str, Container] = {}
        try:
            for spec in run.pod["spec"]["containers"]:
                started[spec["name"]] = c = start_container(self.api, run.pod, spec, run.dir, env)
                self.created_paths += c.created_paths
        except (ConfigMissing, ApiError, OSError, ValueError) as e:
            for c in started.values():
                c.signal(signal.SIGKILL)
                c.proc.wait()
            run.waiting, run.retry_at = str(e), time.monotonic() + CONFIG_RETRY_S
            self.report(run, self.waiting_status(run))
            return
        with self.lock:
            run.containers = started
        run.started_at, run.start_mono, run.waiting = now(), time.monotonic(), ""
        self.report(run, self.running_status(run))

    def terminate(self, run: PodRun, grace_s: float) -> None:
        run.kill_at = time.monotonic() + grace_s
        for c in run.containers.values():
            c.signal(signal.SIGTERM)

    def finish_deletion(self, pod: Obj) -> None:
        m = pod["metadata"]
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": m["uid"]}}  # fmt: skip
        with contextlib.suppress(ApiError, OSError):
            self.api.request(
                "DELETE", f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}", body
            )

    def forget(self, run: PodRun) -> None:
        """The pod is gone from the API: kill what is left, drop its files."""
        for c in run.containers.values():
            c.signal(signal.SIGKILL)
            c.proc.wait()
            c.poll()
        with self.lock:
            self.pods.pop(run.uid, None)
        self._remove_created_paths()
        shutil.rmtree(run.dir, ignore_errors=True)

    def _remove_created_paths(self, force: bool = False) -> None:
        """Mountpoints made on this machine's filesystem for containers, removed once no
        container runs (removing one under a live container would detach its mount)."""
        alive = any(c.exit_code is None and c.proc.poll() is None
                    for r in self.pods.values() for c in r.containers.values())  # fmt: skip
        if alive and not force:
            return
        remove_paths(self.created_paths)
        self.created_paths = []

    # -- status -------------------------------------------------------------------------------

    def report(self, run: PodRun, status: Obj) -> None:
        try:
            run.pod = self.api.patch_status(run.path, status)
        except (ApiError, OSError) as e:
            print(f"kubelet: status of {run.path}: {e}", file=sys.stderr, flush=True)

    def _base(self, run: PodRun) -> Obj:
        return {"hostIP": "127.0.0.1", "podIP": "127.0.0.1",
                "podIPs": [{"ip": "127.0.0.1"}], "startTime": run.started_at or now()}  # fmt: skip

    def _cond(self, kind: str, status: str, reason: str | None = None) -> Obj:
        c = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now()}
        if reason:
            c["reason"] = reason
        return c

    def waiting_status(self, run: PodRun) -> Obj:
        statuses = [{"name": s["name"], "image": s.get("image", ""), "imageID": "",
                     "ready": False, "restartCount": 0, "started": False,
                     "state": {"waiting": {"reason": "CreateContainerConfigError",
                                           "message": run.waiting}}}
                    for s in run.pod["spec"]["containers"]]  # fmt: skip
        return {**self._base(run), "phase": "Pending", "containerStatuses": statuses}

    def running_status(self, run: PodRun) -> Obj:
        statuses = [{"name": c.name, "image": self._image(run, c.name), "imageID": "",
                     "containerID": _cid(c), "ready": True, "started": True,
                     "restartCount": 0, "state": {"running": {"startedAt": c.started_at}}}
                    for c in run.containers.values()]  # fmt: skip
        conds = [self._cond(k, "True") for k in ("Initialized", "Ready", "ContainersReady")]
        return {**self._base(run), "phase": "Running", "conditions": conds,
                "containerStatuses": statuses}  # fmt: skip

    def report_final(self, run: PodRun) -> None:
        run.final = True
        if not run.containers:  # deleted before it started: nothing to report
            return
        statuses = []
        for c in run.containers.values():
            term = {"exitCode": c.exit_code, "reason": c.reason, "startedAt": c.started_at,
                    "finishedAt": c.finished_at, "containerID": _cid(c)}  # fmt: skip
            if c.message:
                term["message"] = c.message
            statuses.append({"name": c.name, "image": self._image(run, c.name), "imageID": "",
                             "containerID": term["containerID"], "ready": False, "started": False,
                             "restartCount": 0, "state": {"terminated": term}})  # fmt: skip
        ok = all(c.exit_code == 0 for c in run.containers.values()) and not run.deadline_exceeded
        status: Obj = {**self._base(run), "phase": "Succeeded" if ok else "Failed",
                       "containerStatuses": statuses,
                       "conditions": [self._cond(k, "False", "PodCompleted")
                                      for k in ("Ready", "ContainersReady")]}  # fmt: skip
        if run.deadline_exceeded:
            status["reason"] = "DeadlineExceeded"
            status["message"] = "Pod was active on the node longer than the specified deadline"
        self.report(run, status)

    @staticmethod
    def _image(run: PodRun, name: str) -> str:
        specs = [s for s in run.pod["spec"]["containers"] if s["name"] == name]
        return str(specs[0].get("image", "")) if specs else ""

    def log_source(self, ns: str, pod: str, container: str) -> tuple[Path, Any] | None:
        with self.lock:
            for run in self.pods.values():
                m = run.pod["metadata"]
                c = run.containers.get(container)
                if m["namespace"] == ns and m["name"] == pod and c is not None:
                    return c.log, lambda c=c: c.exit_code is not None
        return None

    def exec_target(self, ns: str, pod: str, container: str) -> ExecTarget | None:
        with self.lock:
            for run in self.pods.values():
                m = run.pod["metadata"]
                c = run.containers.get(container)
                if m["namespace"] != ns or m["name"] != pod or c is None:
                    continue
                if c.exit_code is not None or c.proc.poll() is not None or run.kill_at is not None:
                    return None
                return ExecTarget(c.proc.pid, dict(c.env), c.workdir, c.execs.append)
        return None


def _cid(c: Container) -> str:
    return f"outlive://{c.proc.pid}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m outlive.testing.kubelet STATE_DIR", file=sys.stderr)
        return 2
    kubelet = Kubelet(Path(args[0]))
    signal.signal(signal.SIGTERM, lambda *_: kubelet.stopping.set())
    kubelet.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
