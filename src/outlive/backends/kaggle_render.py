"""What ``kaggle kernels push`` sends for one version of a run: ``kernel-metadata.json`` and the
script. The script carries the project zip and outlive's agent zipapp (base64, hash-named), puts
the previous version's output (mounted read-only at ``/kaggle/input/<slug>``) back into
``/kaggle/working``, and runs the job under the same supervisor and Checkpointer contract as every
platform (:func:`outlive.agent.box.notebook.resume`), stopping it (TERM → save) before the
session limit. It always exits 0 once outlive is running: a version that ends in ERROR keeps no
output (NB2), so the run's own end is written to ``/kaggle/working/outlive-chain.json``.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from outlive._shapes import shape
from outlive.errors import UsageError
from outlive.notebook.common import b64_lines as _b64_lines

SCRIPT_FILE = "outlive_run.py"
CHAIN_FILE = "outlive-chain.json"
MANIFEST_FILE = (
    "outlive-manifest.json"  # the result manifest, built on Kaggle at each version's end
)
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{4,49}$")
ACCELERATORS = {
    "none": None,
    "gpu": "NvidiaTeslaT4",
    "t4x2": "NvidiaTeslaT4Highmem",
    "p100": "NvidiaTeslaP100",
}


@shape(frozen=True)
class Version:
    """One version to push: who, what, with which machine, from which previous output."""

    owner: str
    slug: str
    project: str
    name: str
    request: dict[str, Any]  # the run's wire.LaunchRequest as JSON
    accelerator: str = "none"  # a key of ACCELERATORS
    internet: bool = False
    budget_s: float = 32400.0  # stop the job (TERM) this long after the version starts...
    margin_s: float = 1800.0  # ... less this, so the save lands before the session limit
    resume_from: str | None = None  # "owner/slug" of the version whose output to continue
    dataset_sources: tuple[str, ...] = ()
    model_sources: tuple[str, ...] = ()
    private: bool = True
    outputs: tuple[str, ...] = ()  # declared output paths, relative to the workdir


def slug_problem(slug: str) -> str | None:
    if not SLUG_RE.match(slug):
        return (
            f"kernel slug {slug!r} must be 5-50 lowercase letters, digits or '-', starting with "
            "a letter or digit (Kaggle derives it from the title)"
        )
    return None


def metadata(v: Version) -> dict[str, Any]:
    """``kernel-metadata.json``. GPU and internet are always written out: the client's default
    for ``enable_internet`` (true) differs from its docs, and a commit inherits what it is told
    (NB3)."""
    if v.accelerator not in ACCELERATORS:
        raise UsageError(
            f"accelerator {v.accelerator!r} is not one of {', '.join(ACCELERATORS)}; set "
            "accelerator in the kaggle target"
        )
    problem = slug_problem(v.slug)
    if problem:
        raise UsageError(problem)
    shape_name = ACCELERATORS[v.accelerator]
    doc: dict[str, Any] = {
        "id": f"{v.owner}/{v.slug}",
        "title": v.slug,
        "code_file": SCRIPT_FILE,
        "language": "python",
        "kernel_type": "script",
        "is_private": v.private,
        "enable_gpu": shape_name is not None,
        "enable_tpu": False,
        "enable_internet": v.internet,
        "dataset_sources": list(v.dataset_sources),
        "competition_sources": [],
        "kernel_sources": [v.resume_from] if v.resume_from else [],
        "model_sources": list(v.model_sources),
    }
    if shape_name is not None:
        doc["machine_shape"] = shape_name
    return doc


SCRIPT = """\
# outlive: version script of run {name!r} (project {project!r}); generated, do not edit.
# Danger clocks (Kaggle): a GPU commit is stopped at ~9 h; 30 GPU-hours a week (NB2, NB3).
import base64, hashlib, json, os, shutil, stat, sys, time

STARTED = time.time()
ROOT = os.environ.get("OUTLIVE_KAGGLE_ROOT", "/kaggle")
WORKING = os.path.join(ROOT, "working")  # the only directory a version keeps (NB4)
PROJECT, NAME, SLUG = {project!r}, {name!r}, {slug!r}
WORKDIR = os.path.join(WORKING, PROJECT)
REQUIRE_GPU = {gpu!r}

def _gpu_visible():
    return os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi") is not None

print("[outlive] version of", NAME, "started; gpu requested:", REQUIRE_GPU,
      "visible:", _gpu_visible(), flush=True)
if REQUIRE_GPU and not _gpu_visible():  # fail in seconds, not after 9 h on a CPU (NB3)
    sys.exit("outlive: this version asked for a GPU and sees none; check the accelerator (NB3)")

previous = os.path.join(ROOT, "input", SLUG, PROJECT)
if os.path.isdir(previous) and not os.path.isdir(WORKDIR):
    shutil.copytree(previous, WORKDIR, symlinks=True)  # the last version's output, read-only there
    for top, dirs, files in os.walk(WORKDIR):
        os.chmod(top, 0o755)
        for f in files:
            p = os.path.join(top, f)
            if not os.path.islink(p):
                os.chmod(p, stat.S_IMODE(os.stat(p).st_mode) | 0o200)
    print("[outlive] continuing from the previous version's output", flush=True)

def _put(name, b64, sha256):
    path = os.path.join(ROOT, "temp", "outlive", name)
    data = base64.b64decode("".join(b64))
    if hashlib.sha256(data).hexdigest() != sha256:
        sys.exit("outlive: an embedded file is corrupt; push again")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path

AGENT_B64 = {agent_b64}
CODE_B64 = {code_b64}
AGENT = _put("agent-{agent_sha:.16}.pyz", AGENT_B64, {agent_sha!r})
CODE = _put("code-{code_sha:.16}.zip", CODE_B64, {code_sha!r})
sys.path.insert(0, AGENT)
from box.notebook import resume

STATE = resume(
    dict({request!r}, workdir=WORKDIR, durable=os.path.join(WORKDIR, "checkpoints"),
         pythonpath=AGENT),
    AGENT, archive=CODE, session_cap_s={budget_s!r}, margin_s={margin_s!r}, started_at=STARTED,
)
# The result manifest (the agent's own code, as on every box), its roots named as on Kaggle.
from box.manifests import build_manifest
ROOTS = [{{"label": "ckpt", "path": os.path.join(WORKDIR, "checkpoints", NAME)}}]
ROOTS += [{{"label": "out/" + rel, "path": os.path.join(WORKDIR, rel)}} for rel in {outputs!r}]
MANIFEST = build_manifest({{"roots": ROOTS, "hash": True}})
for root in MANIFEST["roots"]:
    root["path"] = "/kaggle" + root["path"][len(ROOT):]
    root.pop("real", None)
MANIFEST.pop("sha256", None)  # renamed roots: the reader hashes it again
with open(os.path.join(WORKING, {manifest_file!r}), "w") as f:
    json.dump(MANIFEST, f)
with open(os.path.join(WORKING, {chain_file!r}), "w") as f:
    json.dump({{"state": STATE, "started_at": STARTED, "ended_at": time.time()}}, f)
print("[outlive] version ended:", STATE, flush=True)
sys.exit(0)  # even when the job failed: an ERROR version keeps no output (NB2)
"""


def script(v: Version, *, code: bytes, agent: bytes) -> str:
    return SCRIPT.format(
        name=v.name,
        project=v.project,
        slug=v.slug,
        gpu=ACCELERATORS.get(v.accelerator) is not None,
        agent_b64=_b64_lines(agent),
        code_b64=_b64_lines(code),
        agent_sha=hashlib.sha256(agent).hexdigest(),
        code_sha=hashlib.sha256(code).hexdigest(),
        request=v.request,
        budget_s=v.budget_s,
        margin_s=v.margin_s,
        chain_file=CHAIN_FILE,
        manifest_file=MANIFEST_FILE,
        outputs=list(v.outputs),
    )


def render(v: Version, *, code: bytes, agent: bytes) -> dict[str, str]:
    """The push folder's files: name → text."""
    return {
        "kernel-metadata.json": json.dumps(metadata(v), indent=2) + "\n",
        SCRIPT_FILE: script(v, code=code, agent=agent),
    }
