"""Text written by ``outlive init`` (and ``init --profile NAME``: a target for that platform)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outlive.cloud.model import PROVIDER_OF_PROFILE
from outlive.config import json_quoted

if TYPE_CHECKING:
    from outlive.profiles import Profile

# Profile kinds `outlive run` can target today (and the kaggle notebook profile); the others
# (Colab, provider APIs) have facts in `outlive profiles` but no backend yet.
RUNNABLE_KINDS = ("ssh", "ssh-rental", "cloud-api", "slurm", "kubernetes")  # cloud-api: SSH VM

CONFIG_TEMPLATE = """\
# outlive.toml — where runs go. The `local` target always exists (this directory, durable
# checkpoints in .outlive/durable/); add a [targets.NAME] table per box you rent.

[project]
name = {name}
exclude = ["data/", "*.pt"]          # not pushed to boxes, on top of .gitignore

# [targets.local]
# durable = ".outlive/durable"       # where checkpoints of local runs go
# env = {{ HF_HOME = "/data/hf" }}

# [targets.a100]
# profile = "runpod"                 # platform defaults: paths, grace, danger clocks, teardown
# host = "runpod-a100"               # an alias from ~/.ssh/config (ProxyJump, ports, keys honoured)
# workdir = {workspace_dir}
# durable = "/workspace/durable"     # must survive the platform's teardown verb
# spot = true

# [targets.box]
# profile = "generic-ssh"
# host = "10.0.0.5"
# port = 2222
# user = "root"
# identity_file = "~/.ssh/id_ed25519"
# workdir = {root_dir}
"""


def config_text(project: str) -> str:
    """The commented outlive.toml for a project of that name, every value a TOML string (a
    name with quotes, backslashes or '$' stays one value, and the file loads as written)."""
    return CONFIG_TEMPLATE.format(
        name=json_quoted(project),
        workspace_dir=json_quoted(f"/workspace/{project}"),
        root_dir=json_quoted(f"/root/{project}"),
    )


def target_for(profile: Profile, project: str) -> str:
    """A commented ``[targets.NAME]`` table for ``profile``, with its defaults filled in."""
    d = profile.defaults.resolve(project)
    name = {"slurm": "hpc", "kubernetes": "k8s"}.get(profile.kind, profile.name.split("-")[0])
    lines = [f"# {profile.title}: {profile.summary}"]
    clocks = [c for c in profile.clocks if c.surface_first][:3]
    if clocks:
        lines.append("# Danger clocks (`outlive profiles " + profile.name + "` has them all):")
        lines += [f"#   - {c.name}: {c.what_happens}" for c in clocks]
    lines += [f"[targets.{name}]", f'profile = "{profile.name}"']
    if profile.kind == "slurm":
        lines += [
            '# host = "login.cluster"             # the login node over SSH; unset: the sbatch',
            "#                                    # here, with SLURM_CONF naming the cluster",
            '# partition = "gpu"                  # sinfo -s lists them',
            'gpus = "1"                           # or "a100:2"',
            'time = "04:00:00"                    # the walltime; outlive saves and requeues on it',
            '# ssh_config = "~/.ssh/config"       # passed to ssh as -F when set',
        ]
    elif profile.detach_primitive == "kaggle-commit":
        return "\n".join(lines + _KAGGLE_LINES) + "\n"
    elif profile.kind == "kubernetes":
        lines += [
            '# context = "my-cluster"             # a context of your kubeconfig; unset: current',
            'namespace = "default"',
            'image = "CHANGE-ME"                  # has python3 >= 3.8 and your deps; pin a digest',
            'pvc = "outlive-ckpt"                 # an existing claim, mounted at /checkpoints',
            '# storage_class = "standard"         # ... or let outlive create one of this class',
            'gpus = "1"                           # whole GPUs, in limits (requests equal)',
            '# cpu = "8"                          # limits, Kubernetes quantities',
            '# memory = "64Gi"',
            '# shm = "8Gi"                        # /dev/shm; counts against memory',
            '# time = "04:00:00"                  # activeDeadlineSeconds',
            "# backoff_limit = 6",
        ]
    else:
        lines += [
            'host = "CHANGE-ME"                   # an alias from ~/.ssh/config, or an IP',
            "# port = 22",
            '# user = "root"',
            '# identity_file = "~/.ssh/id_ed25519"',
            '# ssh_config = "~/.ssh/config"       # passed to ssh as -F when set',
        ]
    lines.append(f"workdir = {json_quoted(d.workdir)}")
    durable = f"durable = {json_quoted(d.durable_dir)}"
    lines.append(f"{durable:<37}# on {d.durable_tier}: it must survive the teardown verb")
    if profile.spot_available:
        lines.append(
            "# spot = true                        # preemptible: a grace signal, then gone"
        )
    if profile.name in PROVIDER_OF_PROFILE:  # a provider whose API outlive calls
        lines.append('# cloud_id = "CHANGE-ME"             # pod/machine id: cloud ls|audit, down')
    lines.append(
        '# secrets = ["HF_TOKEN"]             # `outlive secret push` stores them on the box'
        if profile.kind != "kubernetes"
        else '# secrets = ["HF_TOKEN"]             # from this shell\'s env into a Secret per run'
    )
    return "\n".join(lines) + "\n"


_KAGGLE_LINES = [
    "# The key: KAGGLE_USERNAME and KAGGLE_KEY in the environment, or ~/.kaggle/kaggle.json",
    "# (never in this file); `pip install kaggle` gives the kaggle CLI outlive runs.",
    'owner = "CHANGE-ME"                  # your Kaggle username: kernels are pushed as yours',
    '# kernel_slug = "my-training"        # one kernel for every run; unset: one per run',
    'accelerator = "gpu"                  # none | gpu (T4) | t4x2 | p100',
    "internet = false                     # enable_internet, always set explicitly (NB3)",
    '# dataset_sources = ["alice/my-data"]  # mounted read-only under /kaggle/input',
    '# model_sources = ["alice/my-model/pyTorch/base/1"]',
    "# is_private = true",
    "# session_budget_s = 32400           # one version (the profile's commit timeout); the job",
    "# session_margin_s = 1800            # is stopped this long before it, to save",
]
