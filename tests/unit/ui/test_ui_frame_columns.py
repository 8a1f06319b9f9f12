"""A finished run's usual frames become the columns later opens view in place, equal to what
the frames decode to; frames that are not the usual ones (several key sets, ranks out of order,
a line without a row, a torn frame) stay frames, which the page decodes itself."""

from __future__ import annotations

from array import array
from pathlib import Path

from outlive import wire
from outlive.ckpt import ProgressWriter
from outlive.ckpt.frames import covered, decode, read_keys
from outlive.ui.frame_columns import as_columns


def _run(tmp_path: Path, records: list[dict[str, object]]) -> tuple[bytes, int]:
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "progress.jsonl"
    writer = ProgressWriter(path)
    for i, metrics in enumerate(records):
        writer.write(i, metrics)
    writer.close()
    return (tmp_path / wire.PROGRESS_BIN).read_bytes(), path.stat().st_size


def test_usual_frames_become_the_columns_they_decode_to(tmp_path: Path) -> None:
    data, size = _run(
        tmp_path, [{"loss": 1 / (i + 1), "note": "x", "lr": 3e-4} for i in range(500)]
    )
    got = as_columns(data, size)
    assert got is not None and got.keys == ["step", "loss", "note", "lr"]
    assert got.n == 500 and got.end == size
    want = decode(data)
    assert covered(want.rows)[0] == size
    for j, column in enumerate(got.columns):
        values = array("d", column).tolist()
        expected = [row[3][j] for row in want.rows]
        assert [repr(v) for v in values] == [repr(v) for v in expected]  # NaN for the text


def test_other_frames_stay_frames(tmp_path: Path) -> None:
    two_sets, size = _run(tmp_path / "a", [{"loss": 1.0}, {"loss": 2.0, "lr": 0.1}])
    assert as_columns(two_sets, size) is None
    data, size = _run(tmp_path / "b", [{"loss": float(i)} for i in range(10)])
    assert as_columns(data, size) is not None
    assert as_columns(data[:-5], size) is None  # a torn last row: its line has none
    assert as_columns(data, size + 20) is None  # a line without a row at the end
    keys = read_keys(data, 0)
    assert keys is not None
    at, row = keys[2], 24 + 2 * 8  # the rows after the KEYS frame; each: step and loss
    rows = data[at:]
    swapped = data[:at] + rows[row : 2 * row] + rows[:row] + rows[2 * row :]
    assert as_columns(swapped, size) is None  # two ranks' rows out of the lines' order
    torn = data[:at] + rows[: row + 24] + rows[row:]  # a torn row inside, frames after it
    assert as_columns(torn, size) is None
