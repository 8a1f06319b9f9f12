"""Kubernetes: a run is a Job, applied through the user's ``kubectl`` in one request with its
ConfigMap (the agent zipapp, the project tree, the launch request) and its Secret; the pod's
entry point is the agent's supervisor (:mod:`outlive.agent.box.kubernetes`). Status is one
``kubectl get jobs,pods`` per namespace, judged by :mod:`outlive.backends.k8s_state`; logs are
``kubectl logs`` of the newest pod, followed across replacement pods; cancel deletes the Job
(the pods get their grace); ``down`` prints the ``kubectl delete`` commands, never runs them.

The run's records and checkpoints live on the claim, which only a pod can read: ``pull`` and the
gate reach it with ``kubectl exec`` into the run's own pod while it runs, else into a reader pod
made for the command and deleted after it (:mod:`outlive.backends.k8s_reader`); the agent runs
there from its ConfigMap, rsync over the same exec (docs/guides/kubernetes.md).
"""

from __future__ import annotations

import io
import os
import shlex
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive import wire
from outlive._shapes import replace
from outlive.backends import k8s_manifest as km
from outlive.backends import k8s_state
from outlive.backends.base import (
    ArrayPlan,
    CancelReply,
    CheckpointFile,
    FoundRun,
    LaunchReply,
    ManifestReply,
    ProjectRef,
    TailChunk,
)
from outlive.backends.k8s_api import Kubectl
from outlive.backends.k8s_reader import ClaimReader
from outlive.backends.k8s_values import label_value
from outlive.config import KubernetesOptions
from outlive.errors import BoxError, ConfigError, TransportError, UsageError

if TYPE_CHECKING:
    from outlive.agent.client import AgentClient
    from outlive.config import Target
    from outlive.store import RunRecord
    from outlive.transport.base import Transport

__all__ = ["KubernetesBackend"]

LOG_TIMEOUT_S = 30.0


class KubernetesBackend:
    name = "kubernetes"
    deploys_with_launch = True  # the tree travels in the run's ConfigMap: nothing is pushed
    ended_is_final = False

    def __init__(
        self,
        target: Target,
        agent: AgentClient,
        records: Callable[[], Iterable[RunRecord]] = tuple,
        project: ProjectRef | None = None,
    ) -> None:
        self.target = target
        self.agent = agent  # unused: nothing of outlive's runs on this machine for a cluster
        self.records = records
        if project is None:
            raise ConfigError("a kubernetes target needs its project; this is a bug in the caller")
        self.project = project
        self.kubectl = Kubectl(self.options.context, self.options.namespace, self._state("k8s"))
        self._logs: dict[str, tuple[str, int]] = {}  # run id -> (pod followed, bytes before it)
        self._reader: ClaimReader | None = None
        self._reading: set[str] = set()  # the runs the commands so far asked about

    @property
    def options(self) -> KubernetesOptions:
        options = self.target.options
        if not isinstance(options, KubernetesOptions):  # a config cache from another version
            raise ConfigError(
                f"target {self.target.name!r} has no Kubernetes settings; check its profile"
            )
        return options

    @property
    def transport(self) -> Transport:
        """``kubectl exec`` into the pod that reads the claim (picked on first use)."""
        from outlive.transport.kubectl import KubectlExecTransport

        return KubectlExecTransport(self.target.name, self.kubectl.argv, self._reading_pod)

    @property
    def reader(self) -> ClaimReader:
        if self._reader is None:
            claim = self.options.pvc or km.claim_name(self.project.name)
            self._reader = ClaimReader(self.kubectl, self.project.name, claim, self.options)
        return self._reader

    def _reading_pod(self) -> tuple[str, str]:
        pod = self.reader.resolve(self._reading)
        return pod, self.reader.container

    def release(self) -> list[str]:
        return self._reader.release() if self._reader is not None else []

    def _state(self, *parts: str) -> Path:
        return self.project.state_dir.joinpath(*parts)

    def box_backend(self, detach: str | None) -> str:
        if detach is not None:
            raise UsageError(
                "--detach-with does not apply to a kubernetes target: the Job is the detach"
            )
        return wire.BACKEND_KUBERNETES

    # -- launch ---------------------------------------------------------------------------------

    def launch(self, request: wire.LaunchRequest) -> LaunchReply:
        opt = self.options
        if not opt.image:
            raise ConfigError(
                f"target {self.target.name!r} has no image; set image = the container image "
                "that has python3 and your dependencies (pin a digest, U30)"
            )
        workdir, durable = request.workdir, request.durable or request.workdir
        for what, path in (("workdir", workdir), ("durable", durable)):
            if not _under(path, km.MOUNT_PVC):
                raise ConfigError(
                    f"{what} = {path!r} of target {self.target.name!r} is outside the claim "
                    f"mounted at {km.MOUNT_PVC}; everything else in a pod is lost with it (K8S5)"
                )
        secrets = {}
        for name in request.secrets:
            value = os.environ.get(name)
            if value is None:
                raise UsageError(
                    f"secret {name} is not set in this shell; export it here (it goes to a "
                    "Kubernetes Secret the pod reads, never into a manifest) or drop it from "
                    "the target's secrets"
                )
            secrets[name] = value
        files = sorted((request.deploy_manifest or {}).keys())
        box_request = replace(
            request,
            secrets=[],  # they arrive as env vars from the Secret
            deploy_manifest=None,
            pythonpath=f"{km.MOUNT_BUNDLE}/agent.pyz",
        )
        spec = self.job_spec(box_request, self.kubectl.server_minor(), self._zip(files))
        doc, warnings = km.render(spec)
        if secrets:
            doc["items"].insert(-1, km.secret_object(spec, secrets))
        self.kubectl.apply(doc)
        return LaunchReply(
            run_dir=_run_dir(workdir, request.run_id),
            ckpt_dir=f"{durable.rstrip('/')}/{request.name}",
            pid=None,
            job_id=km.job_name(request.run_id),
            warnings=tuple(warnings),
        )

    def job_spec(
        self, request: wire.LaunchRequest, server_minor: int, project_zip: bytes
    ) -> km.JobSpec:
        """The renderer's input for ``request`` (also used by the tests and the benchmark)."""
        from outlive.agent.bundle import zipapp
        from outlive.backends.slurm_script import time_limit_s

        opt = self.options
        return km.JobSpec(
            run_id=request.run_id,
            name=request.name,
            project=self.project.name,
            namespace=opt.namespace,
            image=str(opt.image),
            grace_s=km.grace_s(self.measured_save_s(request.name), request.kill_grace_s),
            server_minor=server_minor,
            bundle=zipapp(),
            project_zip=project_zip,
            request_json=wire_json(request),
            deadline_s=time_limit_s(opt.time) if opt.time else None,
            backoff_limit=opt.backoff_limit,
            gpus=opt.gpus,
            cpu=opt.cpu,
            memory=opt.memory,
            shm=opt.shm,
            pvc=opt.pvc,
            storage_class=opt.storage_class,
            pvc_size=opt.pvc_size,
            nodes=opt.nodes,
            node_selector=dict(opt.node_selector),
            tolerations=tuple(opt.tolerations),
            service_account=opt.service_account,
            image_pull_secret=opt.image_pull_secret,
            secrets=tuple(n for n in self.target.policy.secrets),
            target=self.target.name,
        )

    def _zip(self, files: Sequence[str]) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for rel in files:
                src = self.project.root / rel
                info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (src.stat().st_mode & 0o777) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, src.read_bytes())
        return buf.getvalue()

    def measured_save_s(self, name: str) -> float | None:
        """The longest TERM → exit measured on earlier runs of this name on this target."""
        seen = []
        for rec in self.records():
            if rec.target != self.target.name or rec.name != name or not rec.status:
                continue
            save_s = (rec.status.kubernetes or {}).get("save_s")
            if isinstance(save_s, (int, float)) and save_s > 0:
                seen.append(float(save_s))
        return max(seen) if seen else None

    def launch_array(self, request: wire.LaunchRequest, plan: ArrayPlan) -> list[LaunchReply]:
        raise UsageError(
            f"target {self.target.name!r} runs one Job per launch; --array, --queue, --throttle "
            "and --after need a Slurm target"
        )

    # -- look -----------------------------------------------------------------------------------

    def items(self, selector: str, *, timeout_s: float) -> list[dict[str, Any]]:
        """Jobs and pods matching ``selector`` in the target's namespace: one request."""
        doc = self.kubectl.get_json("jobs,pods", "-l", selector, timeout_s=timeout_s)
        items = doc.get("items") if isinstance(doc, dict) else None
        return list(items or [])

    def probe(self, run_dirs: Sequence[str], *, timeout_s: float) -> list[wire.RunProbe]:
        if not run_dirs:
            return []
        selector = f"{km.LABEL_PROJECT}={label_value(self.project.name)}"
        items = self.items(selector, timeout_s=timeout_s)
        last = self._last_views()
        out = []
        for run_dir in run_dirs:
            run_id = run_dir.rstrip("/").rsplit("/", 1)[-1]
            view = last.get(run_id) or {}
            save = view.get("save_s")
            out.append(
                k8s_state.judge(
                    run_dir,
                    run_id,
                    self.options.namespace,
                    items,
                    cancelled=self._cancel_marker(run_id).exists(),
                    seen_pods=list(view.get("seen_pods") or ()),
                    saves=[float(save)] if isinstance(save, (int, float)) else [],
                )
            )
        return out

    def _last_views(self) -> dict[str, Mapping[str, Any]]:
        views: dict[str, Mapping[str, Any]] = {}
        for rec in self.records():
            if rec.target == self.target.name and rec.status and rec.status.kubernetes:
                views[rec.run_id] = rec.status.kubernetes
        return views

    def look(
        self, run_dirs: Sequence[str], workdir: str, *, timeout_s: float, known: Sequence[str] = ()
    ) -> tuple[list[wire.RunProbe], list[FoundRun]]:
        return self.probe(run_dirs, timeout_s=timeout_s), []

    # -- cancel, logs ---------------------------------------------------------------------------

    def _cancel_marker(self, run_id: str) -> Path:
        return self._state("k8s", "cancelled", run_id)

    def cancel(self, run_dir: str, grace_s: float) -> CancelReply:
        run_id = run_dir.rstrip("/").rsplit("/", 1)[-1]
        items = self.items(f"{km.LABEL_RUN_ID}={run_id}", timeout_s=LOG_TIMEOUT_S)
        job = k8s_state.job_of(items, run_id)
        if job is None:
            probe = self.probe([run_dir], timeout_s=LOG_TIMEOUT_S)[0]
            return {"signalled": None, "state": probe.state, "diagnosis": probe.diagnosis}
        marker = self._cancel_marker(run_id)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        pod_grace = (
            (job.get("spec") or {})
            .get("template", {})
            .get("spec", {})
            .get("terminationGracePeriodSeconds", grace_s)
        )
        self.kubectl.run(*self.delete_args(f"{km.LABEL_RUN_ID}={run_id}"))
        return {
            "signalled": "SIGTERM",
            "grace_s": float(pod_grace),
            "escalated": False,
            "job_id": km.job_name(run_id),
            "note": (
                f"deleted Job {km.job_name(run_id)}; its pod gets TERM and is killed after "
                f"{pod_grace} s (terminationGracePeriodSeconds)"
            ),
        }

    @staticmethod
    def delete_args(selector: str) -> list[str]:
        return [
            "delete",
            "jobs,configmaps,secrets",
            "-l",
            selector,
            "--cascade=background",
            "--wait=false",
        ]

    def tail(
        self,
        run_dir: str,
        *,
        offset: int | None = None,
        lines: int | None = None,
        max_bytes: int | None = None,
        timeout_s: float | None = None,
        file: str = wire.STDOUT_LOG,
    ) -> TailChunk:
        """The newest pod's log. Offsets count bytes across pods: a replacement pod's log
        continues where the previous pod's ended (a deleted pod's unread lines are lost; the
        whole log is in the run dir on the claim). The run's other files (the progress file)
        live on the claim, out of the API's reach: nothing is read for them."""
        if file != wire.STDOUT_LOG:
            base = offset or 0
            return TailChunk(data=b"", offset=base, size=base, ended=True)
        run_id = run_dir.rstrip("/").rsplit("/", 1)[-1]
        wait = timeout_s or LOG_TIMEOUT_S
        items = self.items(f"{km.LABEL_RUN_ID}={run_id}", timeout_s=wait)
        pod = k8s_state.newest_pod(items, run_id)
        job = k8s_state.job_of(items, run_id)
        ended = job is None or any(
            c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
            for c in (job.get("status") or {}).get("conditions") or []
        )
        if pod is None:
            base = offset or 0
            return TailChunk(data=b"", offset=base, size=base, ended=ended)
        pod_name = str(pod["metadata"]["name"])
        log = self._pod_log(pod_name, wait)
        followed, before = self._logs.get(run_id, (pod_name, 0))
        if offset is None:
            self._logs[run_id] = (pod_name, 0)
            data = log if lines is None or lines < 0 else _last_lines(log, lines)
            return TailChunk(data=data, offset=len(log), size=len(log), ended=ended)
        if followed != pod_name:
            before = offset  # a new pod: its log starts where the last one's ended
            self._logs[run_id] = (pod_name, before)
        data = log[max(0, offset - before) :]
        if max_bytes is not None:
            data = data[:max_bytes]
        return TailChunk(data=data, offset=offset + len(data), size=before + len(log), ended=ended)

    def checkpoints(self, ckpt_dir: str, *, timeout_s: float) -> list[CheckpointFile]:
        raise BoxError(
            "a Kubernetes run's checkpoints live on its claim, which the API cannot list; "
            "`outlive pull` copies and verifies them"
        )

    def _pod_log(self, pod: str, timeout_s: float) -> bytes:
        try:
            return self.kubectl.run("logs", pod, "-c", km.CONTAINER, timeout_s=timeout_s)
        except TransportError as exc:
            if "waiting to start" in str(exc) or "ContainerCreating" in str(exc):
                return b""
            raise

    # -- results --------------------------------------------------------------------------------

    def manifest(self, request: Mapping[str, object], *, timeout_s: float) -> ManifestReply:
        """The agent's manifest, built in the pod that reads the claim; the runs' states come
        from the API (a reader pod cannot see another pod's processes)."""
        from outlive.agent.client import AgentClient

        raw_dirs = request.get("probe_run_dirs")
        probe_dirs = [str(d) for d in raw_dirs] if isinstance(raw_dirs, list) else []
        raw_sets = request.get("sets")
        sets = [x for x in raw_sets if isinstance(x, dict)] if isinstance(raw_sets, list) else []
        stores = [str(x["store_dir"]) for x in sets if x.get("store_dir")]
        self._reading.update(_run_id(d) for d in probe_dirs + stores)
        agent = AgentClient(self.transport, bundle_path=f"{km.MOUNT_BUNDLE}/agent.pyz")
        box_request = {k: v for k, v in request.items() if k != "probe_run_dirs"}
        reply: ManifestReply = agent.call("manifest", box_request, timeout_s=timeout_s)
        probes = self.probe(probe_dirs, timeout_s=LOG_TIMEOUT_S) if probe_dirs else []
        reply["probes"] = [p.to_json() for p in probes]
        return reply

    def teardown_commands(self) -> list[str]:
        base = ["kubectl"]
        if self.options.context:
            base.append(f"--context={self.options.context}")
        base.append(f"--namespace={self.options.namespace}")
        selector = f"{km.LABEL_PROJECT}={label_value(self.project.name)}"
        cmds = [shlex.join([*base, *self.delete_args(selector)])]
        claim = self.options.pvc or km.claim_name(self.project.name)
        cmds.append(
            shlex.join([*base, "delete", "pvc", claim])
            + "  # destroys the checkpoints: only after a verified pull"
        )
        return cmds


def wire_json(request: wire.LaunchRequest) -> str:
    import json

    return json.dumps(request.to_json(), sort_keys=True)


def _run_id(run_dir: str) -> str:
    return run_dir.rstrip("/").rsplit("/", 1)[-1]


def _run_dir(workdir: str, run_id: str) -> str:
    return "/".join((workdir.rstrip("/"), wire.STATE_DIRNAME, wire.RUNS_DIRNAME, run_id))


def _under(path: str, root: str) -> bool:
    norm = os.path.normpath(path)
    return norm == root or norm.startswith(root.rstrip("/") + "/")


def _last_lines(data: bytes, n: int) -> bytes:
    if n == 0:
        return b""
    parts = data.splitlines(keepends=True)
    return b"".join(parts[-n:])
