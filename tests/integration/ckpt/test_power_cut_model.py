"""The power-cut model on hand-built operation lists: what a crash may and may not leave."""

from __future__ import annotations

from typing import List, Set, Tuple

from outlive.testing.crashstate import CrashState, Image, crash_states
from outlive.testing.crashstate.ops import Create, Fsync, Op, Rename, Sync, Write

DATA = bytes(range(256)) * 8  # 2 KiB: four sectors


View = Tuple[Tuple[str, bytes], ...]


def _views(states: List[CrashState], prefix: int | None = None) -> Set[View]:
    """Each distinct disk a crash leaves: (path, content) pairs."""
    views = set()
    for state in states:
        if prefix is None or state.prefix == prefix:
            image = state.image
            views.add(
                tuple(
                    (path, bytes(image.data[ino]) if ino is not None else b"")
                    for path, ino in image.files()
                )
            )
    return views


def _write_then_rename(fsync_file: bool, fsync_dir: bool) -> List[Op]:
    ops: List[Op] = [Create(0, "a.tmp", 1), Write(1, 0, DATA)]
    if fsync_file:
        ops.append(Fsync(1))
    ops.append(Rename((0, "a.tmp"), (0, "a"), 1))
    if fsync_dir:
        ops.append(Fsync(0))
    return ops


def test_a_rename_without_fsync_can_publish_an_empty_or_torn_file_under_the_new_name() -> None:
    ops = _write_then_rename(fsync_file=False, fsync_dir=True)
    after_all = _views(list(crash_states(Image(), ops)), prefix=len(ops))
    published = {dict(view).get("a") for view in after_all}
    assert b"" in published  # the data never reached the disk: a zero-length file
    assert bytes(len(DATA)) in published  # the size did, the data did not: zeros
    assert any(p and p != DATA and p != bytes(len(DATA)) for p in published if p)  # torn
    assert DATA in published  # and the lucky case


def test_a_file_and_directory_both_fsynced_lose_nothing() -> None:
    ops = _write_then_rename(fsync_file=True, fsync_dir=True)
    assert _views(list(crash_states(Image(), ops)), prefix=len(ops)) == {(("a", DATA),)}


def test_a_file_fsync_does_not_make_its_name_durable() -> None:
    ops: List[Op] = [Create(0, "a", 1), Write(1, 0, DATA), Fsync(1)]
    views = _views(list(crash_states(Image(), ops)), prefix=len(ops))
    assert views == {(), (("a", DATA),)}  # the name may be lost; its data, once named, is whole


def test_an_unsynced_rename_is_atomic_old_name_or_new_never_both_or_neither() -> None:
    initial = Image(entries={(0, "a.tmp"): 1}, data={1: bytearray(DATA)})
    views = _views(list(crash_states(initial, [Rename((0, "a.tmp"), (0, "a"), 1)])))
    assert views == {(("a.tmp", DATA),), (("a", DATA),)}


def test_pending_directory_operations_persist_in_order_or_all_but_one() -> None:
    ops: List[Op] = [Create(0, "x", 1), Create(0, "y", 2), Create(0, "z", 3)]
    names = {tuple(p for p, _ in view) for view in _views(list(crash_states(Image(), ops)), 3)}
    in_order = {(), ("x",), ("x", "y"), ("x", "y", "z")}
    all_but_one = {("y", "z"), ("x", "z")}
    assert names == in_order | all_but_one


def test_sync_makes_everything_before_it_durable() -> None:
    ops = [*_write_then_rename(fsync_file=False, fsync_dir=False), Sync()]
    assert _views(list(crash_states(Image(), ops)), prefix=len(ops)) == {(("a", DATA),)}


def test_a_crash_before_any_operation_leaves_the_initial_disk() -> None:
    initial = Image(entries={(0, "keep"): 1}, data={1: bytearray(b"old")})
    ops = _write_then_rename(fsync_file=True, fsync_dir=True)
    assert _views(list(crash_states(initial, ops)), prefix=0) == {(("keep", b"old"),)}


def _hex(text: str) -> str:
    return "".join(f"\\x{b:02x}" for b in text.encode())


def test_strace_lines_split_by_another_thread_are_joined_and_decoded() -> None:
    from outlive.testing.crashstate.strace import Fd, parse_log

    fd = f"3<{_hex('/r/a b')}>"
    lines = [
        f'11 write({fd}, "{_hex("he")}", 2 <unfinished ...>\n',
        f'12 writev({fd}, [{{iov_base="{_hex("x,y")}", iov_len=3}}, '
        f'{{iov_base="{_hex("z")}", iov_len=1}}], 2) = 4\n',
        "11 <... write resumed>) = 2\n",
        f'11 openat(AT_FDCWD<{_hex("/r")}>, "{_hex("/r/no")}", O_RDONLY) = -1 ENOENT (No such)\n',
        "11 +++ exited with 0 +++\n",
    ]
    calls = list(parse_log(lines))
    assert [(c.tid, c.name, c.ret) for c in calls] == [(12, "writev", 4), (11, "write", 2)]
    assert calls[0].args[:2] == (Fd(3, "/r/a b"), b"x,yz")
    assert calls[1].args[:2] == (Fd(3, "/r/a b"), b"he")
