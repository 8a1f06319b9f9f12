"""The human status table: run ids whole at any width; a stale look shows no fresh heartbeat."""

from __future__ import annotations

import io

from outlive.cli.render import status_table
from outlive.run_status import RunStatus
from outlive.wire import State


class _Terminal(io.StringIO):
    def __init__(self, columns: int) -> None:
        super().__init__()
        self.columns = columns

    def isatty(self) -> bool:
        return True


def test_run_ids_are_never_cut_and_a_stale_heartbeat_says_stale() -> None:
    run_id = "20261203-101010-abcdef"
    runs = [
        RunStatus(run_id, "a-rather-long-run-name-" * 3, "box", State.RUNNING, heartbeat_age_s=0.0,
                  stale=True, unreachable="box: no answer within 15 s"),
        RunStatus("20261203-101011-fedcba", "b", "box", State.RUNNING, heartbeat_age_s=3.0),
    ]  # fmt: skip
    narrow = _Terminal(60)
    status_table(runs, out=narrow)
    assert run_id in narrow.getvalue() and "20261203-101011-fedcba" in narrow.getvalue()
    wide = _Terminal(160)
    status_table(runs, out=wide)
    text = wide.getvalue()
    assert "stale" in text.split(run_id, 1)[1].split("\n", 1)[0]  # its row, not the note
    assert "3s" in text and "no answer within 15 s" in text


def test_names_progress_and_notes_from_a_box_are_shown_as_text_never_markup_or_escapes() -> None:
    """A run name, a target, a progress key and a box's warning go into the table as text:
    ``[/x]`` no longer raises, ``[link=...]`` makes no link, an OSC 52 (clipboard) or a CSI
    sequence is shown escaped instead of reaching the terminal."""
    runs = [
        RunStatus("20261203-101010-abcdef", "[bold]x[/bold] [/INST]\x1b]52;c;QUFB\x07",
                  "box", State.RUNNING, heartbeat_age_s=1.0,
                  progress={"step": 3, "[link=http://evil]k[/link]": 1.5},
                  warning="disk \x9b2J [/red] full"),
    ]  # fmt: skip
    out = _Terminal(200)
    status_table(runs, out=out)
    text = out.getvalue()
    assert "[bold]x[/bold] [/INST]\\x1b]52;c;QUFB\\x07" in text
    assert "[link=http://evil]k[/link]=1.5" in text and "disk \\x9b2J [/red] full" in text
    assert "\x1b]" not in text and "\x07" not in text and "\x9b" not in text
