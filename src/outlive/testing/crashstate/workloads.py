"""The saves the checker records: outlive's own paths and the unsafe ways most scripts save.

Each workload saves steps 1, 2, 3... of a deterministic state into its root and writes marker
lines: ``BEGIN s`` before a save and ``DURABLE s`` once the writer treats step ``s`` as saved
(``save()`` returned with ``sync=True``, a later ``save()`` or ``flush()`` waited for it; for the
unsafe peers, when their call returned). Its loader reads the latest step back from a disk image
the way a restarted job would. Run one for the recorder with
``python -m outlive.testing.crashstate.workloads NAME ROOT MARKER_FILE``.
"""

from __future__ import annotations

import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Callable, Dict

from outlive.testing.crashstate.workload import STEPS, Loaded, Mark, Workload, expected_state
from outlive.testing.crashstate.workloads_dcp import DCP_WORKLOADS

__all__ = ["STEPS", "WORKLOADS", "main"]

# -- outlive -------------------------------------------------------------------------------


def _outlive_dir(root: Path) -> Path:
    return root / "run" / "ckpt"  # created by the Checkpointer: ensure_directory is covered


def _run_outlive(sync: bool, keep_last: int | None) -> Callable[[Path, Mark, int], None]:
    def run(root: Path, mark: Mark, steps: int) -> None:
        from outlive.ckpt import Checkpointer

        ckpt = Checkpointer(
            _outlive_dir(root), keep_last=keep_last, sync=sync, handle_signals=False
        )
        for step in range(1, steps + 1):
            mark(f"BEGIN {step}")
            ckpt.save(expected_state(step), step=step)
            if sync:
                mark(f"DURABLE {step}")
            elif step > 1:
                mark(f"DURABLE {step - 1}")  # this save() waited for the previous persist
        ckpt.close()
        mark(f"DURABLE {steps}")

    return run


def _run_outlive_resume(root: Path, mark: Mark, steps: int) -> None:
    """A restarted job: an earlier run's checkpoint and a dead writer's tmp file are on disk,
    it resumes, saves ranked by a metric (keep_last=2, keep_best=1) and sweeps the stale tmp."""
    from outlive.ckpt import Checkpointer, fmt

    first = Checkpointer(
        _outlive_dir(root), keep_last=2, keep_best=1, sync=True, handle_signals=False
    )
    mark("BEGIN 1")
    first.save(expected_state(1), step=1, metric=1.0)
    mark("DURABLE 1")
    first.close()
    stale = fmt.tmp_name(fmt.checkpoint_name(2), 2**22 + 1, "dead")  # above pid_max: dead
    (_outlive_dir(root) / stale).write_bytes(b"a torn write of an earlier incarnation")
    ckpt = Checkpointer(
        _outlive_dir(root), keep_last=2, keep_best=1, sync=True, handle_signals=False
    )
    restored = ckpt.load_latest()
    for step in range(restored.step + 1 if restored else 1, steps + 1):
        mark(f"BEGIN {step}")
        ckpt.save(expected_state(step), step=step, metric=float(step % 3))  # best: not newest
        mark(f"DURABLE {step}")
    ckpt.close()


def _run_outlive_mutant(root: Path, mark: Mark, steps: int) -> None:
    """outlive with the directory fsync after the rename removed: the checker must object."""
    from outlive.ckpt import durable

    durable.fsync_directory = lambda directory: None
    _run_outlive(True, None)(root, mark, steps)


def _load_outlive(root: Path) -> Loaded:
    from outlive.ckpt import Checkpointer

    restored = Checkpointer(_outlive_dir(root), handle_signals=False).load_latest()
    return (None, None) if restored is None else (restored.step, restored.state)


# -- unsafe peers --------------------------------------------------------------------------


def _latest(root: Path) -> Path:
    return root / "latest.pkl"


def _run_pickle(root: Path, mark: Mark, steps: int) -> None:
    for step in range(1, steps + 1):
        mark(f"BEGIN {step}")
        with open(_latest(root), "wb") as f:
            pickle.dump(expected_state(step), f, protocol=4)
        mark(f"DURABLE {step}")


def _run_rename(fsync_file: bool) -> Callable[[Path, Mark, int], None]:
    def run(root: Path, mark: Mark, steps: int) -> None:
        for step in range(1, steps + 1):
            mark(f"BEGIN {step}")
            tmp = root / "latest.pkl.tmp"
            with open(tmp, "wb") as f:
                pickle.dump(expected_state(step), f, protocol=4)
                if fsync_file:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, _latest(root))  # and no fsync of the directory
            mark(f"DURABLE {step}")

    return run


def _load_pickle(root: Path) -> Loaded:
    if not _latest(root).exists():
        return None, None
    with open(_latest(root), "rb") as f:
        state = pickle.load(f)
    return state["step"], state


def _run_torch(root: Path, mark: Mark, steps: int) -> None:
    import torch  # type: ignore[import-not-found, unused-ignore]

    for step in range(1, steps + 1):
        mark(f"BEGIN {step}")
        state = expected_state(step)
        blob = torch.frombuffer(bytearray(state["blob"]), dtype=torch.uint8)
        torch.save({"step": step, "blob": blob}, root / "latest.pt")
        mark(f"DURABLE {step}")


def _load_torch(root: Path) -> Loaded:
    import torch  # type: ignore[import-not-found, unused-ignore]

    if not (root / "latest.pt").exists():
        return None, None
    raw = torch.load(root / "latest.pt", weights_only=True)
    return int(raw["step"]), {"step": int(raw["step"]), "blob": raw["blob"].numpy().tobytes()}


WORKLOADS: Dict[str, Workload] = {
    w.name: w
    for w in (
        Workload(
            "outlive_sync",
            "Checkpointer(sync=True), keep all",
            _run_outlive(True, None),
            _load_outlive,
        ),
        Workload(
            "outlive_async",
            "Checkpointer() two-phase save, background persist",
            _run_outlive(False, None),
            _load_outlive,
        ),
        Workload(
            "outlive_prune",
            "Checkpointer(sync=True, keep_last=1): each save prunes the one before",
            _run_outlive(True, 1),
            _load_outlive,
        ),
        Workload(
            "outlive_resume",
            "a restarted job: resume, sweep a dead writer's tmp, keep_last=2 + keep_best=1",
            _run_outlive_resume,
            _load_outlive,
        ),
        Workload(
            "outlive_mutant_no_dir_fsync",
            "outlive's commit with its directory fsync removed (proves the checker would see it)",
            _run_outlive_mutant,
            _load_outlive,
            safe=False,
        ),
        Workload(
            "pickle_latest",
            "pickle.dump straight to latest.pkl",
            _run_pickle,
            _load_pickle,
            safe=False,
        ),
        Workload(
            "rename_no_fsync",
            "pickle to a tmp file, rename over latest.pkl, no fsync",
            _run_rename(False),
            _load_pickle,
            safe=False,
        ),
        Workload(
            "rename_no_dir_fsync",
            "tmp file, fsync, rename, but no fsync of the directory",
            _run_rename(True),
            _load_pickle,
            safe=False,
        ),
        Workload(
            "torch_save",
            "torch.save straight to latest.pt",
            _run_torch,
            _load_torch,
            safe=False,
            needs=("torch",),
        ),
        *DCP_WORKLOADS,
    )
}


def main(argv: list[str]) -> int:
    """Run workload ``argv[0]`` in root ``argv[1]``, marking into file ``argv[2]``, saving
    ``argv[3]`` steps."""
    name, root, marker, steps = argv
    fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def mark(line: str) -> None:
        os.write(fd, (line + "\n").encode())

    logging.basicConfig(level=logging.WARNING)
    WORKLOADS[name].run(Path(root), mark, int(steps))
    os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
