"""``outlive notebook colab``: a valid nbformat v4 notebook, clocks first, no keep-alive trick,
Drive flushed only where google.colab exists (hostile names: test_notebook_cli.py)."""

from __future__ import annotations

import nbformat

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
