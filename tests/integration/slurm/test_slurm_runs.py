"""Runs on a real Slurm cluster through the real CLI: sbatch as the detach primitive.

These prove issue 7's promises: a checkpointing job requeued mid-run three times ends bit-identical
to an uninterrupted run while ``status`` counts the restarts; a job whose ``--time`` is shorter
than the ``--signal`` lead saves on the warning, requeues itself, resumes and finishes; pending
(with the reason), failed, cancelled and ``logs -f`` read the scheduler and the shared-FS records;
hostile names stay data in the batch script.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outlive.testing import DEADLINE_S
from outlive.testing.slurm import SlurmCluster

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"
ENDED = ("succeeded", "failed", "cancelled", "vanished")

ProjectFactory = Callable[..., Path]


@pytest.fixture
def make_project(tmp_path: Path, slurm_cluster: SlurmCluster, tag: str) -> ProjectFactory:
    """A local project whose target `hpc` is the test cluster, with its own workdir and durable
    directory on the shared filesystem (hostile characters included, so every test proves paths
    are data)."""

    def make(**options: Any) -> Path:
        proj = tmp_path / "proj"
        proj.mkdir()
        target = dict(slurm_cluster.target)
        target["workdir"] = str(slurm_cluster.workdir / f"w {tag} 'q' $(x) ü")
        target["durable"] = str(slurm_cluster.durable / tag)
        target.update(options)
        lines = ["[targets.hpc]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
        (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
        shutil.copyfile(EXAMPLE, proj / "train_numpy.py")
        return proj

    return make


def cli(
    cluster: SlurmCluster, proj: Path, *args: str, check: bool = True, timeout_s: float = DEADLINE_S
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [OUTLIVE, *args],
        cwd=proj,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=dict(os.environ, **cluster.env),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"outlive {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def launch(cluster: SlurmCluster, proj: Path, *cmd: str, name: str) -> str:
    out = cli(cluster, proj, "run", "-t", "hpc", "--json", "--name", name, "--", *cmd)
    return str(json.loads(out.stdout)["run_id"])


def run_status(cluster: SlurmCluster, proj: Path, run_id: str) -> dict[str, Any]:
    out = cli(cluster, proj, "status", "--json", run_id, check=False)
    assert out.returncode in (0, 1), out.stderr
    runs: list[dict[str, Any]] = json.loads(out.stdout)["runs"]
    return runs[0]


def wait_for(
    cluster: SlurmCluster,
    proj: Path,
    run_id: str,
    pred: Callable[[dict[str, Any]], bool],
    what: str,
    deadline_s: float = DEADLINE_S,
) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    st: dict[str, Any] = {}
    while time.monotonic() < deadline:
        st = run_status(cluster, proj, run_id)
        if pred(st):
            return st
        time.sleep(0.2)
    log = Path(st.get("run_dir") or "/nonexistent") / "stdout.log"
    tail = log.read_text(errors="replace")[-3000:] if log.is_file() else "(no log)"
    raise AssertionError(f"timed out waiting for {what}; last status {st}\nlog:\n{tail}")


def train_cmd(steps: int, sleep_s: float) -> list[str]:
    return [
        sys.executable,
        "train_numpy.py",
        "--steps",
        str(steps),
        "--save-every",
        "10",
        "--step-sleep-s",
        str(sleep_s),
    ]


def step_of(st: dict[str, Any]) -> int:
    return int((st.get("progress") or {}).get("step", 0))


def reference_weights(tmp_path: Path, steps: int) -> dict[str, np.ndarray]:
    env = dict(os.environ, OUTLIVE_CKPT_DIR=str(tmp_path / "ref"))
    env.pop("OUTLIVE_PROGRESS_FILE", None)
    subprocess.run(
        [*train_cmd(steps, 0.0)[:1], str(EXAMPLE), *train_cmd(steps, 0.0)[2:]],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with np.load(tmp_path / "ref" / "final.npz") as z:
        return {k: z[k] for k in z.files}


def assert_same_weights(ckpt_dir: str, reference: dict[str, np.ndarray]) -> None:
    with np.load(Path(ckpt_dir) / "final.npz") as z:
        got = {k: z[k] for k in z.files}
    assert got.keys() == reference.keys()
    for key in reference:
        assert got[key].tobytes() == reference[key].tobytes(), key


# Runs train_numpy.py unchanged, except that attempt k (SLURM_RESTART_COUNT) stays at step
# HOLD[k] until it is preempted: the test requeues a job that is surely mid-run, however slowly
# the test's own looks go, and the job saves on the TERM as it would anywhere else.
HOLD_AT_STEP = """\
import os, runpy, sys, time
import outlive

HOLD = {0: 40, 1: 110, 2: 180}
made = []


class Checkpointer(outlive.Checkpointer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        made.append(self)


def progress(step, **metrics):
    real_progress(step, **metrics)
    if step == HOLD.get(int(os.environ.get("SLURM_RESTART_COUNT") or 0)):
        while not made[-1].preempted:
            time.sleep(0.05)


real_progress = outlive.progress
outlive.Checkpointer, outlive.progress = Checkpointer, progress
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_three_requeues_mid_run_end_bit_identical_and_status_counts_restarts(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    proj = make_project()
    (proj / "hold_at_step.py").write_text(HOLD_AT_STEP)
    steps = 300
    cmd = [sys.executable, "hold_at_step.py", *train_cmd(steps, 0.03)[1:]]
    started = time.time()
    run_id = launch(slurm_cluster, proj, *cmd, name="requeued thrice")
    seen: list[tuple[str, int, str | None]] = []
    for k, at_step in ((1, 40), (2, 110), (3, 180)):
        st = wait_for(
            slurm_cluster,
            proj,
            run_id,
            lambda s, at=at_step, k=k: (
                s["state"] == "running" and s["restarts"] == k - 1 and step_of(s) >= at
            ),
            f"attempt {k} to pass step {at_step}",
        )
        job_id = st["slurm"]["job_id"]
        slurm_cluster.requeue(job_id, start_now=False)
        st = wait_for(
            slurm_cluster,
            proj,
            run_id,
            lambda s: s["state"] == "requeued" and s["slurm"]["state"] == "PENDING",
            f"requeue {k} to show",
        )
        seen.append((st["state"], st["restarts"], st["slurm"]["reason"]))
        assert slurm_cluster.start_now(job_id)
    assert seen == [("requeued", k, "BeginTime") for k in (1, 2, 3)]
    final = wait_for(slurm_cluster, proj, run_id, lambda s: s["state"] in ENDED, "the end")
    assert final["state"] == "succeeded", (
        final,
        cli(slurm_cluster, proj, "logs", run_id, "-n", "80").stdout,
    )
    assert final["restarts"] == 3 and final["exit_code"] == 0
    assert final["slurm"]["attempts"] == 4
    log = cli(slurm_cluster, proj, "logs", run_id, "-n", "500").stdout
    assert log.count("resumed from step") == 3
    assert log.count("DUE TO JOB REQUEUE") >= 3
    # Each attempt's header, written by the batch shell: job, attempt, host, UTC time.
    headers = re.findall(
        r"^outlive: job (\S+) attempt (\d+) on (\S+) at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$",
        log,
        re.MULTILINE,
    )
    assert [(j, int(a), h) for j, a, h, _ in headers] == [
        (job_id, k, socket.gethostname()) for k in (1, 2, 3, 4)
    ]
    utc = [
        datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc) for *_, t in headers
    ]
    assert started - 1 <= utc[0].timestamp() <= utc[-1].timestamp() <= time.time() + 1
    assert_same_weights(final["ckpt_dir"], reference_weights(tmp_path, steps))


def test_time_limit_warning_saves_requeues_itself_resumes_and_finishes(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    # time = 1 minute is shorter than the --signal lead, so Slurm sends the batch shell TERM at
    # its first time-limit check of each attempt (within 30 s); the job needs ~35 s of work.
    proj = make_project(time="1")
    steps = 350
    run_id = launch(slurm_cluster, proj, *train_cmd(steps, 0.1), name="walltime")
    with slurm_cluster.skip_requeue_delay():
        final = wait_for(
            slurm_cluster,
            proj,
            run_id,
            lambda s: s["state"] in ENDED,
            "the run to finish across time limits",
            deadline_s=180,
        )
    log = cli(slurm_cluster, proj, "logs", run_id, "-n", "500").stdout
    assert final["state"] == "succeeded", log
    assert final["restarts"] >= 1
    # one node: straight to the supervisor (its pid file), no squeue/scancel round trip
    assert "the batch shell got SIGTERM; passing it to the job's supervisor (" in log
    assert "asked to run again; requeued job" in log  # from the step, as soon as it saved
    assert log.count("resumed from step") == final["restarts"]
    assert final["slurm"]["save_s"] is not None  # TERM -> exit measured on the node
    assert not list((Path(final["run_dir"]) / "attempts").glob("*.pid"))  # removed at the end
    script = (Path(final["run_dir"]) / "job.sbatch").read_text()
    assert "#SBATCH --time=1\n" in script and "#SBATCH --signal=B:TERM@" in script
    assert_same_weights(final["ckpt_dir"], reference_weights(tmp_path, steps))


# Runs train_numpy.py unchanged, except that the first attempt's checkpoint save at step 30
# stops with its data written but not yet published (the rename), until the warning has come:
# the warning lands in the middle of a save, however slowly the test looks.
HOLD_IN_SAVE = """\
import os, runpy, sys, time
from pathlib import Path
import outlive

made = []
armed = []
marker = Path(os.environ["OUTLIVE_PROGRESS_FILE"]).with_name("in-save")
real_replace = os.replace


class Checkpointer(outlive.Checkpointer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        made.append(self)


def progress(step, **metrics):
    real_progress(step, **metrics)
    if step == 30 and os.environ.get("SLURM_RESTART_COUNT", "0") == "0":
        armed.append(step)


def replace(src, dst, *args, **kwargs):
    if armed and str(dst).startswith(os.environ["OUTLIVE_CKPT_DIR"]):
        armed.clear()
        marker.write_text(str(dst))
        while not made[-1].preempted:
            time.sleep(0.02)
    return real_replace(src, dst, *args, **kwargs)


real_progress = outlive.progress
outlive.Checkpointer, outlive.progress, os.replace = Checkpointer, progress, replace
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_warning_in_the_middle_of_a_save_leaves_it_loadable_and_the_next_attempt_resumes(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """The warning (TERM to the batch shell, as --signal=B:TERM delivers) arrives while the job
    is saving: the save completes, the job stops at its safe point, the shell requeues it, and
    the next attempt loads that checkpoint and ends bit-identical."""
    proj = make_project()
    (proj / "hold_in_save.py").write_text(HOLD_IN_SAVE)
    steps = 60
    cmd = [sys.executable, "hold_in_save.py", *train_cmd(steps, 0.0)[1:]]
    run_id = launch(slurm_cluster, proj, *cmd, name="warned mid-save")
    st = wait_for(slurm_cluster, proj, run_id, lambda s: s["state"] == "running", "running")
    marker = Path(st["run_dir"]) / "in-save"
    deadline = time.monotonic() + DEADLINE_S
    while not marker.exists():
        assert time.monotonic() < deadline, "the job never reached its save at step 30"
        time.sleep(0.1)
    job_id = st["slurm"]["job_id"]
    slurm_cluster.command("scancel", "--batch", "--signal=TERM", job_id)
    with slurm_cluster.skip_requeue_delay():
        final = wait_for(slurm_cluster, proj, run_id, lambda s: s["state"] in ENDED, "the end")
    log = cli(slurm_cluster, proj, "logs", run_id, "-n", "200").stdout
    assert final["state"] == "succeeded", log
    assert final["restarts"] == 1
    assert "passing it to the job's supervisor (" in log
    # The save in flight completes; the job stops at its next safe point (with the default async
    # saves, the next save waits for the one in flight) and resumes exactly from there.
    stopped = re.findall(r"^preempted at step (\d+)", log, re.MULTILINE)
    resumed = re.findall(r"^resumed from step (\d+)", log, re.MULTILINE)
    assert len(stopped) == 1 and int(stopped[0]) >= 30 and resumed == stopped, log
    assert not [p for p in Path(final["ckpt_dir"]).iterdir() if "tmp" in p.name]
    assert_same_weights(final["ckpt_dir"], reference_weights(tmp_path, steps))


def test_a_plain_scancel_signal_reaches_the_job_on_one_node(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """`scancel --signal=TERM JOB` without --batch or --full signals the job's steps only, not
    the batch shell, so on one node too the job must have a step that passes it on to the job
    (the supervisor's srun step; a design with the supervisor in the batch step and no step
    would drop it). The job saves, the shell requeues it, and it ends bit-identical."""
    proj = make_project()
    (proj / "hold_at_step.py").write_text(HOLD_AT_STEP)
    steps = 60
    cmd = [sys.executable, "hold_at_step.py", *train_cmd(steps, 0.0)[1:]]
    run_id = launch(slurm_cluster, proj, *cmd, name="plain signal")
    st = wait_for(
        slurm_cluster, proj, run_id, lambda s: step_of(s) >= 40, "the job to hold at step 40"
    )
    job_id = st["slurm"]["job_id"]
    slurm_cluster.command("scancel", "--signal=TERM", job_id)
    with slurm_cluster.skip_requeue_delay():
        final = wait_for(slurm_cluster, proj, run_id, lambda s: s["state"] in ENDED, "the end")
    log = cli(slurm_cluster, proj, "logs", run_id, "-n", "200").stdout
    assert final["state"] == "succeeded", log
    assert final["restarts"] == 1
    assert "the batch shell got" not in log  # it came through the step, not the batch shell
    assert re.findall(r"^preempted at step (\d+)", log, re.MULTILINE) == ["40"], log
    assert re.findall(r"^resumed from step (\d+)", log, re.MULTILINE) == ["40"], log
    attempt = json.loads((Path(final["run_dir"]) / "attempts" / "0.json").read_text())
    assert attempt["forwarded_signals"][:1] == ["SIGTERM"] and attempt["requeue"] is True
    assert_same_weights(final["ckpt_dir"], reference_weights(tmp_path, steps))


def test_pending_shows_the_reason_and_cancel_of_a_pending_job_says_cancelled(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster
) -> None:
    proj = make_project(sbatch_extra=["--begin=now+1hour"])
    run_id = launch(slurm_cluster, proj, "true", name="later")
    st = run_status(slurm_cluster, proj, run_id)
    assert st["state"] == "pending" and st["restarts"] == 0
    assert st["slurm"]["reason"] == "BeginTime"
    cli(slurm_cluster, proj, "cancel", run_id)
    st = wait_for(slurm_cluster, proj, run_id, lambda s: s["state"] != "pending", "cancel")
    assert st["state"] == "cancelled"
    assert st["slurm"]["state"] == "CANCELLED"
    # The scheduler's terminal view is kept on the shared FS: squeue forgets jobs.
    assert (Path(st["run_dir"]) / "slurm_end.json").is_file()


def test_cancel_of_a_running_job_lets_it_save_and_is_not_requeued(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster
) -> None:
    proj = make_project()
    run_id = launch(slurm_cluster, proj, *train_cmd(2000, 0.05), name="cancelled")
    wait_for(slurm_cluster, proj, run_id, lambda s: step_of(s) >= 5, "progress")
    out = json.loads(cli(slurm_cluster, proj, "cancel", "--json", run_id).stdout)
    assert out["signalled"] == "slurm job"
    st = wait_for(slurm_cluster, proj, run_id, lambda s: s["state"] in ENDED, "the cancel")
    assert st["state"] == "cancelled" and st["restarts"] == 0
    log = cli(slurm_cluster, proj, "logs", run_id, "-n", "50").stdout
    assert "preempted at step" in log and "requeueing" not in log


def test_failed_job_reports_its_exit_code_and_logs_follow_ends_with_the_run(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster
) -> None:
    proj = make_project(cpus=2)
    script = (
        "import os, sys, time\n"
        "for k in ('SLURM_CPUS_PER_TASK', 'SLURM_JOB_ID', 'OUTLIVE_CKPT_DIR'):\n"
        "    print(k, os.environ.get(k), flush=True)\n"
        "for i in range(5):\n"
        "    print('line', i, flush=True); time.sleep(0.2)\n"
        "sys.exit(3)\n"
    )
    run_id = launch(slurm_cluster, proj, sys.executable, "-c", script, name="fails")
    followed = cli(slurm_cluster, proj, "logs", run_id, "-f", "-n", "100").stdout
    for i in range(5):
        assert f"line {i}\n" in followed
    assert "SLURM_CPUS_PER_TASK 2\n" in followed  # passed to the step explicitly (SLURM3)
    st = wait_for(slurm_cluster, proj, run_id, lambda s: s["state"] in ENDED, "the end")
    assert st["state"] == "failed" and st["exit_code"] == 3
    assert f"OUTLIVE_CKPT_DIR {st['ckpt_dir']}\n" in followed
    assert cli(slurm_cluster, proj, "status", run_id, check=False).returncode == 1


def test_hostile_names_and_arguments_stay_data_in_the_batch_script(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster
) -> None:
    proj = make_project()
    marker = slurm_cluster.shared / "PWNED"
    name = 'it\'s "q" $(touch PWNED) `touch PWNED` ; #SBATCH --x ü'
    arg = f"$(touch {marker}) ; touch {marker}"
    run_id = launch(
        slurm_cluster, proj, sys.executable, "-c", "import sys; print(repr(sys.argv[1]))", arg,
        name=name,
    )  # fmt: skip
    st = wait_for(slurm_cluster, proj, run_id, lambda s: s["state"] in ENDED, "the end")
    assert st["state"] == "succeeded" and st["name"] == name
    assert repr(arg) in cli(slurm_cluster, proj, "logs", run_id).stdout
    assert not marker.exists()
    assert not list(slurm_cluster.shared.rglob("PWNED")) and not list(proj.rglob("PWNED"))
    assert Path(st["ckpt_dir"]).name == name
    job = slurm_cluster.job(st["slurm"]["job_id"])
    assert job is not None and job["JobName"].startswith("it_s_q_touch_")


# A cell prints, then stays running until the test creates the gate file (argv[2]).
CELL = (
    "import os, sys, time\n"
    "i = sys.argv[1]\n"
    "print('cell', i, 'task', os.environ['SLURM_ARRAY_TASK_ID'], flush=True)\n"
    "while not os.path.exists(sys.argv[2]):\n"
    "    time.sleep(0.05)\n"
    "open(os.path.join(os.environ['OUTLIVE_CKPT_DIR'], 'cell.txt'), 'w').write(i)\n"
)


def test_four_cell_array_runs_isolated_and_a_stage_after_it_waits(
    make_project: ProjectFactory,
    slurm_cluster: SlurmCluster,
    monkeypatch: pytest.MonkeyPatch,
    tag: str,
) -> None:
    from outlive.lifecycle.runs import launch_array
    from outlive.session import Session

    proj = make_project()
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    cfg = Session.open(proj)
    gate = slurm_cluster.shared / f"go-{tag}"
    commands = [[sys.executable, "-c", CELL, str(i), str(gate)] for i in range(4)]
    cells = launch_array(cfg, "hpc", commands, name="ablation", throttle=2)
    try:
        gather = launch_array(
            cfg, "hpc", [[sys.executable, "-c", "print('gathered')"]], name="gather",
            after=[c.run_id for c in cells],
        )[0]  # fmt: skip
        wait_for(
            slurm_cluster,
            proj,
            gather.run_id,
            lambda s: s["state"] == "pending" and s["slurm"]["reason"] == "Dependency",
            "the second stage to wait on the first",
        )
        look = json.loads(cli(slurm_cluster, proj, "status", "--json").stdout)["runs"]
        by_id = {s["run_id"]: s for s in look}
        assert sum(by_id[c.run_id]["state"] == "running" for c in cells) <= 2  # the %2 throttle
    finally:
        gate.touch()  # the cells end whatever happened above
    for c in cells:
        st = wait_for(slurm_cluster, proj, c.run_id, lambda s: s["state"] in ENDED, "a cell")
        assert st["state"] == "succeeded", st
    st = wait_for(slurm_cluster, proj, gather.run_id, lambda s: s["state"] in ENDED, "gather")
    assert st["state"] == "succeeded"
    runs = json.loads(cli(slurm_cluster, proj, "status", "--json").stdout)["runs"]
    by_id = {r["run_id"]: r for r in runs}
    job = by_id[cells[0].run_id]["slurm"]["job_id"].split("_")[0]
    for i, c in enumerate(cells):
        st = by_id[c.run_id]
        assert st["name"] == f"ablation-{i}" and st["slurm"]["job_id"] == f"{job}_{i}"
        assert (Path(st["ckpt_dir"]) / "cell.txt").read_text() == str(i)  # its own durable path
        log = cli(slurm_cluster, proj, "logs", c.run_id).stdout
        assert f"cell {i} task {i}\n" in log and f"cell {1 - i % 2}" not in log
    assert len({by_id[c.run_id]["ckpt_dir"] for c in cells}) == 4
    assert len({by_id[c.run_id]["run_dir"] for c in cells}) == 4


def test_a_warned_array_task_requeues_itself_from_its_step_and_only_itself(
    make_project: ProjectFactory,
    slurm_cluster: SlurmCluster,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The step's own requeue names the task (``J_0``), never the whole array (task 0's raw id
    is the array's own: `scontrol requeue J` would requeue every task): the warned cell saves,
    requeues, resumes and ends bit-identical; its sibling runs on undisturbed."""
    from outlive.lifecycle.runs import launch_array
    from outlive.session import Session

    proj = make_project()
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    steps = 200
    cells = launch_array(
        Session.open(proj), "hpc", [train_cmd(steps, 0.03)] * 2, name="warned cells"
    )
    st = wait_for(
        slurm_cluster, proj, cells[0].run_id,
        lambda s: s["state"] == "running" and step_of(s) >= 40, "cell 0 to pass step 40",
    )  # fmt: skip
    task = st["slurm"]["job_id"]
    assert task.endswith("_0")  # J_0: the task, as the step names it
    with slurm_cluster.skip_requeue_delay():
        slurm_cluster.command("scancel", "--batch", "--signal=TERM", task)  # the warning
        finals = [
            wait_for(slurm_cluster, proj, c.run_id, lambda s: s["state"] in ENDED, "a cell")
            for c in cells
        ]
    assert [f["state"] for f in finals] == ["succeeded", "succeeded"], finals
    assert [f["restarts"] for f in finals] == [1, 0]
    log = cli(slurm_cluster, proj, "logs", cells[0].run_id, "-n", "500").stdout
    assert f"asked to run again; requeued job {task}" in log and "requeueing job" not in log
    assert log.count("resumed from step") == 1
    ref = reference_weights(tmp_path, steps)
    for f in finals:
        assert_same_weights(f["ckpt_dir"], ref)


def test_a_stage_after_a_failed_run_is_cancelled_not_left_pending(
    make_project: ProjectFactory, slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outlive.lifecycle.runs import launch_array
    from outlive.session import Session

    proj = make_project()
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    cfg = Session.open(proj)
    bad = launch(slurm_cluster, proj, sys.executable, "-c", "raise SystemExit(2)", name="bad")
    after = launch_array(cfg, "hpc", [["true"]], name="after-bad", after=[bad])[0]
    st = wait_for(slurm_cluster, proj, after.run_id, lambda s: s["state"] in ENDED, "the stage")
    assert st["state"] == "cancelled" and st["slurm"]["state"] == "CANCELLED"


def test_cli_queue_file_and_array_with_after_fan_out_as_job_arrays(
    slurm_cluster: SlurmCluster, make_project: ProjectFactory
) -> None:
    proj = make_project()
    (proj / "queue.txt").write_text(
        "# one run per line\n"
        f"{sys.executable} -c \"print('cell a')\"\n\n"
        f"{sys.executable} -c \"print('cell b')\"\n"
    )
    out = cli(
        slurm_cluster,
        proj,
        "run",
        "-t",
        "hpc",
        "--json",
        "--name",
        "q",
        "--queue",
        "queue.txt",
        "--throttle",
        "1",
    )
    doc = json.loads(out.stdout)
    cells = [r["run_id"] for r in doc["runs"]]
    assert [r["name"] for r in doc["runs"]] == ["q-0", "q-1"] and doc["run_id"] == cells[0]
    for rid in cells:
        wait_for(slurm_cluster, proj, rid, lambda s: s["state"] in ENDED, "a queue cell to end")
    # each attempt's log starts with outlive's "job J attempt N on HOST" header line
    logs = [cli(slurm_cluster, proj, "logs", rid).stdout.splitlines()[-1] for rid in cells]
    assert logs == ["cell a", "cell b"]

    out = cli(
        slurm_cluster,
        proj,
        "run",
        "-t",
        "hpc",
        "--json",
        "--name",
        "stage2",
        "--array",
        "2",
        "--after",
        cells[1],
        "--",
        sys.executable,
        "-c",
        "import os; print('task', os.environ['SLURM_ARRAY_TASK_ID'])",
    )
    stage = [r["run_id"] for r in json.loads(out.stdout)["runs"]]
    states = [
        wait_for(slurm_cluster, proj, rid, lambda s: s["state"] in ENDED, "stage 2")
        for rid in stage
    ]
    assert [s["state"] for s in states] == ["succeeded", "succeeded"]
    assert sorted(
        cli(slurm_cluster, proj, "logs", rid).stdout.splitlines()[-1] for rid in stage
    ) == [
        "task 0",
        "task 1",
    ]

    both = cli(
        slurm_cluster, proj, "run", "-t", "hpc", "--queue", "queue.txt", "--", "true", check=False
    )
    assert both.returncode == 2 and "either --queue" in both.stderr


def test_an_error_from_the_cluster_names_the_target_not_local(slurm_cluster, make_project):
    """A Slurm target reached without a host runs its agent here; its errors still say `hpc:`
    (issue 13, item 3)."""
    proj = make_project(partition="no-such-partition")
    done = cli(slurm_cluster, proj, "run", "-t", "hpc", "--", "true", check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("outlive: hpc: ") and "local:" not in done.stderr, done.stderr
