"""The Colab session clock (counted from the VM's first call): a stamp left on the same boot by
something that cannot be this session (older than the cap, or from the future) starts a new
count instead of stopping a fresh job at once; a live stamp keeps counting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from outlive.agent.box import notebook
from outlive.agent.box.common import AgentError

CAP_S = 43200.0


@pytest.fixture
def stamp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(notebook.tempfile, "tempdir", None)  # read TMPDIR again
    monkeypatch.setattr(notebook, "boot_id", lambda: "boot-1")
    return tmp_path


def _stamp(d: Path) -> Path:
    return d / f"outlive-session-{os.getuid()}-boot-1"


def test_the_first_call_starts_the_count(stamp_dir: Path) -> None:
    assert notebook.session_left_s(CAP_S, now=1000.0) == CAP_S
    assert float(_stamp(stamp_dir).read_text()) == 1000.0
    assert notebook.session_left_s(CAP_S, now=1600.0) == CAP_S - 600.0


def test_a_stamp_older_than_the_cap_is_not_this_session(stamp_dir: Path) -> None:
    _stamp(stamp_dir).write_text(repr(1000.0))
    now = 1000.0 + CAP_S + 2 * 3600.0  # left 14 h ago on this boot, by a run that ended
    assert notebook.session_left_s(CAP_S, now=now) == CAP_S
    assert notebook.session_left_s(CAP_S, now=now + 60.0) == CAP_S - 60.0


@pytest.mark.parametrize("text", ["", "not a number", "nan", repr(5000.0)])
def test_a_damaged_or_future_stamp_starts_a_new_count(stamp_dir: Path, text: str) -> None:
    _stamp(stamp_dir).write_text(text)
    assert notebook.session_left_s(CAP_S, now=2000.0) == CAP_S
    assert float(_stamp(stamp_dir).read_text()) == 2000.0


def test_a_stamp_inside_the_cap_keeps_counting(stamp_dir: Path) -> None:
    _stamp(stamp_dir).write_text(repr(1000.0))
    assert notebook.session_left_s(CAP_S, now=1000.0 + CAP_S - 1200.0) == 1200.0


def test_a_directory_where_the_stamp_goes_is_one_sentence(stamp_dir: Path) -> None:
    _stamp(stamp_dir).mkdir()
    with pytest.raises(AgentError) as caught:
        notebook.session_left_s(CAP_S, now=1000.0)
    message = str(caught.value)
    assert "\n" not in message and "a directory is in the way" in message
    assert str(_stamp(stamp_dir)) in message
    assert sorted(p.name for p in stamp_dir.iterdir()) == [_stamp(stamp_dir).name]


def test_the_stamp_is_this_users_own_so_another_users_cannot_be_read(
    stamp_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user of the machine may have planted a stamp under this user's name in the shared
    /tmp, dated to stop a fresh job at once: a stamp owned by anyone else starts a new count."""
    planted = 1000.0 + 60.0 - CAP_S  # one minute left, if it were believed
    uid = os.getuid() + 4242
    mine = stamp_dir / f"outlive-session-{uid}-boot-1"
    mine.write_text(repr(planted))  # owned by the test's uid, not by ``uid``
    monkeypatch.setattr(os, "getuid", lambda: uid)
    assert notebook.session_left_s(CAP_S, now=1000.0) == CAP_S
    assert float(mine.read_text()) == 1000.0


def test_a_link_or_a_pipe_where_the_stamp_goes_is_not_followed(stamp_dir: Path) -> None:
    elsewhere = stamp_dir / "elsewhere"
    elsewhere.write_text(repr(1000.0 + 60.0 - CAP_S))
    _stamp(stamp_dir).symlink_to(elsewhere)
    assert notebook.session_left_s(CAP_S, now=1000.0) == CAP_S
    assert not _stamp(stamp_dir).is_symlink() and float(_stamp(stamp_dir).read_text()) == 1000.0
    assert float(elsewhere.read_text()) == 1000.0 + 60.0 - CAP_S  # the link's target untouched
    _stamp(stamp_dir).unlink()
    os.mkfifo(_stamp(stamp_dir))  # opening a pipe to read would wait for a writer forever
    assert notebook.session_left_s(CAP_S, now=2000.0) == CAP_S
    assert float(_stamp(stamp_dir).read_text()) == 2000.0
