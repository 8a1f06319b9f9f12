"""The board's poller: no look while no page listens, one look stream shared by every page,
and the looks stop when the last page leaves."""

from __future__ import annotations

import threading

from outlive.errors import OutliveError
from outlive.ui.looks import Hub, Row


class CountingLook:
    """A look (the LookFn contract): every call answers one row and is counted."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> tuple[list[Row], str]:
        with self.lock:
            self.calls += 1
            return [{"run_id": "r1", "state": "running", "look": self.calls}], "direct"


def test_no_page_no_look_and_the_last_page_leaving_stops_the_looks() -> None:
    look = CountingLook()
    hub = Hub(look, lambda: [{"run_id": "r1", "state": "pending"}], interval_s=0.01, linger_s=0)
    first = hub.first_paint()
    assert first["source"] == "registry" and first["runs"][0]["state"] == "pending"
    assert look.calls == 0 and hub.looks == 0  # the registry answered; no box was asked
    with hub.listening(), hub.listening():  # two pages
        snap = hub.wait_newer(0, timeout_s=60)
        assert snap["seq"] >= 1 and snap["source"] == "direct"
        assert hub.first_paint() is hub.snapshot  # later pages start from the live look
    assert hub.wait_stopped(timeout_s=60)
    calls = look.calls
    assert hub.first_paint()["seq"] == hub.snapshot["seq"]
    assert look.calls == calls  # stopped: nothing more is asked
    hub.close()


def test_a_failing_look_keeps_the_last_rows_and_says_why() -> None:
    def failing() -> tuple[list[Row], str]:
        raise OutliveError("the registry is locked; retry")

    hub = Hub(failing, list, interval_s=0.01, linger_s=0)
    with hub.listening():
        snap = hub.wait_newer(0, timeout_s=60)
    assert snap["source"] == "error" and snap["error"] == "the registry is locked; retry"
    assert snap["runs"] == []
    assert hub.wait_stopped(timeout_s=60)
    hub.close()
