"""Reaching a run's claim from here: only a pod that mounts it can read it.

``pull`` and ``down`` go through a pod: the run's own pod while it runs (its container mounts
the claim and the agent), otherwise a short-lived *reader pod* that outlive makes for the
command: the same claim at the same path, the same image, the agent in a ConfigMap of its own,
a small cpu/memory request and no GPU, labelled ``outlive/project`` and ``outlive/reader``. The
reader and its ConfigMap are deleted when the command is done (``release``); they hold no data
of the user's, so deleting them is no teardown, and the command says it did.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from outlive.backends import k8s_manifest as km
from outlive.backends.k8s_api import Kubectl
from outlive.backends.k8s_values import label_value
from outlive.config import KubernetesOptions
from outlive.errors import TransportError

__all__ = ["LABEL_READER", "READER_CONTAINER", "ClaimReader", "reader_objects"]

LABEL_READER = "outlive/reader"
READER_CONTAINER = "reader"
READER_LIFETIME_S = 6 * 3600  # a reader left behind (outlive killed) ends on its own
READY_TIMEOUT_S = 180.0
POLL_S = 0.5
READER_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"}}  # fmt: skip


def reader_objects(
    name: str, project: str, run_ids: Sequence[str], claim: str, opt: KubernetesOptions,
    bundle: bytes,
) -> dict[str, Any]:  # fmt: skip
    """The reader pod and its agent ConfigMap, as one ``v1 List``."""
    labels = {km.LABEL_PROJECT: label_value(project), LABEL_READER: name}
    meta = {"name": name, "namespace": opt.namespace, "labels": labels,
            "annotations": {"outlive/reads-for": ",".join(run_ids)}}  # fmt: skip
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
        "binaryData": {"agent.pyz": base64.b64encode(bundle).decode("ascii")},
    }  # fmt: skip
    container = {
        "name": READER_CONTAINER,
        "image": str(opt.image),
        # It only waits to be exec'd into; outlive deletes it, or it ends on its own.
        "command": ["sleep", str(READER_LIFETIME_S)],
        "volumeMounts": [{"name": "checkpoints", "mountPath": km.MOUNT_PVC},
                         {"name": "outlive", "mountPath": km.MOUNT_BUNDLE, "readOnly": True}],
        "resources": READER_RESOURCES,
    }  # fmt: skip
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 1,
        "activeDeadlineSeconds": READER_LIFETIME_S,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [{"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim}},
                    {"name": "outlive", "configMap": {"name": name}}],
    }  # fmt: skip
    if opt.node_selector:
        spec["nodeSelector"] = dict(opt.node_selector)
    if opt.tolerations:
        spec["tolerations"] = [dict(t) for t in opt.tolerations]
    if opt.service_account:
        spec["serviceAccountName"] = opt.service_account
    if opt.image_pull_secret:
        spec["imagePullSecrets"] = [{"name": opt.image_pull_secret}]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    return {"apiVersion": "v1", "kind": "List", "items": [config_map, pod]}


class ClaimReader:
    """Picks (once per command) the pod through which the claim is read."""

    def __init__(self, kubectl: Kubectl, project: str, claim: str, opt: KubernetesOptions) -> None:
        self.kubectl, self.project, self.claim, self.opt = kubectl, project, claim, opt
        self.lock = threading.Lock()
        self.pod: str | None = None
        self.container = km.CONTAINER
        self.made: str | None = None  # the reader pod outlive created, to delete

    def resolve(self, run_ids: Iterable[str]) -> str:
        """The pod to exec into: a running pod of one of the runs asked about (it mounts the
        same claim, and a second pod elsewhere could not attach a ReadWriteOnce one, K8S4),
        else a new reader pod."""
        with self.lock:
            if self.pod is None:
                ids = sorted(set(run_ids))
                own = self._running_pod(ids)
                if own is not None:
                    self.pod, self.container = own, km.CONTAINER
                else:
                    self.pod, self.container = self._make_reader(ids), READER_CONTAINER
            return self.pod

    def _running_pod(self, run_ids: Sequence[str]) -> str | None:
        if not run_ids:
            return None
        selector = f"{km.LABEL_PROJECT}={label_value(self.project)}"
        doc = self.kubectl.get_json("pods", "-l", selector)
        for pod in doc.get("items") or []:
            meta, status = pod["metadata"], pod.get("status") or {}
            if (meta.get("labels") or {}).get(km.LABEL_RUN_ID) not in run_ids:
                continue
            if status.get("phase") != "Running" or meta.get("deletionTimestamp"):
                continue
            for cs in status.get("containerStatuses") or []:
                if cs.get("name") == km.CONTAINER and "running" in (cs.get("state") or {}):
                    return str(meta["name"])
        return None

    def _make_reader(self, run_ids: Sequence[str]) -> str:
        from outlive.agent.bundle import zipapp

        name = f"outlive-reader-{uuid.uuid4().hex[:10]}"
        doc = reader_objects(name, self.project, run_ids, self.claim, self.opt, zipapp())
        self.kubectl.run("create", "-f", "-", stdin=json.dumps(doc).encode(), timeout_s=60.0)
        self.made = name
        deadline = time.monotonic() + READY_TIMEOUT_S
        why = "it was never scheduled"
        while time.monotonic() < deadline:
            pod = self.kubectl.get_json("pod", name)
            status = pod.get("status") or {}
            if status.get("phase") == "Running":
                return name
            if status.get("phase") in ("Succeeded", "Failed"):
                why = f"it ended ({status.get('phase')})"
                break
            why = _waiting_reason(status) or why
            time.sleep(POLL_S)
        self.release()
        raise TransportError(
            f"the reader pod outlive made to read claim {self.claim!r} did not start: {why}; "
            f"check that the claim can be mounted (`kubectl describe pvc {self.claim}`)"
        )

    def release(self) -> list[str]:
        """Delete the reader pod and its ConfigMap if this command made them; say so."""
        with self.lock:
            name, self.made, self.pod = self.made, None, None
        if name is None:
            return []
        self.kubectl.run("delete", "pod,configmap", "-l", f"{LABEL_READER}={name}",
                         "--wait=false", "--grace-period=1")  # fmt: skip
        return [
            f"deleted reader pod {name} and its ConfigMap: outlive made them for this command "
            f"to read claim {self.claim!r}; the claim and its data are untouched"
        ]


def _waiting_reason(status: dict[str, Any]) -> str | None:
    for cs in status.get("containerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".rstrip(": ")
    for cond in status.get("conditions") or []:
        if cond.get("status") == "False" and cond.get("message"):
            return f"{cond.get('reason', '')}: {cond['message']}"
    return None
