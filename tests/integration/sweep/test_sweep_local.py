"""`outlive sweep` on the local target, end to end through the console script: every item runs
exactly once and ends bit-identical to its uninterrupted run, a rerun continues (finished items
never rerun, a grown file adds items), a client SIGKILLed mid-sweep is finished by the next call,
own-code failures are retried then reported with explain's diagnosis, and bad input launches
nothing."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_helpers import Project, wait_for
from sweep_helpers import assert_result, runs_of, start_sweep, sweep_status, train_sweep

from outlive.store import Store
from outlive.sweep import registry


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    d = tmp_path / "proj"
    d.mkdir()
    (d / "outlive.toml").write_text("")
    p = Project(d)
    yield p
    p.kill_leftovers()


def _check_results(project: Project, tmp_path: Path, sweep: str, steps: list[int]) -> None:
    runs = runs_of(project.dir, sweep)
    assert sorted(runs) == sorted(f"{sweep}.steps={n}" for n in steps)
    on_box = {d.name for d in project.run_dirs()}
    assert {r.run_id for rs in runs.values() for r in rs} == on_box  # each one reached the box
    for n in steps:
        (only,) = runs[f"{sweep}.steps={n}"]  # exactly one run per item
        assert only.state == "succeeded"
        assert_result(tmp_path, only.ckpt_dir, n)


def test_sweep_runs_each_item_once_bit_identical_and_a_rerun_continues(
    project: Project, tmp_path: Path
) -> None:
    sweep = train_sweep(project.dir, "lr", [20, 30, 40], sleep_s=0.01)
    done = project.cli("sweep", str(sweep), "--per-target", "2", "--poll-s", "0.2", "--json")
    doc = json.loads(done.stdout)
    assert doc["summary"] == {"queued": 0, "running": 0, "done": 3, "failed": 0, "cancelled": 0}
    assert [i["state"] for i in doc["items"]] == ["done"] * 3
    assert doc["best"]["by"] == "loss"
    assert [b["key"] for b in doc["best"]["items"]] == ["steps=40", "steps=30", "steps=20"]
    _check_results(project, tmp_path, "lr", [20, 30, 40])

    project.cli("sweep", str(sweep), "--per-target", "2", "--poll-s", "0.2")
    _check_results(project, tmp_path, "lr", [20, 30, 40])  # nothing ran again

    train_sweep(project.dir, "lr", [20, 30, 40, 25], sleep_s=0.01)  # the file grew
    project.cli("sweep", str(sweep), "--poll-s", "0.2")
    _check_results(project, tmp_path, "lr", [20, 30, 40, 25])
    status = sweep_status(project.dir, "lr", env=project.env)
    assert [i["key"] for i in status["items"]] == ["steps=20", "steps=30", "steps=40", "steps=25"]
    assert status["summary"]["done"] == 4
    ranked = sweep_status(project.dir, "--by", "loss", "--highest", str(sweep), env=project.env)
    assert ranked["best"]["by"] == "loss"
    assert [b["key"] for b in ranked["best"]["items"]] == ["steps=20", "steps=25", "steps=30"]


def test_a_client_sigkilled_mid_sweep_is_finished_by_the_next_call_with_no_item_run_twice(
    project: Project, tmp_path: Path
) -> None:
    steps = [30, 35, 40, 45]
    sweep = train_sweep(project.dir, "killed", steps, sleep_s=0.03)
    client = start_sweep(
        project.dir, project.env, str(sweep), "--per-target", "2", "--poll-s", "0.2"
    )
    try:
        wait_for(lambda: len(runs_of(project.dir, "killed")) >= 2, "two items launched")
    finally:
        client.send_signal(signal.SIGKILL)
        client.wait(timeout=30)
    assert client.returncode == -signal.SIGKILL
    mid = sweep_status(project.dir, "killed", env=project.env)
    assert mid["summary"]["done"] < len(steps)  # killed mid-sweep, not after it
    project.cli("sweep", str(sweep), "--per-target", "2", "--poll-s", "0.2", timeout_s=120)
    _check_results(project, tmp_path, "killed", steps)


def test_a_client_killed_again_and_again_never_gives_an_item_a_second_run(
    project: Project, tmp_path: Path
) -> None:
    steps = [12, 14, 16, 18, 20, 22]
    sweep = train_sweep(project.dir, "again", steps, sleep_s=0.02)
    args = (str(sweep), "--per-target", "3", "--poll-s", "0.1")
    for launched in range(len(steps)):  # killed once 0, 1, ... runs are in the registry
        client = start_sweep(project.dir, project.env, *args)
        try:
            wait_for(lambda n=launched: len(runs_of(project.dir, "again")) >= n, f"{launched} runs")
        finally:
            client.send_signal(signal.SIGKILL)
            client.wait(timeout=30)
    project.cli("sweep", *args, timeout_s=120)
    _check_results(project, tmp_path, "again", steps)  # one run per item, each bit-identical


def test_sweep_status_without_a_sweep_or_with_an_unknown_one_is_one_sentence(
    project: Project,
) -> None:
    for args, says in ((("sweep", "status"), "no sweep"), (("sweep", "status", "x"), "no sweep")):
        done = project.cli(*args, rc=2)
        assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_own_code_failures_are_retried_then_reported_with_explains_diagnosis(
    project: Project,
) -> None:
    job = "import sys; print('RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB'); "
    job += "sys.exit(int(sys.argv[1]))"
    (project.dir / "s.toml").write_text(
        f"command = {json.dumps([sys.executable, '-c', job, '{code}'])}\n[[list]]\ncode = 3\n"
        "[[list]]\ncode = 0\n"
    )
    done = project.cli("sweep", "s.toml", "--retries", "1", "--poll-s", "0.2", "--json", rc=1)
    doc = json.loads(done.stdout)
    by_key = {i["key"]: i for i in doc["items"]}
    assert by_key["code=0"]["state"] == "done"
    failed = by_key["code=3"]
    assert failed["state"] == "failed"
    assert failed["failures"] == 2  # the first run and one retry
    assert failed["note"].startswith("failed 2 times (exit 3); explain: U10 CUDA out of memory")
    assert [r.state for r in runs_of(project.dir, "s")["s.code=3"]] == ["failed", "failed"]
    human = project.cli("sweep", "status", "s").stdout
    assert "1 done / 0 running / 0 queued / 1 failed" in human
    # no --per-target: one slot per GPU the audit found, and none here gives one slot
    assert registry.slots(Store(project.dir / ".outlive"), "s") == {"local": 1}


@pytest.mark.parametrize(
    ("toml", "extra", "says"),
    [
        ('command = "python x.py {lr"\n[grid]\nlr = [1]\n', (), "malformed placeholder"),
        ("command = [\n", (), "not valid TOML"),
        ('command = "python x.py {lr} {seed}"\n[grid]\nlr = [1]\n', (), "{seed}"),
        ('command = "python x.py {lr}"\n[grid]\nlr = [1]\n', ("-t", "nowhere"), "nowhere"),
        ('command = "python x.py"\n[grid]\nlr = [1]\n[[list]]\nlr = 2\n', (), "exactly one of"),
        ('command = "python $(x) {lr}"\n[grid]\nlr = ["a b"]\n', ("--per-target", "0"), "at least"),
    ],
)
def test_bad_sweep_input_is_one_sentence_exit_2_and_nothing_is_launched(
    project: Project, toml: str, extra: tuple[str, ...], says: str
) -> None:
    (project.dir / "bad.toml").write_text(toml)
    done = project.cli("sweep", "bad.toml", *extra, rc=2)
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert project.run_dirs() == []
    assert runs_of(project.dir, "bad") == {}
