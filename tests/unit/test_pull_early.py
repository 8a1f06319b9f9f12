"""The pull's early rsync (``pull_early``): started before the roster with ``--files-from=-``,
handed to the unit whose rsync command it is, and otherwise ended having written nothing.
Real rsync over the local transport."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from outlive.config import Connection, JobPolicy, Placement, Target
from outlive.lifecycle.pull_early import EarlyRsync
from outlive.lifecycle.transfer import STDIN_LIST, PullOptions, Unit, rsync_argv, transfer_unit
from outlive.transport.local import LocalTransport


def _target() -> Target:
    return Target(
        name="local",
        profile="generic-ssh",
        kind="local",
        backend="process",
        connection=Connection(transport="local"),
        placement=Placement(workdir="/tmp", durable="/tmp/durable"),
        policy=JobPolicy(),
    )


def _box(tmp_path: Path) -> Path:
    box = tmp_path / "box"
    (box / "sub").mkdir(parents=True)
    (box / "a.bin").write_bytes(os.urandom(50_000))
    (box / "sub" / "b.bin").write_bytes(os.urandom(70_000))
    return box


def _unit(box: Path, dest: Path, aside: Path, compress: bool = False) -> Unit:
    files = ["a.bin", "sub/b.bin"]
    return Unit(
        label="ckpt",
        source=str(box),
        local=dest / "ckpt",
        files=files,
        paths=[f"ckpt/{f}" for f in files],
        sizes=[(box / f).stat().st_size for f in files],
        compress=compress,
        backup_dir=aside / "ckpt",
    )


def _waiting(early: EarlyRsync) -> None:
    """Give the rsync time to reach its wait for the list (no assertion on time)."""
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline and early.proc is not None and early.proc.poll() is None:
        time.sleep(0.05)


def test_an_early_rsync_ended_before_its_list_writes_nothing(tmp_path: Path) -> None:
    box = _box(tmp_path)
    for dest in (tmp_path / "missing-dest", tmp_path / "dest"):
        if dest.name == "dest":
            dest.mkdir()
        aside = tmp_path / "aside"
        early = EarlyRsync.guess(str(box), dest, aside, LocalTransport(), PullOptions())
        early.launch()
        proc = early.proc
        assert proc is not None
        _waiting(early)
        early.discard()
        assert proc.poll() is not None
        assert not (dest / "ckpt").exists() and not aside.exists()
        early.launch()  # a launch after the discard (the channel opened late) starts nothing
        assert early.proc is None


def test_the_unit_it_fits_gets_the_early_rsync_and_its_files(tmp_path: Path) -> None:
    box, dest, aside = _box(tmp_path), tmp_path / "dest", tmp_path / "aside"
    opts = PullOptions()
    early = EarlyRsync.guess(str(box), dest, aside, LocalTransport(), opts)
    early.launch()
    _waiting(early)
    unit = _unit(box, dest, aside)
    landed: list[str] = []
    transfer_unit(
        unit, dest, _target(), LocalTransport(), opts, lambda n: None, print, landed.append,
        early.claim,
    )  # fmt: skip
    assert unit.ok and unit.started_early and len(unit.attempts) == 1
    assert unit.as_json()["started_early"] is True
    for rel in unit.files:
        assert (dest / "ckpt" / rel).read_bytes() == (box / rel).read_bytes()
    assert landed == ["a.bin"]  # the last file is the caller's (rsync's exit says it is there)
    assert early.claim(rsync_argv(unit, LocalTransport(), opts, STDIN_LIST)) is None  # once
    early.discard()


def test_another_command_does_not_get_it_and_it_is_ended_unused(tmp_path: Path) -> None:
    box, dest, aside = _box(tmp_path), tmp_path / "dest", tmp_path / "aside"
    opts = PullOptions()
    early = EarlyRsync.guess(str(box), dest, aside, LocalTransport(), opts)
    early.launch()
    proc = early.proc
    assert proc is not None
    squeezed = _unit(box, dest, aside, compress=True)  # -z: not the guess
    capped = dataclasses.replace(opts, bwlimit_kbps=1000)  # another cap: not the guess
    plain = _unit(box, dest, aside)
    assert early.claim(rsync_argv(squeezed, LocalTransport(), opts, STDIN_LIST)) is None
    assert early.claim(rsync_argv(plain, LocalTransport(), capped, STDIN_LIST)) is None
    transfer_unit(
        squeezed, dest, _target(), LocalTransport(), opts, lambda n: None, print, None,
        early.claim,
    )  # fmt: skip
    assert squeezed.ok and not squeezed.started_early
    early.discard()
    assert proc.poll() is not None


def test_a_guess_too_old_is_not_used(tmp_path: Path) -> None:
    box, dest, aside = _box(tmp_path), tmp_path / "dest", tmp_path / "aside"
    opts = PullOptions()
    early = EarlyRsync.guess(str(box), dest, aside, LocalTransport(), opts)
    early.max_age_s = 0.0  # its box rsync would be near its own --timeout
    early.launch()
    time.sleep(0.01)
    unit = _unit(box, dest, aside)
    assert early.claim(rsync_argv(unit, LocalTransport(), opts, STDIN_LIST)) is None
    early.discard()
    assert not (dest / "ckpt").exists()
