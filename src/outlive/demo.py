"""``outlive demo``: the whole promise on one machine, through the same code path as any target.

A toy numpy training run is launched detached on ``local``, SIGKILLed mid-run (a preemption with
no grace), relaunched with the identical command, resumed from its checkpoint and finished; its
final weights must equal those of an uninterrupted reference run bit for bit.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from outlive.errors import OutliveError
from outlive.lifecycle.runs import launch, status
from outlive.run_status import RunStatus
from outlive.session import Session
from outlive.wire import State

EXAMPLE = Path(__file__).resolve().parent / "examples" / "train_numpy.py"
TIMEOUT_S = 120.0


def run_demo(*, steps: int = 300, keep: bool = False, console: Console | None = None) -> bool:
    console = console or Console(highlight=False, soft_wrap=True)
    project = Path(tempfile.mkdtemp(prefix="outlive-demo-"))
    try:
        ok = _demo(project, steps, console)
    finally:
        if keep:
            console.print(f"[dim]demo project kept at {escape(str(project))}[/dim]")
        else:
            shutil.rmtree(project, ignore_errors=True)
    return ok


def _demo(project: Path, steps: int, console: Console) -> bool:
    (project / "outlive.toml").write_text('[project]\nname = "outlive-demo"\n')
    shutil.copyfile(EXAMPLE, project / "train_numpy.py")
    session = Session.open(project)
    command = [
        sys.executable,
        "train_numpy.py",
        "--steps",
        str(steps),
        "--save-every",
        "25",
        "--step-sleep-s",
        "0.01",
    ]
    console.print(f"[bold]outlive demo[/bold] — project {escape(str(project))}, target local")
    console.print(f"  command: {escape(' '.join(command[1:]))}")

    ref = launch(session, "local", command, "reference")
    run = launch(session, "local", command, "interrupted")
    console.print(
        f"  launched [cyan]reference[/cyan] ({ref.run_id}) and "
        f"[cyan]interrupted[/cyan] ({run.run_id}), detached"
    )

    kill_at = max(2, int(steps * 0.45))
    st = _wait(session, run.run_id, lambda s: _step(s) >= kill_at or s.ended)
    if st.state is not State.RUNNING or not st.pid:
        console.print(f"[red]the run ended before it could be killed ({st.state})[/red]")
        return False
    os.kill(st.pid, signal.SIGKILL)
    st = _wait(session, run.run_id, lambda s: s.ended)
    saved = _checkpoint_steps(Path(run.ckpt_dir))
    console.print(
        f"  SIGKILL at step {_step(st)}: state [red]{st.state}[/red] "
        f"(signal {st.signal}); latest checkpoint on disk: step "
        f"{saved[-1] if saved else 'none'}"
    )

    again = launch(session, "local", command, "interrupted")
    console.print(f"  relaunched the identical command as {again.run_id}")
    st = _wait(session, again.run_id, lambda s: s.ended)
    resumed = _resumed_from(Path(again.run_dir) / "stdout.log")
    console.print(
        f"  resumed from step {resumed if resumed is not None else '?'} and ended "
        f"[{'green' if st.state is State.SUCCEEDED else 'red'}]{st.state}[/]"
    )
    ref_st = _wait(session, ref.run_id, lambda s: s.ended)
    if st.state is not State.SUCCEEDED or ref_st.state is not State.SUCCEEDED:
        console.print("[red]a run did not succeed; see its log with outlive logs[/red]")
        return False

    same, detail = _same_weights(Path(ref.ckpt_dir) / "final.npz", Path(run.ckpt_dir) / "final.npz")
    if same:
        console.print(
            f"  [bold green]PASS[/bold green] resumed weights equal the uninterrupted "
            f"run bit for bit ({detail})"
        )
    else:
        console.print(f"  [bold red]FAIL[/bold red] {escape(detail)}")
    return same and resumed is not None and resumed > 0


def _wait(session: Session, run_id: str, done: Callable[[RunStatus], bool]) -> RunStatus:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        st = status(session, [run_id])[0]
        if done(st):
            return st
        if time.monotonic() > deadline:
            raise OutliveError(f"the demo run {run_id} made no progress within {TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def _step(st: RunStatus) -> int:
    step = (st.progress or {}).get("step")
    return step if isinstance(step, int) else 0


def _checkpoint_steps(ckpt_dir: Path) -> list[int]:
    from outlive.ckpt import Checkpointer

    with Checkpointer(ckpt_dir, handle_signals=False) as ckpt:
        return ckpt.steps()


def _resumed_from(log: Path) -> int | None:
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("resumed from step "):
            return int(line.split()[3])
    return None


def _same_weights(a: Path, b: Path) -> tuple[bool, str]:
    import numpy as np

    if not a.exists() or not b.exists():
        return False, f"missing final weights: {a if not a.exists() else b}"
    with np.load(a) as za, np.load(b) as zb:
        if sorted(za.files) != sorted(zb.files):
            return False, f"different arrays: {sorted(za.files)} vs {sorted(zb.files)}"
        for key in za.files:
            x, y = za[key], zb[key]
            if x.dtype != y.dtype or x.shape != y.shape or x.tobytes() != y.tobytes():
                return False, f"array {key!r} differs"
        digest = hashlib.sha256(b"".join(za[k].tobytes() for k in sorted(za.files))).hexdigest()
    return True, f"sha256 {digest[:16]}…"
