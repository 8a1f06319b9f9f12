"""``outlive notebook colab --name N -- CMD...``: a Colab notebook whose run survives its session.

The notebook carries everything it needs (no git remote, no upload step): the project tree as a
zip and outlive's agent as a zipapp, both embedded as base64 and written to Drive by the setup cell
under names that carry their hash (U42: never a stale copy). The run cell unpacks the project on
Drive and runs the command under the same supervisor and Checkpointer contract as every platform;
the checkpoints go to ``<Drive>/<project>/checkpoints/<name>``. Running the notebook again is the
resume: the run cell continues from the last flushed checkpoint and does nothing once the run has
ended. ``$OUTLIVE_DRIVE_DIR`` replaces the Drive mount where ``google.colab`` is absent.
"""

from __future__ import annotations

from outlive.notebook import cells
from outlive.notebook.common import clocks_source, name_problem, project_zip, request_and_setup
from outlive.profiles.registry import load_profile

__all__ = ["PROFILE", "build", "danger_clocks_source", "name_problem", "project_zip"]

PROFILE = "colab"


def danger_clocks_source() -> str:
    """The first cell: the colab profile's danger clocks, printed before anything runs."""
    return clocks_source(
        load_profile(PROFILE),
        [
            "Danger clocks of Google Colab (outlive's colab profile). No keep-alive tricks here:",
            "the run survives these by checkpointing to Drive; run the notebook again to resume.",
        ],
    )


SETUP = """\
# Setup: Drive, the code, the checkpoint directory. Safe to run again.
import base64, hashlib, os, sys
PROJECT, NAME = {project!r}, {name!r}
try:
    from google.colab import drive
except ImportError:
    drive = None  # not on Colab: $OUTLIVE_DRIVE_DIR stands in for Drive
if drive is not None:
    drive.mount("/content/drive")
    DRIVE = "/content/drive/MyDrive"
elif os.environ.get("OUTLIVE_DRIVE_DIR"):
    DRIVE = os.environ["OUTLIVE_DRIVE_DIR"]
else:
    raise RuntimeError("outlive: google.colab is absent and OUTLIVE_DRIVE_DIR is unset; "
                       "set it to a directory that outlives this kernel")
if not os.path.isdir(DRIVE):  # never made here: a new directory would be the VM's local disk
    raise RuntimeError(f"outlive: {{DRIVE}} is not a directory, so nothing written there would "
                       "outlive this session; mount Drive (or create OUTLIVE_DRIVE_DIR) and "
                       "run this cell again")
WORKDIR = os.path.join(DRIVE, PROJECT)  # on Drive: only Drive outlives the session (NB4)
CKPT_ROOT = os.path.join(WORKDIR, "checkpoints")

{embed}print(f"Drive: {{DRIVE}}; code on Drive: {{CODE}}; checkpoints: {{CKPT_ROOT}}/{{NAME}}")
"""

RUN = '''\
# Run -- and resume: after a disconnect, run all cells again; this continues from the last
# checkpoint flushed to Drive, and does nothing once the run has ended.
from box.notebook import resume

def flush(final):
    """Each checkpoint is fsynced and re-listed by outlive; at the end Drive is flushed (NB1)."""
    if final and drive is not None:
        drive.flush_and_unmount()

REQUEST = {request!r}
STATE = resume(
    dict(REQUEST, workdir=WORKDIR, durable=CKPT_ROOT, pythonpath=AGENT),
    AGENT,
    archive=CODE,
    flush=flush,
    session_cap_s={cap_s!r},
    margin_s={margin_s!r},
)
'''


def build(
    *,
    project: str,
    name: str,
    command: list[str],
    code: bytes,
    agent: bytes,
    env: dict[str, str] | None = None,
    target: str | None = None,
    run_id: str | None = None,
) -> dict[str, object]:
    """The notebook (nbformat v4 JSON) for one run."""
    request, setup = request_and_setup(
        PROFILE, SETUP, project=project, name=name, command=command, code=code, agent=agent,
        env=env, target=target, run_id=run_id,
    )  # fmt: skip
    profile = load_profile(PROFILE)
    caps = [c.duration_s for c in profile.clocks if c.kind == "session-cap" and c.duration_s]
    lags = [c.duration_s for c in profile.clocks if c.kind == "sync-lag" and c.duration_s]
    run = RUN.format(
        request=request,
        cap_s=min(caps) if caps else 43200.0,
        margin_s=max(lags) if lags else 1800.0,  # stop early enough for the last sync (NB1)
    )
    doc = cells.notebook(
        [
            cells.code(danger_clocks_source(), "clocks"),
            cells.markdown(
                f"# outlive run `{name}` of project `{project}`\n\n"
                "Run all cells. After a disconnect, run all cells again: the run continues "
                "from its last checkpoint on Drive. Outputs and checkpoints live in "
                f"`MyDrive/{project}/`.\n",
                "about",
            ),
            cells.code(setup, "setup"),
            cells.code(run, "run"),
        ]
    )
    return doc
