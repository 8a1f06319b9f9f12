"""Issue 12 item 8: every write on the box is whole or an error. A short write is retried; a disk
that takes no more is one sentence (AgentError), the temp file is removed and the real name
keeps what it had: a secret that does not fit is never stored as a prefix, a record on a full
disk never half-written. The full disk is a real 64 KiB tmpfs (root only; skipped otherwise)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlive.agent.box import manifests, records, verbs
from outlive.agent.box.common import AgentError


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted after the test."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _one_sentence(text: str) -> None:
    assert text and "\n" not in text and "Traceback" not in text, text


def test_a_short_write_is_retried_until_every_byte_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write
    calls: list[int] = []

    def dribble(fd: int, data: bytes) -> int:  # a write that takes at most 7 bytes at a time
        calls.append(len(data))
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(os, "write", dribble)
    path = tmp_path / "rec.json"
    records.write_json_atomic(str(path), {"k": "v" * 100})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"k": "v" * 100}
    assert len(calls) > 10, "the short writes were not retried"


def test_a_write_that_makes_no_progress_is_an_error_not_a_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "rec.json").write_text('{"old": true}\n')
    monkeypatch.setattr(os, "write", lambda fd, data: 0)
    with pytest.raises(AgentError) as caught:
        records.write_json_atomic(str(tmp_path / "rec.json"), {"new": True})
    monkeypatch.undo()
    _one_sentence(str(caught.value))
    assert json.loads((tmp_path / "rec.json").read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.json"], "a temp file was left"


def test_a_secret_larger_than_the_free_space_is_an_error_and_leaves_nothing(
    tiny_disk: Path,
) -> None:
    secrets_dir = tiny_disk / "secrets"
    small = verbs.answer(
        "secret_put", {"name": "SMALL", "value": "s3cret", "dir": str(secrets_dir)}
    )
    assert small["ok"], small
    reply = verbs.answer(
        "secret_put", {"name": "HUGE", "value": "x" * 200_000, "dir": str(secrets_dir)}
    )
    print("reply:", reply)
    assert reply["ok"] is False
    _one_sentence(reply["error"])
    assert "HUGE" in reply["error"] and "x" * 20 not in reply["error"], "the value leaked"
    # No file under the name, no prefix, no temp file; the other secret is intact.
    assert sorted(p.name for p in secrets_dir.iterdir()) == ["SMALL"]
    assert (secrets_dir / "SMALL").read_text() == "s3cret"


def test_replacing_a_secret_on_a_full_disk_keeps_the_old_value(tiny_disk: Path) -> None:
    secrets_dir = tiny_disk / "secrets"
    assert verbs.answer("secret_put", {"name": "TOK", "value": "old", "dir": str(secrets_dir)})[
        "ok"
    ]
    reply = verbs.answer(
        "secret_put", {"name": "TOK", "value": "n" * 200_000, "dir": str(secrets_dir)}
    )
    assert reply["ok"] is False
    assert (secrets_dir / "TOK").read_text() == "old"
    assert sorted(p.name for p in secrets_dir.iterdir()) == ["TOK"]


def test_a_record_write_on_a_full_disk_fails_loudly(tiny_disk: Path) -> None:
    run_dir = tiny_disk / "run"
    run_dir.mkdir()
    records.write_json_atomic(str(run_dir / "exit.json"), {"exit_code": 0})
    (tiny_disk / "filler").write_bytes(b"\0" * 40_000)  # most of the disk
    with pytest.raises(AgentError) as caught:
        records.write_json_atomic(str(run_dir / "exit.json"), {"blob": "y" * 60_000})
    print("error:", caught.value)
    _one_sentence(str(caught.value))
    assert "exit.json" in str(caught.value)
    assert json.loads((run_dir / "exit.json").read_text()) == {"exit_code": 0}
    assert sorted(p.name for p in run_dir.iterdir()) == ["exit.json"]


def test_a_directory_where_a_record_goes_is_one_sentence_and_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "exit.json").mkdir()
    with pytest.raises(AgentError) as caught:
        records.write_json_atomic(str(tmp_path / "exit.json"), {"exit_code": 0})
    _one_sentence(str(caught.value))
    assert "exit.json: a directory is in the way" in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["exit.json"]  # the tmp file is removed


def test_a_manifest_that_does_not_fit_is_an_error_and_no_file(tiny_disk: Path) -> None:
    with pytest.raises(AgentError) as caught:
        manifests._store_manifest(str(tiny_disk), "ab" * 32, b"{" + b" " * 200_000 + b"}")
    _one_sentence(str(caught.value))
    left = [p for p in tiny_disk.rglob("*") if p.is_file()]
    assert left == [], f"left behind: {left}"
