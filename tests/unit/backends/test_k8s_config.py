"""A kubernetes target from outlive.toml: its keys become KubernetesOptions, and every bad value
(a quantity, a namespace, a label, a toleration) is one sentence naming the file, the target,
the key and an example of a good value (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from outlive.config import KubernetesOptions, Target, load_config
from outlive.errors import ConfigError

GOOD = """
[targets.k8s]
profile = "kubernetes"
namespace = "ml-team"
context = "kind-ml"
image = "ghcr.io/acme/train:1"
pvc = "outlive-ckpt"
gpus = "2"
cpu = "8"
memory = "64Gi"
shm = "8Gi"
time = "04:00:00"
node_selector = { "nvidia.com/gpu.product" = "A100" }
tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]
service_account = "trainer"
image_pull_secret = "regcred"
backoff_limit = 3
"""


def project(tmp_path: Path, toml: str) -> Path:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "outlive.toml").write_text(toml)
    return d


def error_of(tmp_path: Path, toml: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(project(tmp_path, toml))
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 2
    return message


def test_a_kubernetes_target_gets_its_options_and_no_ssh(tmp_path: Path) -> None:
    t = load_config(project(tmp_path, GOOD)).target("k8s")
    assert (t.kind, t.backend, t.connection.transport, t.connection.host) == (
        "kubernetes",
        "kubernetes",
        "local",
        None,
    )
    assert t.placement.workdir == "/checkpoints/proj"
    assert t.options == KubernetesOptions(
        namespace="ml-team",
        context="kind-ml",
        image="ghcr.io/acme/train:1",
        pvc="outlive-ckpt",
        gpus=2,
        cpu="8",
        memory="64Gi",
        shm="8Gi",
        time="04:00:00",
        node_selector={"nvidia.com/gpu.product": "A100"},
        tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
        service_account="trainer",
        image_pull_secret="regcred",
        backoff_limit=3,
    )
    assert Target.from_json(t.to_json()) == t  # the config cache round-trips it


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('memory = "64GB"', "memory = '64GB' is not a Kubernetes quantity"),
        ('cpu = "two"', "cpu = 'two' is not a Kubernetes quantity"),
        ('namespace = "ML_Team"', "namespace = 'ML_Team' is not a Kubernetes namespace name"),
        ('pvc = "Ckpt Volume"', "pvc = 'Ckpt Volume' is not a Kubernetes object name"),
        ('gpus = "a100:1"', "must be a whole number of GPUs"),
        ('time = "four hours"', "is not a Slurm time limit"),
        ('shm = "64Gi"', "counts against the memory limit"),
        ('host = "login"', "remove host"),
        ('node_selector = { "gpu" = "a b" }', "is not a Kubernetes label value"),
        ('storage_class = "fast"', "sets both pvc and storage_class"),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_target_and_key(
    tmp_path: Path, line: str, words: str
) -> None:
    key = line.split(" = ")[0]
    toml = "\n".join(ln for ln in GOOD.splitlines() if not ln.startswith(key + " ")) + "\n" + line
    message = error_of(tmp_path, toml)
    assert "[targets.k8s]" in message and words in message


def test_a_toleration_with_an_unknown_field_is_named(tmp_path: Path) -> None:
    toml = GOOD.replace('effect = "NoSchedule"', 'effekt = "NoSchedule"')
    assert "tolerations[0] has unknown field 'effekt'" in error_of(tmp_path, toml)
