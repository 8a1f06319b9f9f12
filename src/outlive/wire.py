"""What the client and the box agent must agree on, defined once and shipped to both ends.

Stdlib only and Python >= 3.8 (it travels in the bundle next to the agent and the job library):
the requeue exit code, the name rules, the verbs, the run directory's file names, the job's
``OUTLIVE_*`` variables, and the two shapes that cross the wire on every run — the launch request
and one run's probe reply — as typed records (:mod:`outlive._shapes`, dataclasses to a type
checker, cheap to define at start-up) with ``to_json`` / ``from_json``. Both sides import
this module; nothing here is copied.
"""

from __future__ import annotations

import re
from enum import Enum

from outlive._shapes import as_dict, field, fields_of, shape

TYPE_CHECKING = False  # typing's own flag would import typing (~4 ms of a cold agent)
if TYPE_CHECKING:
    from typing import Any, Dict, List

WIRE_VERSION = 1

# The Checkpointer's "saved, run me again" (EX_TEMPFAIL): the supervisor and the Slurm batch
# shell requeue on it, the job library exits with it.
REQUEUE_EXIT = 75

# -- verbs ------------------------------------------------------------------------------------
VERBS = (
    "launch",
    "probe",
    "cancel",
    "tail",
    "expand",
    "verify_deploy",
    "secret_put",
    "audit",
    "doctor",
    "manifest",
    "ckpts",
)
# Only verbs that read: a request repeated after a dropped channel must change nothing.
# Verbs an open ``serve`` channel answers. The read-only ones may be sent again after a dropped
# channel; ``launch`` (the local daemon's `run`) is sent once and never repeated.
READ_ONLY_SERVE_VERBS = ("probe", "tail", "ckpts")
SERVE_VERBS = (*READ_ONLY_SERVE_VERBS, "launch")
MISSING_BUNDLE_EXIT = 97  # the box has no copy of this bundle yet: the client uploads it

# -- box-side backends (the dispatch key written into run.json) -------------------------------
BACKEND_SETSID = "setsid"
BACKEND_TMUX = "tmux"
BACKEND_SLURM = "slurm"
BACKENDS = (BACKEND_SETSID, BACKEND_TMUX, BACKEND_SLURM)
# A Kubernetes run is launched and probed through the API server by the client; on the box there
# is only its pod's entry point, ``python3 agent.pyz k8s-attempt REQUEST_JSON``.
BACKEND_KUBERNETES = "kubernetes"
K8S_ATTEMPT = "k8s-attempt"
K8S_TERMINATION_LOG = "/dev/termination-log"  # the container's terminationMessagePath
ENV_TERMINATION_LOG = "OUTLIVE_TERMINATION_LOG"  # ... as the pod's env tells the supervisor
ATTEMPTS_DIRNAME = "attempts"  # records of earlier attempts of a re-entered run dir
DETACH_CHOICES = (BACKEND_SETSID, BACKEND_TMUX)  # what `run --detach-with` may pick

# -- the run directory ------------------------------------------------------------------------
STATE_DIRNAME = ".outlive"  # under the workdir (box) or the project (client)
RUNS_DIRNAME = "runs"  # <workdir>/.outlive/runs/<run-id>/
RUN_JSON = "run.json"
LAUNCH_JSON = "launch.json"
EXIT_JSON = "exit.json"
CANCEL_JSON = "cancel.json"
STDOUT_LOG = "stdout.log"
PROGRESS_JSONL = "progress.jsonl"
# progress()'s binary frames next to its JSON lines (outlive.ckpt.frames): the dashboard charts
# them without parsing JSON. Next to whatever file $OUTLIVE_PROGRESS_FILE names.
PROGRESS_BIN_SUFFIX = ".bin"
PROGRESS_BIN = PROGRESS_JSONL + PROGRESS_BIN_SUFFIX
TAIL_FILES = (STDOUT_LOG, PROGRESS_JSONL, PROGRESS_BIN)  # what the `tail` verb may read of a run
SUPERVISOR_LOG = "supervisor.log"
SLURM_JSON = "slurm.json"
SBATCH_SCRIPT = "job.sbatch"
MANIFESTS_DIRNAME = "manifests"
# What a pull hashed, kept by both ends (the box in the run dir, this side in ``<dest>/.outlive``)
# for the next pull. A hash is kept only for a file whose last change came this long before its
# hashing began: a write in the same timestamp tick as that change would leave the file's stamp
# as it was (coarse kernel clocks, one-second filesystems, a network volume's own clock).
HASH_CACHE_NAME = "hash-cache.json"
RACY_MARGIN_NS = 2_000_000_000

# -- the job's environment --------------------------------------------------------------------
ENV_RUN_ID = "OUTLIVE_RUN_ID"
ENV_RUN_NAME = "OUTLIVE_RUN_NAME"
ENV_CKPT_DIR = "OUTLIVE_CKPT_DIR"
ENV_PROGRESS_FILE = "OUTLIVE_PROGRESS_FILE"
ENV_TARGET = "OUTLIVE_TARGET"
ENV_PROFILE = "OUTLIVE_PROFILE"
ENV_SPOT_GRACE_S = "OUTLIVE_SPOT_GRACE_S"
ENV_MTBF_S = "OUTLIVE_MTBF_S"
ENV_SMOKE = "OUTLIVE_SMOKE"
ENV_SECRETS_DIR = "OUTLIVE_SECRETS_DIR"  # where `outlive secret push` put the 0600 files

# -- names ------------------------------------------------------------------------------------
RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_NAME_BYTES = 200


def run_id_problem(run_id: object) -> str | None:
    """Why ``run_id`` is not a safe run id (one path component of letters, digits, ``._-``)."""
    if not isinstance(run_id, str) or not RUN_ID_RE.match(run_id):
        return f"run id {run_id!r} is not a safe identifier"
    return None


def name_problem(name: object, what: str = "run name") -> str | None:
    """Why ``name`` cannot be a run name (it becomes a directory under the durable path), or
    ``what`` else must be one directory name (a project's)."""
    if not isinstance(name, str) or not name or len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"{what} must be 1-{MAX_NAME_BYTES} bytes"
    if name in (".", "..") or "/" in name or any(is_control(c) for c in name):
        return (
            f"{what} {name!r} cannot be used as a directory name (it contains '/', a control "
            "character such as a newline, or is '.' or '..')"
        )
    if _EXPANDS.search(name):  # a box's agent expands $VARS in its paths (profiles' $HOME/run)
        return (
            f"{what} {name!r} cannot hold '$' before a letter, digit, '_' or '{{': a box would "
            "read it as a shell variable in the paths it names; choose one without it"
        )
    return None


# What os.path.expandvars replaces ($NAME, ${NAME}); a '$' before anything else stays literal.
_EXPANDS = re.compile(r"\$(\w|\{)")


def is_control(char: str) -> bool:
    """A C0 or C1 control character, or DEL: a terminal acts on these (U+009B starts an escape
    sequence as ESC [ does), so no name or path shown to a person may hold one."""
    code = ord(char)
    return code < 32 or 127 <= code <= 159


# -- run states -------------------------------------------------------------------------------
class State(str, Enum):
    """A run's state as the box's records show it (a ``str``: it is its own JSON value)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    VANISHED = "vanished"
    CANCELLED = "cancelled"
    REQUEUED = "requeued"

    def __str__(self) -> str:
        return self.value

    @property
    def ended(self) -> bool:
        return self in ENDED_STATES

    @classmethod
    def parse(cls, value: object) -> State | None:
        """The state named ``value``, or None for anything else (an unreadable record)."""
        try:
            return cls(value)
        except ValueError:
            return None


ENDED_STATES = frozenset({State.SUCCEEDED, State.FAILED, State.VANISHED, State.CANCELLED})
DIAGNOSIS_CAUSES = ("reboot", "oom", "killed", "hangup", "unknown")


def _known(names: tuple[str, ...], doc: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in doc.items() if k in names}


@shape
class LaunchRequest:
    """The agent's ``launch`` request: the run, and everything its target gives every job.

    ``backend`` picks the box-side dispatch entry (setsid, tmux, slurm). Slurm adds the rendered
    ``sbatch_script`` and, for an array, ``cells`` (``[{"name", "command"}]``).
    """

    run_id: str
    name: str
    command: List[str]
    workdir: str
    durable: str | None = None
    backend: str = BACKEND_SETSID
    env: Dict[str, str] = field(default_factory=dict)
    hf_home: str | None = None
    secrets: List[str] = field(default_factory=list)
    target: str | None = None
    profile: str | None = None
    kill_grace_s: float = 30.0
    spot_grace_s: float | None = None
    mtbf_s: float | None = None
    created_at: float = 0.0
    deploy_manifest: Dict[str, Dict[str, Any]] | None = None
    pythonpath: str | None = None
    sbatch_script: str | None = None
    cells: List[Dict[str, Any]] | None = None
    array_cell: int | None = None
    project_id: str | None = None  # the launching project's (a look adopts only its own runs)

    def to_json(self) -> Dict[str, Any]:
        return {k: v for k, v in as_dict(self).items() if v is not None}

    @classmethod
    def from_json(cls, doc: Dict[str, Any]) -> LaunchRequest:
        """The request from its JSON; an old client's ``detach`` names the backend."""
        doc = dict(doc)
        if "backend" not in doc and doc.get("detach"):
            doc["backend"] = doc["detach"]
        return cls(**_known(_LAUNCH_FIELDS, doc))


# Keys a probe reply carries only when set (a reader tests ``"warning" in reply``).
PROBE_SPARSE_KEYS = (
    "max_rss_bytes", "warning", "error", "restarts", "slurm", "kubernetes", "kaggle",
)  # fmt: skip


@shape
class RunProbe:
    """One run as the box's records show it: the ``probe`` verb's reply has one per run dir.

    ``state`` is a :class:`State` value, or ``"unknown"`` when the run's records are unreadable
    (``error`` says why); ``diagnosis`` is ``{"cause", "evidence", "gotchas"}`` or None.
    """

    run_dir: str
    state: str
    run_id: str | None = None
    name: str | None = None
    ckpt_dir: str | None = None
    exit_code: int | None = None
    signal: int | None = None
    pid: int | None = None
    supervisor_pid: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    heartbeat_age_s: float | None = None
    progress: Dict[str, Any] | None = None
    diagnosis: Dict[str, Any] | None = None
    cancel_requested: bool | None = None
    max_rss_bytes: int | None = None
    warning: str | None = None
    error: str | None = None
    restarts: int | None = None
    slurm: Dict[str, Any] | None = None
    kubernetes: Dict[str, Any] | None = None
    kaggle: Dict[str, Any] | None = None

    def to_json(self) -> Dict[str, Any]:
        """The reply's JSON; the keys of ``PROBE_SPARSE_KEYS`` only where they say something."""
        doc = as_dict(self)
        for key in PROBE_SPARSE_KEYS:
            if doc[key] is None:
                del doc[key]
        return doc

    @classmethod
    def from_json(cls, doc: Dict[str, Any]) -> RunProbe:
        doc = _known(_PROBE_FIELDS, doc)
        doc.setdefault("run_dir", "")
        doc.setdefault("state", "unknown")
        return cls(**doc)


_LAUNCH_FIELDS = fields_of(LaunchRequest("", "", [], ""))
_PROBE_FIELDS = fields_of(RunProbe("", ""))
