"""The pull's hashing gate (``lifecycle/spare_cpu``): beside the transfer while a core is spare,
after it where the transfer keeps the cores busy. The machine's idle time is played by a clock
of idle ticks that runs at a chosen rate, the real threads and waits are the gate's own."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from outlive.lifecycle.pull import pull
from outlive.lifecycle.spare_cpu import SpareCpu, idle_ticks
from outlive.session import Session

HZ = os.sysconf("SC_CLK_TCK")
LOOK_S = 0.01


def machine(idle_cores: float) -> tuple[object, object]:
    """Idle ticks and this process's CPU-s as on a machine with ``idle_cores`` idle."""
    t0 = time.monotonic()

    def ticks() -> int:
        return int((time.monotonic() - t0) * idle_cores * HZ)

    return ticks, lambda: 0.0


def gate(idle_cores: float, cpus: int = 2) -> SpareCpu:
    ticks, own = machine(idle_cores)
    return SpareCpu(look_s=LOOK_S, ticks=ticks, own_cpu_s=own, cpus=cpus)  # type: ignore[arg-type]


def test_a_worker_hashes_at_once_where_a_core_is_idle() -> None:
    g = gate(idle_cores=1.8)
    with g.turn():  # no over(): only the idle core lets it through
        pass


def test_a_worker_waits_while_the_transfer_keeps_the_cores_busy_and_goes_once_it_ends() -> None:
    g = gate(idle_cores=0.3)
    hashed = threading.Event()
    over_called = threading.Event()
    order: list[str] = []

    def worker() -> None:
        with g.turn():
            order.append("hashed" if not over_called.is_set() else "hashed after the transfer")
        hashed.set()

    t = threading.Thread(target=worker)
    t.start()
    # Many looks go by (each one LOOK_S), and not one of them lets the worker through.
    assert not hashed.wait(40 * LOOK_S)
    over_called.set()
    g.over()
    assert hashed.wait(10)
    t.join()
    assert order == ["hashed after the transfer"]
    assert g.held_s > 0


def test_one_core_spare_lets_one_worker_through_not_two() -> None:
    g = gate(idle_cores=1.2, cpus=4)
    first_in = threading.Event()
    release = threading.Event()
    second_in = threading.Event()

    def first() -> None:
        with g.turn():
            first_in.set()
            release.wait(10)

    def second() -> None:
        with g.turn():
            second_in.set()

    a = threading.Thread(target=first)
    a.start()
    assert first_in.wait(10)
    b = threading.Thread(target=second)
    b.start()
    assert not second_in.wait(40 * LOOK_S)  # 1.2 spare: not enough for a second worker
    release.set()
    assert second_in.wait(10)  # the first is done: its core is the second one's
    a.join()
    b.join()


def test_a_single_core_machine_still_hashes_beside_a_link_bound_transfer() -> None:
    g = gate(idle_cores=0.8, cpus=1)
    with g.turn():
        pass


def test_where_idle_time_cannot_be_read_it_hashes_at_once() -> None:
    looks: list[None] = []

    def unknown() -> None:
        looks.append(None)

    g = SpareCpu(look_s=LOOK_S, ticks=unknown)
    with g.turn():
        pass
    assert len(looks) == 1  # asked once, when the gate was made: no look was waited for


def test_idle_ticks_reads_this_machines_counter() -> None:
    if not Path("/proc/stat").exists():
        pytest.skip("no /proc/stat on this system: the gate hashes at once here")
    first = idle_ticks()
    time.sleep(0.05)
    second = idle_ticks()
    assert first is not None and second is not None and second >= first


def test_a_pull_whose_cores_stay_busy_hashes_after_the_transfer_and_verifies(
    local_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    proj, run_id = local_run
    gates: list[SpareCpu] = []
    ticks, own = machine(idle_cores=0.0)  # never a spare core while files move

    class Busy(SpareCpu):
        def __init__(self) -> None:
            super().__init__(look_s=LOOK_S, ticks=ticks, own_cpu_s=own)  # type: ignore[arg-type]
            gates.append(self)

    monkeypatch.setattr("outlive.lifecycle.landed.SpareCpu", Busy)
    result = pull(Session.open(proj), run_id)
    assert result["ok"], result["verify"]["problems"]
    assert gates and all(g._over.is_set() for g in gates)
    assert sum(g.held_s for g in gates) > 0  # the files did wait for the transfer's end
