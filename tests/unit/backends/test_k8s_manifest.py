"""The Kubernetes manifests are a pure function of their spec: compared with golden files
(``OUTLIVE_UPDATE_GOLDEN=1`` rewrites them) and validated against the official schemas of every
server version from 1.25 to 1.37 (``kubernetes-validate``)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from outlive.backends import k8s_manifest as km
from outlive.errors import ConfigError, UsageError

GOLDEN = Path(__file__).parent / "golden"
VERSIONS = [f"1.{m}.0" for m in range(25, 38)]


def spec(**over: Any) -> km.JobSpec:
    base = km.JobSpec(
        run_id="20261203-120000-abcdef",
        name="train resnet 'q' $(x) ü",
        project="cifar sweep",
        namespace="ml",
        image="ghcr.io/acme/train@sha256:" + "0" * 64,
        grace_s=70,
        server_minor=31,
        bundle=b"PK-agent",
        project_zip=b"PK-project",
        request_json='{"run_id": "20261203-120000-abcdef"}',
        deadline_s=4 * 3600,
        backoff_limit=6,
        gpus=2,
        cpu="8",
        memory="64Gi",
        shm="8Gi",
        pvc="outlive-ckpt",
        node_selector={"nvidia.com/gpu.product": "A100-SXM4-80GB"},
        tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
        service_account="trainer",
        image_pull_secret="regcred",
        secrets=("WANDB_API_KEY", "HF_TOKEN"),
        target="k8s",
    )
    return dataclasses.replace(base, **over)


def items(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["kind"]: i for i in doc["items"]}


CASES = {
    "full": spec(),
    "old_server": spec(server_minor=20),
    "minimal": spec(
        gpus=0,
        cpu=None,
        memory=None,
        shm=None,
        deadline_s=None,
        node_selector={},
        tolerations=(),
        service_account=None,
        image_pull_secret=None,
        secrets=(),
        pvc=None,
        storage_class="standard",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_manifest_matches_its_golden_file(case: str) -> None:
    doc, _ = km.render(CASES[case])
    text = km.dumps(doc)
    golden = GOLDEN / f"k8s_{case}.json"
    if os.environ.get("OUTLIVE_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_object_validates_against_the_official_schema(case: str, version: str) -> None:
    minor = int(version.split(".")[1])
    doc, _ = km.render(dataclasses.replace(CASES[case], server_minor=min(minor, 31)))
    objects = [*doc["items"], km.secret_object(CASES[case], {"HF_TOKEN": "x"})]
    for obj in objects:
        assert kubernetes_validate.validate(obj, version, strict=True)


def test_pod_failure_policy_ignores_preemption_and_requeue_and_fails_crashes_at_once() -> None:
    job = items(km.render(spec(server_minor=31))[0])["Job"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert rules[1]["action"] == "Ignore" and rules[1]["onExitCodes"]["values"] == [75]
    crash = rules[2]
    assert crash["action"] == "FailJob"
    assert crash["onExitCodes"] == {"containerName": "job", "operator": "NotIn", "values": [0, 75]}
    assert job["podReplacementPolicy"] == "Failed"
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_an_old_server_gets_backoff_limit_alone_and_a_warning() -> None:
    doc, warnings = km.render(spec(server_minor=20, backoff_limit=9))
    job = items(doc)["Job"]["spec"]
    assert "podFailurePolicy" not in job and "podReplacementPolicy" not in job
    assert job["backoffLimit"] == 9
    assert any("older than 1.31" in w and "backoffLimit (9)" in w for w in warnings)


def test_gpus_in_limits_with_requests_equal_and_shm_a_sized_memory_volume() -> None:
    pod = items(km.render(spec())[0])["Job"]["spec"]["template"]["spec"]
    res = pod["containers"][0]["resources"]
    assert res["limits"] == res["requests"] == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
    assert {"name": "dshm", "mountPath": "/dev/shm"} in pod["containers"][0]["volumeMounts"]


def test_a_large_shm_warns_that_it_counts_against_the_memory_limit() -> None:
    _, warnings = km.render(spec(memory="16Gi", shm="12Gi"))
    assert any("counts against the memory limit" in w for w in warnings)


def test_labels_on_every_object_and_the_pod_template_and_the_name_kept_whole() -> None:
    doc, _ = km.render(spec())
    for obj in doc["items"]:
        assert set(obj["metadata"]["labels"]) == {
            "outlive/run-id",
            "outlive/name",
            "outlive/project",
        }
    job = items(doc)["Job"]
    tmpl = job["spec"]["template"]["metadata"]["labels"]
    assert tmpl == job["metadata"]["labels"]
    assert tmpl["outlive/run-id"] == "20261203-120000-abcdef"
    assert tmpl["outlive/name"] == "train-resnet-q-x"  # label syntax; the annotation is exact
    assert tmpl["outlive/project"] == "cifar-sweep"
    assert job["metadata"]["annotations"]["outlive/name"] == "train resnet 'q' $(x) ü"


def test_secrets_are_references_never_values() -> None:
    doc, _ = km.render(spec())
    text = km.dumps(doc)
    env = items(doc)["Job"]["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in env
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs == {
        "WANDB_API_KEY": {"name": "outlive-20261203-120000-abcdef-secrets", "key": "WANDB_API_KEY"},
        "HF_TOKEN": {"name": "outlive-20261203-120000-abcdef-secrets", "key": "HF_TOKEN"},
    }
    assert all("value" not in e for e in env if e["name"] in refs)
    assert "stringData" not in text


def test_the_claim_outlive_creates_is_read_write_once_for_one_node() -> None:
    doc, _ = km.render(CASES["minimal"])
    claim = items(doc)["PersistentVolumeClaim"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert claim["spec"]["storageClassName"] == "standard"
    pod = items(doc)["Job"]["spec"]["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_multi_node_is_refused_in_one_sentence() -> None:
    with pytest.raises(UsageError, match="nodes = 2 is not supported"):
        km.render(spec(nodes=2))


def test_no_claim_is_refused_naming_k8s5() -> None:
    with pytest.raises(ConfigError, match="K8S5"):
        km.render(spec(pvc=None, storage_class=None))


def test_a_tree_larger_than_a_config_map_is_refused_saying_use_the_image() -> None:
    with pytest.raises(UsageError, match="bake the code into the image"):
        km.render(spec(project_zip=b"x" * km.CONFIGMAP_MAX_BYTES))


@pytest.mark.parametrize(
    ("save_s", "default_s", "want"), [(None, 30.0, 30), (0.0, 45.5, 46), (12.2, 30.0, 35)]
)
def test_grace_is_twice_the_measured_save_plus_margin_else_the_profile(
    save_s: float | None, default_s: float, want: int
) -> None:
    assert km.grace_s(save_s, default_s) == want


def first_matching_rule(rules: list[dict[str, Any]], conditions: set[str], exit_code: int) -> str:
    """The action of the first rule that matches a failed pod, as the Job controller applies
    podFailurePolicy (kubernetes.io, "Handling Pod and container failures"); "Count" when none
    matches (the failure counts against backoffLimit)."""
    for rule in rules:
        if "onPodConditions" in rule:
            if any(
                c["type"] in conditions and c["status"] == "True" for c in rule["onPodConditions"]
            ):
                return str(rule["action"])
            continue
        codes = rule["onExitCodes"]
        inside = exit_code in codes["values"]
        if (codes["operator"] == "In") == inside:
            return str(rule["action"])
    return "Count"


@pytest.mark.parametrize(
    ("conditions", "exit_code", "action"),
    [
        (set(), 1, "FailJob"),  # a crash fails the Job at once: no retries burnt
        (set(), 137, "FailJob"),  # an OOM kill too: the next pod would die the same way
        (set(), 75, "Ignore"),  # saved, run me again: does not count
        ({"DisruptionTarget"}, 137, "Ignore"),  # preempted and killed after the grace
        ({"DisruptionTarget"}, 75, "Ignore"),  # preempted, saved in time
    ],
)
def test_a_crash_does_not_burn_retries_on_a_1_31_manifest(
    conditions: set[str], exit_code: int, action: str
) -> None:
    rules = items(km.render(spec(server_minor=31))[0])["Job"]["spec"]["podFailurePolicy"]["rules"]
    assert first_matching_rule(rules, conditions, exit_code) == action
