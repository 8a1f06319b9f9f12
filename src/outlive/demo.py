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
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from outlive.config import Config, load_config
from outlive.errors import OutliveError
from outlive.lifecycle.runs import ENDED, launch, status

EXAMPLE = Path(__file__).resolve().parent / "examples" / "train_numpy.py"
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Seen:
    """What the demo reads of a run's status."""

    state: str
    step: int  # the latest progress() step, 0 before the first
    pid: int | None
    signal: int | None


def run_demo(*, steps: int = 300, keep: bool = False, console: Console | None = None) -> bool:
    console = console or Console(highlight=False, soft_wrap=True)
    project = Path(tempfile.mkdtemp(prefix="outlive-demo-"))
    try:
        ok = _demo(project, steps, console)
    finally:
        if keep:
            console.print(f"[dim]demo project kept at {project}[/dim]")
        else:
            shutil.rmtree(project, ignore_errors=True)
    return ok


def _demo(project: Path, steps: int, console: Console) -> bool:
    (project / "outlive.toml").write_text('[project]\nname = "outlive-demo"\n')
    shutil.copyfile(EXAMPLE, project / "train_numpy.py")
    cfg = load_config(project)
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
    console.print(f"[bold]outlive demo[/bold] — project {project}, target local")
    console.print(f"  command: {' '.join(command[1:])}")

    ref = launch(cfg, "local", command, "reference")
    run = launch(cfg, "local", command, "interrupted")
    console.print(
        f"  launched [cyan]reference[/cyan] ({ref.run_id}) and "
        f"[cyan]interrupted[/cyan] ({run.run_id}), detached"
    )

    kill_at = max(2, int(steps * 0.45))
    st = _wait(cfg, run.run_id, lambda s: s.step >= kill_at or s.state in ENDED)
    if st.state != "running" or not st.pid:
        console.print(f"[red]the run ended before it could be killed ({st.state})[/red]")
        return False
    os.kill(int(st.pid), signal.SIGKILL)
    st = _wait(cfg, run.run_id, lambda s: s.state in ENDED)
    saved = _checkpoint_steps(Path(run.ckpt_dir))
    console.print(
        f"  SIGKILL at step {st.step}: state [red]{st.state}[/red] "
        f"(signal {st.signal}); latest checkpoint on disk: step "
        f"{saved[-1] if saved else 'none'}"
    )

    again = launch(cfg, "local", command, "interrupted")
    console.print(f"  relaunched the identical command as {again.run_id}")
    st = _wait(cfg, again.run_id, lambda s: s.state in ENDED)
    resumed = _resumed_from(Path(again.run_dir) / "stdout.log")
    console.print(
        f"  resumed from step {resumed if resumed is not None else '?'} and ended "
        f"[{'green' if st.state == 'succeeded' else 'red'}]{st.state}[/]"
    )
    ref_st = _wait(cfg, ref.run_id, lambda s: s.state in ENDED)
    if st.state != "succeeded" or ref_st.state != "succeeded":
        console.print("[red]a run did not succeed; see its log with outlive logs[/red]")
        return False

    same, detail = _same_weights(Path(ref.ckpt_dir) / "final.npz", Path(run.ckpt_dir) / "final.npz")
    if same:
        console.print(
            f"  [bold green]PASS[/bold green] resumed weights equal the uninterrupted "
            f"run bit for bit ({detail})"
        )
    else:
        console.print(f"  [bold red]FAIL[/bold red] {detail}")
    return same and resumed is not None and resumed > 0


def _wait(cfg: Config, run_id: str, done: Callable[[Seen], bool]) -> Seen:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        st = status(cfg, [run_id])[0]
        progress = st.get("progress") or {}
        seen = Seen(st["state"], int(progress.get("step", 0)), st.get("pid"), st.get("signal"))
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            raise OutliveError(f"the demo run {run_id} made no progress within {TIMEOUT_S:.0f} s")
        time.sleep(0.05)


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
