"""What every generated notebook shares: the name rule, the embedded project and agent, the
danger-clocks cell, the launch request, and the setup cell's hash-checked writer.

Colab (:mod:`outlive.notebook.colab`) and Gradient (:mod:`outlive.notebook.gradient`) differ
only in where the durable directory is and what their run cell does before the common resume.
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
from outlive.profiles.registry import load_profile
from outlive.profiles.schema import Profile

MAX_ARCHIVE_BYTES = 32 * 1024 * 1024  # the notebook carries it; browsers open larger files badly
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a notebook file and a run (one sentence), or None."""
    if not NAME_RE.match(name) or ".." in name:
        return (
            f"notebook name {name!r} must be 1-100 letters, digits, '.', '_' or '-', starting "
            "with a letter or digit (it names N.ipynb and the run's checkpoint directory)"
        )
    return None


def check_inputs(name: str, code: bytes) -> None:
    """UsageError (one sentence) for a bad run name or a project too big to embed."""
    problem = name_problem(name) or wire.name_problem(name)
    if problem:
        raise UsageError(problem)
    if len(code) > MAX_ARCHIVE_BYTES:
        raise UsageError(
            f"the project archive is {len(code) / 2**20:.0f} MiB, over the notebook's "
            f"{MAX_ARCHIVE_BYTES // 2**20} MiB; exclude data and outputs in outlive.toml"
        )


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


def b64_lines(data: bytes) -> str:
    """``data`` as a Python list literal of base64 lines (a notebook cell stays readable)."""
    text = base64.b64encode(data).decode("ascii")
    return "[\n" + "".join(f"    {text[i : i + 76]!r},\n" for i in range(0, len(text), 76)) + "]"


def blobs_source(agent: bytes, code: bytes) -> str:
    return f"AGENT_B64 = {b64_lines(agent)}\nCODE_B64 = {b64_lines(code)}\n"


def embed_source(agent: bytes, code: bytes) -> str:
    """The setup cell's end, once ``WORKDIR`` is set: the agent and the project written under
    ``WORKDIR/.outlive`` by names that carry their hash (never a stale copy, U42), the agent
    importable."""
    agent_sha, code_sha = hashlib.sha256(agent).hexdigest(), hashlib.sha256(code).hexdigest()
    return PUT_SOURCE + (
        'STATE_DIR = os.path.join(WORKDIR, ".outlive")\n'
        f'AGENT = _put(os.path.join(STATE_DIR, "agent-{agent_sha:.16}.pyz"), AGENT_B64, '
        f"{agent_sha!r})\n"
        f'CODE = _put(os.path.join(STATE_DIR, "code-{code_sha:.16}.zip"), CODE_B64, {code_sha!r})\n'
        "if AGENT not in sys.path:\n"
        "    sys.path.insert(0, AGENT)\n"
    )


def clocks_source(profile: Profile, header: list[str]) -> str:
    """The first cell: ``header`` comments, then the profile's danger clocks, printed."""
    lines = [f"# {line}" if line else "#" for line in header]
    lines.append("CLOCKS = [")
    for clock in profile.clocks_first():
        when = f"~{clock.duration_s / 3600:g} h" if clock.duration_s else "no fixed time"
        lines.append(f"    ({clock.name!r}, {when!r}, {clock.what_happens!r}),")
    lines += [
        "]",
        "for _name, _when, _what in CLOCKS:",
        "    print(f'{_name} ({_when}): {_what}')",
    ]
    return "\n".join(lines) + "\n"


def launch_request(
    profile_name: str,
    *,
    name: str,
    command: list[str],
    env: dict[str, str] | None,
    target: str | None,
    run_id: str | None,
) -> dict[str, object]:
    """The run's launch request (its workdir and durable directory are filled in the kernel)."""
    profile = load_profile(profile_name)
    return wire.LaunchRequest(
        run_id=run_id or new_run_id(),
        name=name,
        command=list(command),
        workdir="",
        target=target,
        profile=profile_name,
        kill_grace_s=profile.kill_grace_s,
        mtbf_s=profile.mtbf_s,
        env=dict(env or {}),
        created_at=time.time(),
    ).to_json()


def request_and_setup(
    profile_name: str,
    setup: str,
    *,
    project: str,
    name: str,
    command: list[str],
    code: bytes,
    agent: bytes,
    env: dict[str, str] | None,
    target: str | None,
    run_id: str | None,
) -> tuple[dict[str, object], str]:
    """The checked run's launch request, and its setup cell: the embedded files, then the
    ``setup`` template filled with ``project``, ``name`` and ``embed``."""
    check_inputs(name, code)
    request = launch_request(
        profile_name, name=name, command=command, env=env, target=target, run_id=run_id
    )
    cell = setup.format(project=project, name=name, embed=embed_source(agent, code))
    return request, blobs_source(agent, code) + cell


# The setup cell's writer: an embedded file lands on durable storage unless an identical copy
# is there already (hash-named, U42), written to a temp file, fsynced and renamed (NB1).
PUT_SOURCE = '''\
def _put(path, b64, sha256):
    """Write an embedded file unless an identical copy is there (fsynced: NB1)."""
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
'''
