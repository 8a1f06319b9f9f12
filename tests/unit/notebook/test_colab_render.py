"""``outlive notebook colab``: a valid nbformat v4 notebook, clocks first, no keep-alive trick,
Drive flushed only where google.colab exists; hostile names are one sentence and write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from outlive.notebook.cells import dumps
from outlive.notebook.colab import build


def _doc() -> nbformat.NotebookNode:
    doc = build(project="proj", name="toy", command=["python", "t.py"], code=b"PK", agent=b"PK")
    return nbformat.reads(dumps(doc), as_version=4)


def test_notebook_is_valid_v4_with_clocks_first_and_no_keep_alive() -> None:
    nb = _doc()
    nbformat.validate(nb)
    assert nb.nbformat == 4
    first = nb.cells[0]
    assert first.cell_type == "code" and "maximum VM lifetime" in first.source
    text = "\n".join(c.source for c in nb.cells)
    assert "flush_and_unmount" in text
    assert "if final and drive is not None:" in text  # only where google.colab exists (NB1)
    assert "OUTLIVE_DRIVE_DIR" in text
    for trick in ("setInterval", "IPython.display.Javascript", "keep_alive", "while True"):
        assert trick not in text


@pytest.mark.parametrize(
    "name", ["a/b", "..", "../x", "a'b", 'a"b', "$(touch x)", "a\nb", " a", ".hidden", ""]
)
def test_hostile_notebook_names_are_one_sentence_and_write_nothing(
    tmp_path: Path, name: str
) -> None:
    (tmp_path / "outlive.toml").write_text('[project]\nname = "proj"\n')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["OUTLIVE_NO_DAEMON"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", "from outlive.cli import main; main()", "notebook", "colab",
         "--name", name, "--", "python", "t.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
