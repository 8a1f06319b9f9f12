"""A big log scanned in parts on several cores gives exactly what one scan gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from gotcha_helpers import BENIGN, all_example_files

import outlive.gotchas.match as match
from outlive.gotchas import explain_file, explain_stream
from outlive.gotchas.parallel import explain_file_in_parts


def _big_log(tmp_path: Path) -> Path:
    files = [*all_example_files(), *sorted(BENIGN.iterdir())]
    corpus = b"\n".join(p.read_bytes() for p in files)
    path = tmp_path / "big.log"
    # the failures recur in every copy, so counts and last lines span the parts
    path.write_bytes(corpus * 6)
    return path


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_parts_merge_to_the_single_scan(tmp_path: Path, parts: int) -> None:
    path = _big_log(tmp_path)
    with open(path, "rb") as f:
        single = explain_stream(f)
    assert explain_file_in_parts(path, parts=parts) == single
    assert len(single) > 40 and max(m.count for m in single) > 6


def test_a_single_part_is_left_to_the_plain_scan(tmp_path: Path) -> None:
    path = tmp_path / "one-line.log"
    path.write_bytes(b"no line break at all " * 1000)
    assert explain_file_in_parts(path, parts=1) is None
    assert explain_file_in_parts(path, parts=4) is None  # nowhere to cut


def test_explain_file_takes_the_parallel_path_for_a_big_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _big_log(tmp_path)
    serial = explain_file(path)
    calls: list[int] = []
    real = explain_file_in_parts

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, parts=2)  # type: ignore[arg-type]

    monkeypatch.setattr(match, "PARALLEL_MIN_BYTES", 1024)
    monkeypatch.setattr("outlive.gotchas.parallel.explain_file_in_parts", spy)
    assert explain_file(path) == serial and calls == [1]
