"""Load every crash state of a recording and judge what a restarted job would get.

A state is OK when the loader returns a step the workload may legitimately resume from, with the
content that step saved: the newest step marked ``DURABLE`` before the crash point, or a newer one
whose save had begun (or nothing, before the first durable save). Anything else is BAD: the loader
raised, returned a wrong step, wrong content, or an older step than one already durable (a
committed save lost). States are deduplicated by disk image and expectation.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, FrozenSet, Iterator, List, Sequence, Set, Tuple

from outlive.testing.crashstate.model import crash_states
from outlive.testing.crashstate.ops import Image, Marker, Op
from outlive.testing.crashstate.recorder import Recording
from outlive.testing.crashstate.workload import Loaded, Workload, expected_state

__all__ = ["Expectation", "Report", "check", "expectation", "judge"]

Expectation = Tuple[int | None, FrozenSet[int]]  # (newest durable step, steps begun since)


@dataclass
class Report:
    """States checked, bad ones, why, and a few examples to debug with."""

    workload: str
    ops: int = 0
    states: int = 0
    bad: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: List[str] = field(default_factory=list)


def expectation(ops: Sequence[Op], prefix: int) -> Expectation:
    durable: int | None = None
    begun: Set[int] = set()
    for op in ops[:prefix]:
        if isinstance(op, Marker):
            word, _, step = op.text.partition(" ")
            if word == "BEGIN":
                begun.add(int(step))
            elif word == "DURABLE":
                durable = max(durable or 0, int(step))
    return durable, frozenset(s for s in begun if durable is None or s > durable)


def judge(loaded: Loaded | BaseException, expected: Expectation) -> str | None:
    """None when ``loaded`` is a legitimate resume point, else why not."""
    if isinstance(loaded, BaseException):
        return f"load raised {type(loaded).__name__}"
    step, state = loaded
    durable, newer = expected
    if step is None:
        return None if durable is None else "committed step lost: nothing loaded"
    if durable is not None and step < durable:
        return "committed step lost: an older step loaded"
    if step != durable and step not in newer:
        return "a step that was never saved"
    if state != expected_state(step):
        return "wrong content"
    return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Loaders log (DCP also warns) for each torn file they skip: thousands drown the report."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nor a warning turned error count as a bad load
            yield
    finally:
        logging.disable(previous)


def _scratch_parent() -> str | None:
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and shm.stat().st_mode & 0o002 else None


def check(
    recording: Recording,
    workload: Workload,
    *,
    seed: int = 0,
    random_per_prefix: int = 4,
    max_examples: int = 5,
) -> Report:
    """Build every crash state of ``recording``, load each distinct one, count the bad ones."""
    report = Report(workload.name, ops=len(recording.ops))
    loads: Dict[str, Loaded | BaseException] = {}
    seen: Set[Tuple[str, Expectation]] = set()
    scratch = Path(tempfile.mkdtemp(prefix="outlive-crashstate-", dir=_scratch_parent()))
    try:
        with _quiet():
            for state in crash_states(
                recording.initial, recording.ops, seed=seed, random_per_prefix=random_per_prefix
            ):
                expected = expectation(recording.ops, state.prefix)
                digest = state.image.digest()
                if (digest, expected) in seen:
                    continue
                seen.add((digest, expected))
                if digest not in loads:
                    loads[digest] = _load(workload, state.image, scratch)
                report.states += 1
                reason = judge(loads[digest], expected)
                if reason is not None:
                    report.bad += 1
                    report.reasons[reason] += 1
                    if len(report.examples) < max_examples:
                        report.examples.append(
                            f"after op {state.prefix} ({state.label}): {reason}; "
                            f"files {sorted(p for p, _ in state.image.files())}"
                        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return report


def _load(workload: Workload, image: Image, scratch: Path) -> Loaded | BaseException:
    target = scratch / "root"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    image.materialize(target)
    try:
        return workload.load(target)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # whatever a torn file makes the loader raise is the finding
        return exc  # (DCP's CheckpointException is a BaseException)
