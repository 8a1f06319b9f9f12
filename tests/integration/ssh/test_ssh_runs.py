"""Runs on a real remote box: sshd in its own network and PID namespace, reached with OpenSSH.

These prove issue 4's promises: a job outlives the connection, an unreachable box is reported as
unreachable (not as a dead run), a reboot is named as such and the relaunch resumes exactly, the
box never runs code that differs from the local tree, and hostile names stay data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outlive.testing import DEADLINE_S, Box, wait_until

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"


def _toml_value(v: Any) -> str:
    return json.dumps(v)  # TOML basic strings and JSON strings escape alike for our values


@pytest.fixture
def project(tmp_path: Path, box: Box, tag: str) -> Path:
    """A local project whose target `box` has its own workdir and durable directory on the box
    (hostile characters included, so every test also proves paths are passed as data)."""
    proj = tmp_path / "proj"
    proj.mkdir()
    workdir = box.workdir / f"w {tag} 'q' $(x) ü"
    lines = ["[targets.box]"]
    for key, value in box.target.items():
        if key == "workdir":
            value = str(workdir)
        if key == "durable":
            value = str(box.durable / tag)
        lines.append(f"{key} = {_toml_value(value)}")
    lines.append("kill_grace_s = 2")
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    shutil.copyfile(EXAMPLE, proj / "train_numpy.py")
    return proj


def cli(
    proj: Path, *args: str, check: bool = True, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [OUTLIVE, *args], cwd=proj, capture_output=True, text=True, timeout=timeout_s
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"outlive {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def run_status(proj: Path, run_id: str) -> dict[str, Any]:
    out = cli(proj, "status", "--json", run_id, check=False)
    assert out.returncode in (0, 1), out.stderr
    runs: list[dict[str, Any]] = json.loads(out.stdout)["runs"]
    return runs[0]


def wait_for(
    proj: Path, run_id: str, pred: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Poll the run's status until ``pred`` holds; fail at the deadline with the last one."""
    last: list[dict[str, Any]] = [{}]

    def look() -> dict[str, Any] | None:
        last[0] = run_status(proj, run_id)
        return last[0] if pred(last[0]) else None

    try:
        return wait_until(look, what, interval_s=0.2)
    except AssertionError:
        raise AssertionError(f"timed out waiting for {what}; last status {last[0]}") from None


def train_cmd(steps: int = 120, sleep_s: float = 0.02) -> list[str]:
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


def launch(proj: Path, *cmd: str, name: str | None = None) -> str:
    args = ["run", "-t", "box", "--json"]
    if name is not None:
        args += ["--name", name]
    out = cli(proj, *args, "--", *cmd)
    return str(json.loads(out.stdout)["run_id"])


def step_of(st: dict[str, Any]) -> int:
    return int((st.get("progress") or {}).get("step", 0))


def box_step(run_dir: str) -> int:
    """The last step the job recorded in its progress file, read from the box's disk."""
    path = Path(run_dir) / "progress.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return int(json.loads(lines[-1])["step"]) if lines else 0


def served_by_daemon(proj: Path) -> int:
    """How many looks the local daemons of this test session have answered so far."""
    doc = json.loads(cli(proj, "daemon", "status", "--json").stdout)
    return sum(int(d["served"]) for d in doc["daemons"])


@pytest.mark.parametrize("daemon", ["daemon", "no-daemon"])
def test_job_survives_a_link_cut_and_status_says_unreachable_meanwhile(
    project: Path, box: Box, daemon: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if daemon == "no-daemon":
        monkeypatch.setenv("OUTLIVE_NO_DAEMON", "1")
    # each variant its own name, so its own checkpoints: the other may have finished already
    run_id = launch(project, *train_cmd(steps=400, sleep_s=0.05), name=f"survivor-{daemon}")
    st = wait_for(project, run_id, lambda s: step_of(s) >= 3, "the job to make progress")
    if daemon == "daemon":  # the first look started it; wait until it answers looks
        wait_until(
            lambda: run_status(project, run_id) and served_by_daemon(project) > 0,
            "the daemon to answer looks",
        )
    served_before_cut = served_by_daemon(project)
    box.cut()
    at_cut = box_step(st["run_dir"])
    st = run_status(project, run_id)
    if daemon == "daemon":  # the look during the cut went through the daemon's open channel
        assert served_by_daemon(project) == served_before_cut + 1
    assert st.get("stale") is True
    assert "unreachable" in st.get("unreachable", "") or "no answer" in st.get("unreachable", "")
    assert st["state"] == "running"  # last seen, never reported as dead
    # the box shares this machine's filesystem: the job goes on while no look can reach it
    wait_until(lambda: box_step(st["run_dir"]) > at_cut, "the job to go on during the cut")
    box.restore()
    st = wait_for(project, run_id, lambda s: not s.get("stale"), "the box to answer again")
    assert st["state"] in ("running", "succeeded")
    before = step_of(st)
    st = wait_for(
        project,
        run_id,
        lambda s: step_of(s) > before or s["state"] == "succeeded",
        "progress after the cut",
    )
    cli(project, "cancel", run_id)
    assert (served_by_daemon(project) > served_before_cut) == (daemon == "daemon")


def _reference_weights(tmp_path: Path, steps: int) -> dict[str, np.ndarray]:
    env = dict(os.environ, OUTLIVE_CKPT_DIR=str(tmp_path / "ref"))
    env.pop("OUTLIVE_PROGRESS_FILE", None)
    subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "--steps",
            str(steps),
            "--save-every",
            "10",
            "--step-sleep-s",
            "0",
        ],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    with np.load(tmp_path / "ref" / "final.npz") as z:
        return {k: z[k] for k in z.files}


def test_reboot_is_diagnosed_and_the_relaunch_resumes_to_the_same_result(
    project: Path, box: Box, tmp_path: Path
) -> None:
    steps = 120
    run_id = launch(project, *train_cmd(steps=steps, sleep_s=0.05), name="rebooted")
    wait_for(project, run_id, lambda s: step_of(s) >= 25, "a checkpoint or two")
    old_boot = box.boot_id()
    served_before = served_by_daemon(project)
    box.reboot()  # the daemon's channel dies with the box: the next look reopens it
    st = wait_for(project, run_id, lambda s: s["state"] != "running", "the run to be gone")
    assert served_by_daemon(project) > served_before
    assert st["state"] == "vanished"
    diag = st["diagnosis"]
    assert diag["cause"] == "reboot"
    assert any(old_boot in e for e in diag["evidence"])
    assert "U3" in diag["gotchas"]

    again = launch(project, *train_cmd(steps=steps, sleep_s=0.01), name="rebooted")
    st = wait_for(project, again, lambda s: s["state"] not in ("running", "pending"), "the end")
    assert st["state"] == "succeeded", cli(project, "logs", again, check=False).stdout
    log = cli(project, "logs", again, "-n", "200").stdout
    assert "resumed from step" in log
    ckpt_dir = Path(st.get("ckpt_dir") or "")
    with np.load(ckpt_dir / "final.npz") as z:
        resumed = {k: z[k] for k in z.files}
    reference = _reference_weights(tmp_path, steps)
    assert resumed.keys() == reference.keys()
    for key in reference:
        assert resumed[key].tobytes() == reference[key].tobytes(), key


def test_launch_is_refused_when_the_box_copy_differs_from_the_local_tree(
    project: Path, box: Box
) -> None:
    from outlive.config import load_config
    from outlive.errors import BoxError
    from outlive.lifecycle.push import push
    from outlive.session import Session

    cfg = load_config(project)
    target = cfg.target("box")
    result = push(Session(cfg), target)
    # Someone edits the box's copy after the push (U42): the launch must refuse to run it.
    on_box = Path(target.placement.workdir) / "train_numpy.py"
    on_box.write_text(on_box.read_text() + "\n# edited on the box\n")
    agent = Session(cfg).agent(target)
    with pytest.raises(BoxError, match="differs from the local tree"):
        agent.call(
            "launch",
            {
                "run_id": "20260101-000000-abcdef",
                "name": "stale",
                "command": ["true"],
                "workdir": target.placement.workdir,
                "durable": target.placement.durable,
                "deploy_manifest": result.manifest,
            },
        )
    assert not (
        Path(target.placement.workdir) / ".outlive" / "runs" / "20260101-000000-abcdef"
    ).exists()
    verify = cli(project, "push", "box", "--json")  # push repairs it and verifies by hash
    assert json.loads(verify.stdout)["verified"] is True


def test_hostile_names_and_arguments_are_data_on_the_box(project: Path, box: Box) -> None:
    marker = box.workdir / "PWNED"
    name = 'it\'s "q" $(touch PWNED) `x` ; ü'
    arg = f"$(touch {marker}) ; touch {marker} `touch {marker}`"
    run_id = launch(
        project, sys.executable, "-c", "import sys; print(repr(sys.argv[1]))", arg, name=name
    )
    st = wait_for(project, run_id, lambda s: s["state"] == "succeeded", "the run to succeed")
    assert st["name"] == name
    assert cli(project, "logs", run_id).stdout.strip() == repr(arg)
    assert not marker.exists()
    assert Path(st["ckpt_dir"]).name == name

    bad = cli(project, "run", "-t", "box", "--name", "two\nlines", "--", "true", check=False)
    assert bad.returncode == 2
    assert "name" in bad.stderr and bad.stderr.count("\n") == 1


def test_logs_follow_survives_a_link_cut_without_losing_or_repeating_lines(
    project: Path, box: Box, tag: str
) -> None:
    # Lines 0-29, then (once the test has cut the link) lines 30-59 while nothing can be read.
    gate = box.workdir / f"go-on-{tag}"  # the box shares this machine's filesystem
    script = "\n".join(
        [
            "import os, sys, time",
            "for i in range(60):",
            "    if i == 30:",
            "        while not os.path.exists(sys.argv[1]):",
            "            time.sleep(0.02)",
            "    print(f'line {i}', flush=True)",
        ]
    )
    run_id = launch(project, sys.executable, "-c", script, str(gate), name="chatty")
    out_path = project / "followed.txt"
    log = Path(run_status(project, run_id)["run_dir"]) / "stdout.log"
    with out_path.open("wb") as out:
        follower = subprocess.Popen(
            [OUTLIVE, "logs", run_id, "-f", "-n", "1000"],
            cwd=project,
            stdout=out,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: "line 29\n" in out_path.read_text(), "the follower to print line 29")
        box.cut()
        gate.touch()
        wait_until(lambda: "line 59\n" in log.read_text(), "the job to finish during the cut")
        box.restore()
        try:
            follower.wait(timeout=DEADLINE_S)
        finally:
            if follower.poll() is None:
                follower.send_signal(signal.SIGKILL)
                follower.wait()
    expected = "".join(f"line {i}\n" for i in range(60))
    assert out_path.read_text() == expected


def test_tmux_detach_gives_an_attachable_session_that_ends_with_the_run(
    project: Path, box: Box, tag: str
) -> None:
    gate = box.workdir / f"go-on-{tag}"  # the box shares this machine's filesystem
    out = cli(
        project,
        "run",
        "-t",
        "box",
        "--json",
        "--detach-with",
        "tmux",
        "--name",
        "tm",
        "--",
        "sh",
        "-c",
        'echo tick-one; while [ ! -e "$0" ]; do sleep 0.05; done; echo tick-two',
        str(gate),
    )
    run_id = json.loads(out.stdout)["run_id"]
    session = f"outlive-{run_id}"

    def pane() -> str:
        return box.ssh("tmux", "capture-pane", "-p", "-t", f"{session}:log").stdout

    # the job waits for the gate: its session is there to be looked at for as long as it takes
    wait_until(lambda: "tick-one" in pane(), "tick-one in the tmux pane", interval_s=0.2)
    gate.touch()
    st = wait_for(project, run_id, lambda s: s["state"] != "running", "the run to end")
    assert st["state"] == "succeeded"
    wait_until(
        lambda: box.ssh("tmux", "has-session", "-t", session).returncode != 0,
        "the tmux session to end with the run",
        interval_s=0.2,
    )
