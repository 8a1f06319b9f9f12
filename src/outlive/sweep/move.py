"""``outlive move RUN --to TARGET``: the run goes on elsewhere from its latest checkpoint.

TERM first (the job saves at its next safe point and exits), then the run's results are pulled
and verified like any ``pull`` (hashes, and the latest checkpoint must read back whole), the
checkpoint is sent into the other target's durable directory for the run's name (whatever was
there is moved aside, never deleted) and checked there by hash, and the identical command is
launched under the same name, which loads it. The old run is marked moved in the registry.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from outlive import wire
from outlive.errors import OutliveError, UsageError
from outlive.sweep import registry

if TYPE_CHECKING:
    from outlive.run_status import RunStatus
    from outlive.session import Session

# How long past the target's kill grace a cancelled run may take to be seen ended.
SETTLE_S = 60.0


class MoveRefused(OutliveError):
    """The run was not moved: its checkpoint could not be verified or placed (exit 1)."""


def move_run(session: Session, ref: str, to: str) -> dict[str, Any]:
    from outlive.lifecycle.pull import pick_run

    rec, _ = pick_run(session.store, ref)
    dest_target = session.target(to)  # an unknown target: one sentence, exit 2
    if rec.target == dest_target.name:
        raise UsageError(f"run {rec.run_id} is already on {to}; give another --to TARGET")
    st = _stopped(session, rec.run_id, session.target(rec.target).policy.kill_grace_s)
    ckpt_file, step = _pulled_checkpoint(session, rec.run_id)
    durable = dest_target.placement.durable.rstrip("/") or "/"
    there = f"{durable}/{rec.name}"
    _place(session, to, ckpt_file, there)
    from outlive.lifecycle.runs import launch

    registry.record_move(session.store, rec.run_id, rec.name, rec.target, to, None, str(ckpt_file))
    launched = launch(session, to, list(rec.command), rec.name)
    registry.record_move(
        session.store, rec.run_id, rec.name, rec.target, to, launched.run_id, str(ckpt_file)
    )
    return {
        "run_id": launched.run_id,
        "name": rec.name,
        "from_run_id": rec.run_id,
        "from_target": rec.target,
        "from_state": st.state.value,
        "to_target": to,
        "checkpoint_step": step,
        "checkpoint": str(ckpt_file),
        "ckpt_dir": launched.ckpt_dir,
        "warnings": list(launched.warnings),
    }


def _stopped(session: Session, run_id: str, grace_s: float) -> RunStatus:
    """The run, ended: TERM it when it still runs (the job saves), then wait until a look sees
    it ended. A target that does not answer is refused: its run may still be running."""
    from outlive.lifecycle.runs import cancel, status

    st = status(session, [run_id])[0]
    if st.stale:
        raise MoveRefused(
            f"target {st.target} does not answer, so run {run_id} may still be running; move it "
            "once the target answers"
        )
    if st.state is wire.State.SUCCEEDED:
        raise UsageError(f"run {run_id} already succeeded; nothing is left to move")
    if st.ended:
        return st
    cancel(session, run_id)
    deadline = time.monotonic() + grace_s + SETTLE_S
    while True:
        st = status(session, [run_id])[0]
        if st.ended and not st.stale:
            return st
        if time.monotonic() > deadline:
            raise MoveRefused(f"run {run_id} did not end after TERM; see `outlive doctor {run_id}`")
        time.sleep(0.3)


def _pulled_checkpoint(session: Session, run_id: str) -> tuple[Path, int]:
    """Pull and verify the run's results; its latest checkpoint file (read back whole)."""
    from outlive.ckpt import fmt
    from outlive.ckpt.directory import committed_steps
    from outlive.ckpt.reader import verify_path
    from outlive.errors import CheckpointError
    from outlive.lifecycle.pull import CKPT_LABEL, pull

    report = pull(session, run_id)
    if not report["ok"]:
        raise MoveRefused(
            f"the pull of run {run_id} did not verify, so nothing was moved; see "
            f"`outlive pull {run_id}`"
        )
    ckpt_dir = Path(report["dest"]) / CKPT_LABEL
    steps = sorted(committed_steps(ckpt_dir), reverse=True)
    if not steps:
        raise MoveRefused(f"run {run_id} has no checkpoint to move (pulled into {ckpt_dir})")
    path = ckpt_dir / fmt.checkpoint_name(steps[0])
    try:
        verify_path(path, expected_step=steps[0])
    except (CheckpointError, OSError) as exc:
        raise MoveRefused(
            f"the latest checkpoint of run {run_id} ({path.name}) does not verify ({exc}); "
            "nothing was moved"
        ) from None
    return path, steps[0]


def _place(session: Session, to: str, ckpt_file: Path, there: str) -> None:
    """Put ``ckpt_file`` alone into ``there`` on ``to`` (an older dir is moved aside) and check
    it arrived whole by its SHA-256."""
    from outlive.transport.files import tar_upload

    transport = session.backend(to).transport
    aside = f"{there}.superseded-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    script = 'if [ -e "$1" ]; then mv "$1" "$2"; fi; mkdir -p "$1"'
    done = transport.run(["sh", "-c", script, "sh", there, aside], timeout_s=60.0)
    if done.returncode != 0:
        raise MoveRefused(f"cannot prepare {there} on {to}: {_text(done.stderr)}")
    done = tar_upload(transport, ckpt_file.parent, [ckpt_file.name], there, timeout_s=600.0)
    if done.returncode != 0:
        raise MoveRefused(f"cannot send the checkpoint to {there} on {to}: {_text(done.stderr)}")
    check = transport.run(["sha256sum", f"{there}/{ckpt_file.name}"], timeout_s=120.0)
    want = hashlib.sha256(ckpt_file.read_bytes()).hexdigest()
    if check.returncode != 0 or _text(check.stdout).split()[:1] != [want]:
        raise MoveRefused(
            f"the checkpoint sent to {there} on {to} does not match its hash; nothing was launched"
        )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").strip()
