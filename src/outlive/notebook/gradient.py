"""``outlive notebook gradient --name N -- CMD...``: a Paperspace Gradient notebook whose run
outlives the notebook's auto-shutdown and restarts.

Only ``/storage`` survives what ends a Gradient notebook's session: the workspace (``pip``
installs included) is wiped on every stop (PS3) and ``/notebooks`` dies with the notebook. So the
code, the run's records and its checkpoints all live in ``/storage/<project>/<name>``, and the
requirements in a venv at ``/storage/<project>/.venv-<hash>``, installed once and reused. The
first cell prints the danger clocks and the time left before the auto-shutdown (PS2), counted
from the notebook's start (PID 1 of its container); the run cell asks the job to save a margin
before it. Running the notebook again is the resume, as on Colab.

Tests stand in for the platform with ``$OUTLIVE_STORAGE_DIR`` (for ``/storage``),
``$OUTLIVE_GRADIENT_STARTED_AT`` (epoch seconds), ``$OUTLIVE_GRADIENT_SHUTDOWN_S`` and
``$OUTLIVE_GRADIENT_MARGIN_S`` (the least margin).
"""

from __future__ import annotations

from outlive.errors import UsageError
from outlive.notebook import cells
from outlive.notebook.common import clocks_source, request_and_setup
from outlive.profiles.registry import load_profile

PROFILE = "paperspace-notebook"
MARGIN_FLOOR_S = 300.0  # the save and /storage's network write, before any stop was measured
MAX_SHUTDOWN_H = 168.0  # paid notebooks: 1 h to 1 week (seed 001 §4)


def default_shutdown_h() -> float:
    """The free tier's hard cap: the shortest auto-shutdown, hence the safe default."""
    clock = load_profile(PROFILE).clock("free notebook auto-shutdown")
    return (clock.duration_s or 21600.0) / 3600


def shutdown_problem(hours: float) -> str | None:
    if not 0 < hours <= MAX_SHUTDOWN_H:
        return (
            f"--auto-shutdown-h {hours:g} is outside 0-{MAX_SHUTDOWN_H:g} h; give the notebook's "
            "auto-shutdown timer in hours (6 on free GPUs, 12 by default on paid ones)"
        )
    return None


CLOCK = '''\
import os, time
SHUTDOWN_S = float(os.environ.get("OUTLIVE_GRADIENT_SHUTDOWN_S") or {shutdown_s!r})

def _container_started_at():
    """When this notebook's container started: its PID 1's start (boot time + start ticks)."""
    try:
        with open("/proc/stat") as f:
            btime = next(float(line.split()[1]) for line in f if line.startswith("btime "))
        with open("/proc/1/stat") as f:
            ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return None

if os.environ.get("OUTLIVE_GRADIENT_STARTED_AT"):  # tests: the epoch second it "started"
    STARTED_AT = float(os.environ["OUTLIVE_GRADIENT_STARTED_AT"])
    _FROM = "$OUTLIVE_GRADIENT_STARTED_AT"
else:
    STARTED_AT, _FROM = _container_started_at(), "the notebook's start"
if STARTED_AT is None or not 0 <= time.time() - STARTED_AT <= SHUTDOWN_S:
    # not a Gradient container, one older than the timer configured here, or a start ahead of
    # this clock (set back since): count from now, never more than the timer
    STARTED_AT = time.time()
    _FROM = "now (the notebook's start is unknown, past the timer or ahead of this clock)"
_LEFT_S = SHUTDOWN_S - (time.time() - STARTED_AT)
_LIMIT = f"{{SHUTDOWN_S / 3600:g}} h" if SHUTDOWN_S >= 3600 else f"{{SHUTDOWN_S:.0f}} s"
print(f"auto-shutdown: {{_LIMIT}} after {{_FROM}}; "
      f"{{int(_LEFT_S // 3600)}} h {{int(_LEFT_S % 3600 // 60):02d}} min left. "
      "The job saves before it; run all cells again after it to resume.")
'''

SETUP = """\
# Setup: /storage, the code, the run's directory. Safe to run again.
import base64, hashlib, os, sys
PROJECT, NAME = {project!r}, {name!r}
STORAGE = os.environ.get("OUTLIVE_STORAGE_DIR") or "/storage"
if not os.path.isdir(STORAGE):
    raise RuntimeError(f"outlive: {{STORAGE}} is not a directory; run this notebook on Gradient "
                       "or set OUTLIVE_STORAGE_DIR to a directory that outlives the notebook")
PROJECT_DIR = os.path.join(STORAGE, PROJECT)
# The run's code, records and checkpoints: only /storage survives both a stop (the workspace is
# wiped, PS3) and deleting the notebook (/notebooks goes with it).
WORKDIR = os.path.join(PROJECT_DIR, NAME)
CKPT_ROOT = os.path.join(WORKDIR, "checkpoints")

{embed}print(f"storage: {{STORAGE}}; run: {{WORKDIR}}; checkpoints: {{CKPT_ROOT}}/{{NAME}}")
"""

RUN = """\
# Run -- and resume: after a restart or the auto-shutdown, run all cells again; this continues
# from the last checkpoint on /storage, and does nothing once the run has ended.
from box.gradient import run

REQUIREMENTS = {requirements!r}  # installed once into a venv on /storage, then reused
REQUEST = {request!r}
STATE = run(
    dict(REQUEST, workdir=WORKDIR, durable=CKPT_ROOT, pythonpath=AGENT),
    AGENT,
    archive=CODE,
    root=PROJECT_DIR,
    requirements=REQUIREMENTS,
    shutdown_s=SHUTDOWN_S,
    started_at=STARTED_AT,
    margin_floor_s=float(os.environ.get("OUTLIVE_GRADIENT_MARGIN_S") or {margin_s!r}),
)
"""


def build(
    *,
    project: str,
    name: str,
    command: list[str],
    code: bytes,
    agent: bytes,
    requirements: str = "",
    shutdown_h: float | None = None,
    env: dict[str, str] | None = None,
    target: str | None = None,
    run_id: str | None = None,
) -> dict[str, object]:
    """The notebook (nbformat v4 JSON) for one run."""
    hours = default_shutdown_h() if shutdown_h is None else shutdown_h
    problem = shutdown_problem(hours)
    if problem:
        raise UsageError(problem)
    request, setup = request_and_setup(
        PROFILE, SETUP, project=project, name=name, command=command, code=code, agent=agent,
        env=env, target=target, run_id=run_id,
    )  # fmt: skip
    clocks = clocks_source(
        load_profile(PROFILE),
        [
            "Danger clocks of Paperspace Gradient (outlive's paperspace-notebook profile). The",
            "run survives them by checkpointing to /storage; run the notebook again to resume.",
        ],
    )
    run = RUN.format(requirements=requirements, request=request, margin_s=MARGIN_FLOOR_S)
    return cells.notebook(
        [
            cells.code(clocks + CLOCK.format(shutdown_s=hours * 3600), "clocks"),
            cells.markdown(
                f"# outlive run `{name}` of project `{project}`\n\n"
                "Run all cells. After a restart or the auto-shutdown, start the notebook and run "
                "all cells again: the run continues from its last checkpoint. Code, checkpoints "
                f"and records live in `/storage/{project}/{name}/` (not `/notebooks`, which is "
                "deleted with the notebook); `/storage` keeps billing until you delete it.\n",
                "about",
            ),
            cells.code(setup, "setup"),
            cells.code(run, "run"),
        ],
        gpu=False,
    )
