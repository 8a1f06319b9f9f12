"""The Kubernetes objects of one run: a pure function of a :class:`JobSpec`, compared with golden
files and validated against the official schemas (1.25–1.37) and a real API server in the tests.

What a launch sends, as one ``v1 List`` to ``kubectl apply -f -`` (decisions, and why):

- **ConfigMap** ``outlive-<run-id>``: ``agent.pyz`` (the agent and the job library as a zipapp,
  binaryData), ``project.zip`` (the project tree; a ConfigMap holds at most 1 MiB, so larger
  trees belong in the image) and ``run.json`` (the launch request). Mounted read-only at
  ``/opt/outlive``.
- **PersistentVolumeClaim** ``outlive-<project>``, only with ``storage_class``: ReadWriteOnce, or
  ReadWriteMany when ``nodes > 1`` (K8S4). With ``pvc`` the named claim is mounted instead. The
  claim is mounted at ``/checkpoints``; workdir (run records) and durable (checkpoints) must lie
  under it, since everything else in a pod is ephemeral storage (K8S5).
- **Secret** ``outlive-<run-id>-secrets`` (added by the backend, never rendered here): each name of
  the target's ``secrets`` reaches the job as an env var through ``secretKeyRef``, so no value is
  ever in a manifest literal, an env literal or a command line (U34).
- **Job** ``outlive-<run-id>``: ``restartPolicy: Never`` (K8S2), ``backoffLimit``,
  ``activeDeadlineSeconds`` from ``time``, ``terminationGracePeriodSeconds`` = 2 × the longest
  save measured on earlier attempts of this name + 10 s (as Slurm's signal lead), else the
  profile's grace; GPUs in limits with requests equal (K8S1, K8S6), cpu/memory requests equal to
  limits; ``/dev/shm`` as a memory-backed emptyDir with a sizeLimit (it counts against the memory
  limit). The container's command is the agent (``python3 /opt/outlive/agent.pyz k8s-attempt``),
  whose supervisor runs the job, forwards TERM, and writes its exit record as the container's
  termination message.
- **podFailurePolicy** (servers ≥ 1.31): a pod with the ``DisruptionTarget`` condition (preempted,
  drained, evicted by the API) and exit 75 (saved, run me again) are ignored — they do not count
  against ``backoffLimit``; any other non-zero exit fails the Job at once instead of burning
  retries; ``podReplacementPolicy: Failed`` so a new pod starts only after the old one is gone.
  Older servers get ``backoffLimit`` alone and a warning: there every interruption is a retry.
- **Labels** ``outlive/run-id``, ``outlive/name``, ``outlive/project`` on every object and the pod
  template (values cleaned to label syntax; the real name is the ``outlive/name`` annotation).
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any

from outlive import wire
from outlive.backends.k8s_values import label_value, quantity_bytes
from outlive.errors import ConfigError, UsageError

__all__ = [
    "CONFIGMAP_MAX_BYTES",
    "CONTAINER",
    "MOUNT_BUNDLE",
    "MOUNT_PVC",
    "POD_FAILURE_POLICY_MINOR",
    "JobSpec",
    "grace_s",
    "job_name",
    "render",
    "secret_object",
]

CONTAINER = "job"
MOUNT_PVC = "/checkpoints"
MOUNT_BUNDLE = "/opt/outlive"
POD_FAILURE_POLICY_MINOR = 31  # podFailurePolicy is GA (and always on) from 1.31
CONFIGMAP_MAX_BYTES = 1024 * 1024  # the API server refuses a larger ConfigMap
SAVE_SAFETY = 2.0
GRACE_MARGIN_S = 10
LABEL_RUN_ID = "outlive/run-id"
LABEL_NAME = "outlive/name"
LABEL_PROJECT = "outlive/project"
DEFAULT_GPU_SHM = "1Gi"


@dataclass(frozen=True)
class JobSpec:
    """Everything the manifests depend on; rendering them is a pure function."""

    run_id: str
    name: str
    project: str
    namespace: str
    image: str
    grace_s: int
    server_minor: int
    bundle: bytes = b""  # the zipapp
    project_zip: bytes = b""
    request_json: str = "{}"
    deadline_s: int | None = None
    backoff_limit: int = 6
    gpus: int = 0
    cpu: str | None = None
    memory: str | None = None
    shm: str | None = None
    pvc: str | None = None
    storage_class: str | None = None
    pvc_size: str = "50Gi"
    nodes: int = 1
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    service_account: str | None = None
    image_pull_secret: str | None = None
    secrets: tuple[str, ...] = ()
    target: str = ""


def job_name(run_id: str) -> str:
    """The Job's (and its ConfigMap's) name: run ids are lower-case letters, digits and '-'."""
    return "outlive-" + run_id.lower().replace("_", "-").replace(".", "-")


def claim_name(project: str) -> str:
    """The claim outlive creates (``storage_class``) for a project's durable dir."""
    return ("outlive-" + label_value(project).lower().replace("_", "-").replace(".", "-"))[:63]


def grace_s(save_s: float | None, default_s: float) -> int:
    """terminationGracePeriodSeconds: 2 × the longest measured save + 10 s, else the profile's."""
    if save_s is None or save_s <= 0:
        return max(1, math.ceil(default_s))
    return math.ceil(SAVE_SAFETY * save_s) + GRACE_MARGIN_S


def labels(spec: JobSpec) -> dict[str, str]:
    return {
        LABEL_RUN_ID: spec.run_id,
        LABEL_NAME: label_value(spec.name),
        LABEL_PROJECT: label_value(spec.project),
    }


def _meta(spec: JobSpec, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": spec.namespace,
        "labels": labels(spec),
        "annotations": {"outlive/name": spec.name, "outlive/target": spec.target},
    }


def render(spec: JobSpec) -> tuple[dict[str, Any], list[str]]:
    """The ``v1 List`` to apply (without the Secret) and the warnings to show the user."""
    warnings: list[str] = []
    if spec.nodes > 1:
        raise UsageError(
            f"nodes = {spec.nodes} is not supported on a kubernetes target yet (one pod per "
            "run); use nodes = 1, or Slurm for multi-node runs"
        )
    items: list[dict[str, Any]] = []
    claim = spec.pvc
    if claim is None and spec.storage_class is not None:
        claim = claim_name(spec.project)
        items.append(_claim(spec, claim))
    if claim is None:
        raise ConfigError(
            "a kubernetes target needs pvc (an existing claim) or storage_class (outlive creates "
            "one): checkpoints anywhere else in a pod die with it (K8S5)"
        )
    items.append(_config_map(spec))
    job, job_warnings = _job(spec, claim)
    items.append(job)
    return {"apiVersion": "v1", "kind": "List", "items": items}, warnings + job_warnings


def _claim(spec: JobSpec, name: str) -> dict[str, Any]:
    meta = _meta(spec, name)
    meta["labels"] = {LABEL_PROJECT: label_value(spec.project)}  # outlives every run
    meta["annotations"] = {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta,
        "spec": {
            # More than one node writes the same checkpoint dir: only RWX can attach (K8S4).
            "accessModes": ["ReadWriteMany" if spec.nodes > 1 else "ReadWriteOnce"],
            "storageClassName": spec.storage_class,
            "resources": {"requests": {"storage": spec.pvc_size}},
        },
    }


def _config_map(spec: JobSpec) -> dict[str, Any]:
    size = len(spec.bundle) + len(spec.project_zip) + len(spec.request_json.encode())
    if size > CONFIGMAP_MAX_BYTES:
        raise UsageError(
            f"the agent and the project tree come to {size / 2**20:.1f} MiB compressed, more than "
            "a ConfigMap holds (1 MiB); exclude data and weights with [project].exclude, or bake "
            "the code into the image"
        )
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(spec, job_name(spec.run_id)),
        "data": {"run.json": spec.request_json},
        "binaryData": {
            "agent.pyz": base64.b64encode(spec.bundle).decode("ascii"),
            "project.zip": base64.b64encode(spec.project_zip).decode("ascii"),
        },
    }


def secret_object(spec: JobSpec, values: dict[str, str]) -> dict[str, Any]:
    """The run's Secret (``stringData``): sent to the API server on kubectl's stdin only."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(spec, job_name(spec.run_id) + "-secrets"),
        "type": "Opaque",
        "stringData": dict(values),
    }


def _resources(spec: JobSpec) -> dict[str, Any]:
    limits: dict[str, Any] = {}
    if spec.cpu is not None:
        limits["cpu"] = spec.cpu
    if spec.memory is not None:
        limits["memory"] = spec.memory
    if spec.gpus:
        limits["nvidia.com/gpu"] = str(spec.gpus)  # whole GPUs, never shared (K8S6)
    # requests equal to limits: GPUs must (K8S1); cpu/memory too, so the pod is Guaranteed and
    # the last to be evicted under node pressure (K8S5)
    return {"limits": limits, "requests": dict(limits)} if limits else {}


def _job(spec: JobSpec, claim: str) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    name = job_name(spec.run_id)
    volumes: list[dict[str, Any]] = [
        {"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim}},
        {"name": "outlive", "configMap": {"name": name}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": "checkpoints", "mountPath": MOUNT_PVC},
        {"name": "outlive", "mountPath": MOUNT_BUNDLE, "readOnly": True},
    ]
    shm = spec.shm or (DEFAULT_GPU_SHM if spec.gpus else None)
    if shm is not None:
        # NCCL and DataLoader workers need more than the runtime's 64 MB /dev/shm.
        volumes.append({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
        if spec.memory is not None and quantity_bytes(shm) * 2 > quantity_bytes(spec.memory):
            warnings.append(
                f"/dev/shm ({shm}) is a memory-backed volume that counts against the memory limit "
                f"({spec.memory}); what the job fills there is memory it cannot use"
            )
    env: list[dict[str, Any]] = [
        {"name": "OUTLIVE_K8S_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": wire.ENV_TERMINATION_LOG, "value": wire.K8S_TERMINATION_LOG},
    ]
    for secret in spec.secrets:
        ref = {"name": name + "-secrets", "key": secret}
        env.append({"name": secret, "valueFrom": {"secretKeyRef": ref}})
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "command": [
            "python3",
            f"{MOUNT_BUNDLE}/agent.pyz",
            "k8s-attempt",
            f"{MOUNT_BUNDLE}/run.json",
        ],
        "env": env,
        "volumeMounts": mounts,
        "terminationMessagePath": wire.K8S_TERMINATION_LOG,
        "terminationMessagePolicy": "File",
    }
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",  # a Job may not use Always (K8S2); a new pod per attempt
        "terminationGracePeriodSeconds": spec.grace_s,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": volumes,
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in spec.tolerations]
    if spec.service_account:
        pod_spec["serviceAccountName"] = spec.service_account
    if spec.image_pull_secret:
        pod_spec["imagePullSecrets"] = [{"name": spec.image_pull_secret}]  # K8S3
    job_spec: dict[str, Any] = {
        "backoffLimit": spec.backoff_limit,
        "template": {"metadata": {"labels": labels(spec)}, "spec": pod_spec},
    }
    if spec.deadline_s is not None:
        job_spec["activeDeadlineSeconds"] = spec.deadline_s
    if spec.server_minor >= POD_FAILURE_POLICY_MINOR:
        job_spec["podReplacementPolicy"] = "Failed"
        job_spec["podFailurePolicy"] = {
            "rules": [
                {
                    "action": "Ignore",
                    "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                },
                {
                    "action": "Ignore",
                    "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [75]},
                },
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": CONTAINER,
                        "operator": "NotIn",
                        "values": [0, 75],
                    },
                },
            ]
        }
    else:
        warnings.append(
            f"the cluster's API server is 1.{spec.server_minor}, older than 1.31: without a "
            f"podFailurePolicy every preemption and every crash counts against backoffLimit "
            f"({spec.backoff_limit}), so a run interrupted more often than that fails"
        )
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": _meta(spec, name), "spec": job_spec}
    return job, warnings


def dumps(doc: dict[str, Any]) -> str:
    """The manifest as kubectl reads it (JSON is YAML), stable for golden files."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
