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

import base64
import hashlib
import io
import re
import time
import zipfile
from pathlib import Path

from outlive import wire
from outlive.errors import UsageError
from outlive.naming import new_run_id
from outlive.notebook import cells
from outlive.profiles.registry import load_profile

PROFILE = "colab"
MAX_ARCHIVE_BYTES = 32 * 1024 * 1024  # the notebook carries it; Colab opens larger files badly
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a notebook file and a run (one sentence), or None."""
    if not NAME_RE.match(name) or ".." in name:
        return (
            f"notebook name {name!r} must be 1-100 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (it names N.ipynb and the run's checkpoint directory)"
        )
    return None


def project_zip(root: Path, files: list[str]) -> bytes:
    """The project tree as a deterministic zip (the same tree gives the same bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            src = root / rel
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (src.stat().st_mode & 0o777) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, src.read_bytes())
    return buf.getvalue()


def danger_clocks_source() -> str:
    """The first cell: the colab profile's danger clocks, printed before anything runs."""
    profile = load_profile(PROFILE)
    lines = [
        "# Danger clocks of Google Colab (outlive's colab profile). No keep-alive tricks here:",
        "# the run survives these by checkpointing to Drive; run the notebook again to resume.",
        "CLOCKS = [",
    ]
    for clock in profile.clocks_first():
        when = f"~{clock.duration_s / 3600:g} h" if clock.duration_s else "no fixed time"
        lines.append(f"    ({clock.name!r}, {when!r}, {clock.what_happens!r}),")
    lines += [
        "]",
        "for _name, _when, _what in CLOCKS:",
        "    print(f'{_name} ({_when}): {_what}')",
    ]
    return "\n".join(lines) + "\n"


SETUP = '''\
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
WORKDIR = os.path.join(DRIVE, PROJECT)  # on Drive: only Drive outlives the session (NB4)
CKPT_ROOT = os.path.join(WORKDIR, "checkpoints")

def _put(path, b64, sha256):
    """Write an embedded file to Drive unless an identical copy is there (fsynced: NB1)."""
    try:
        with open(path, "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() == sha256:
                return path
    except OSError:
        pass
    data = base64.b64decode("".join(b64))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path

STATE_DIR = os.path.join(WORKDIR, ".outlive")
AGENT = _put(os.path.join(STATE_DIR, "agent-{agent_sha:.16}.pyz"), AGENT_B64, {agent_sha!r})
CODE = _put(os.path.join(STATE_DIR, "code-{code_sha:.16}.zip"), CODE_B64, {code_sha!r})
print(f"Drive: {{DRIVE}}; code on Drive: {{CODE}}; checkpoints: {{CKPT_ROOT}}/{{NAME}}")
'''

RUN = '''\
# Run -- and resume: after a disconnect, run all cells again; this continues from the last
# checkpoint flushed to Drive, and does nothing once the run has ended.
if AGENT not in sys.path:
    sys.path.insert(0, AGENT)
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


def _b64_lines(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "[\n" + "".join(f"    {text[i : i + 76]!r},\n" for i in range(0, len(text), 76)) + "]"


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
    problem = name_problem(name) or wire.name_problem(name)
    if problem:
        raise UsageError(problem)
    if len(code) > MAX_ARCHIVE_BYTES:
        raise UsageError(
            f"the project archive is {len(code) / 2**20:.0f} MiB, over the notebook's "
            f"{MAX_ARCHIVE_BYTES // 2**20} MiB; exclude data and outputs in outlive.toml"
        )
    profile = load_profile(PROFILE)
    caps = [c.duration_s for c in profile.clocks if c.kind == "session-cap" and c.duration_s]
    lags = [c.duration_s for c in profile.clocks if c.kind == "sync-lag" and c.duration_s]
    request = wire.LaunchRequest(
        run_id=run_id or new_run_id(),
        name=name,
        command=list(command),
        workdir="",
        target=target,
        profile=PROFILE,
        kill_grace_s=profile.kill_grace_s,
        mtbf_s=profile.mtbf_s,
        env=dict(env or {}),
        created_at=time.time(),
    ).to_json()
    setup = SETUP.format(
        project=project,
        name=name,
        agent_sha=hashlib.sha256(agent).hexdigest(),
        code_sha=hashlib.sha256(code).hexdigest(),
    )
    blobs = f"AGENT_B64 = {_b64_lines(agent)}\nCODE_B64 = {_b64_lines(code)}\n"
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
            cells.code(blobs + setup, "setup"),
            cells.code(run, "run"),
        ]
    )
    return doc
