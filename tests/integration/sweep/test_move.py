"""`outlive move`: a running training moved from box a to box b ends bit-identical to an
uninterrupted run; a checkpoint that does not verify is refused with nothing launched; bad
input is one sentence with exit 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from local_helpers import Project, wait_for
from sweep_helpers import EXAMPLE, assert_result, box_project

from outlive.store import Store
from outlive.testing import Box

STEPS = 120


def _train(sleep_s: float) -> list[str]:
    args = ["--steps", str(STEPS), "--save-every", "10", "--step-sleep-s", str(sleep_s)]
    return [sys.executable, "train_numpy.py", *args]


def _training_on_a(project: Project, name: str, min_step: int) -> str:
    """Launch the example on box a as run ``name``; its run id once it reached ``min_step``."""
    (project.dir / "train_numpy.py").write_bytes(EXAMPLE.read_bytes())
    done = project.cli("run", "-t", "a", "--name", name, "--json", "--", *_train(0.05))
    run_id = str(json.loads(done.stdout)["run_id"])
    wait_for(
        lambda: int((project.status(run_id).get("progress") or {}).get("step", 0)) >= min_step,
        f"step {min_step} on box a",
        90,
    )
    return run_id


def test_move_of_a_running_training_from_box_a_to_box_b_ends_bit_identical(
    tmp_path: Path, two_boxes: tuple[Box, Box]
) -> None:
    project = box_project(tmp_path, two_boxes, "move")
    old = _training_on_a(project, "mover", 25)
    moved = json.loads(project.cli("move", "mover", "--to", "b", "--json", timeout_s=180).stdout)
    assert moved["from_run_id"] == old
    assert (moved["from_target"], moved["to_target"], moved["name"]) == ("a", "b", "mover")
    assert moved["from_state"] == "cancelled"  # TERM: the job saved and exited
    assert moved["checkpoint_step"] >= 20
    assert project.status(old)["state"] == "cancelled"
    new = moved["run_id"]
    st = project.wait(new, lambda s: s["state"] not in ("pending", "running"), "the moved run", 120)
    assert st["state"] == "succeeded", project.cli("logs", new, rc=None).stdout
    assert st["target"] == "b"
    log = project.cli("logs", new, "-n", "400").stdout
    assert f"resumed from step {moved['checkpoint_step']}" in log
    assert moved["ckpt_dir"].startswith(str(two_boxes[1].durable))
    assert_result(tmp_path, moved["ckpt_dir"], STEPS)


def test_move_refuses_a_checkpoint_that_does_not_verify_and_launches_nothing(
    tmp_path: Path, two_boxes: tuple[Box, Box]
) -> None:
    project = box_project(tmp_path, two_boxes, "refuse")
    old = _training_on_a(project, "broken", 15)
    project.cli("cancel", old)
    project.wait_ended(old)
    ckpt_dir = Path(Store(project.dir / ".outlive").resolve(old).ckpt_dir)
    assert ckpt_dir.is_relative_to(two_boxes[0].durable)
    latest = max(ckpt_dir.glob("step-*.ckpt"))
    data = bytearray(latest.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the payload's last byte
    latest.write_bytes(bytes(data))
    refused = project.cli("move", "broken", "--to", "b", rc=1, timeout_s=180)
    assert "did not verify, so nothing was moved" in refused.stderr  # the pull's load check
    assert len(refused.stderr.strip().splitlines()) == 1
    runs = json.loads(project.cli("ls", "--json").stdout)["runs"]
    assert [r["run_id"] for r in runs] == [old]  # nothing launched on b


def test_move_bad_input_is_one_sentence_exit_2(tmp_path: Path, two_boxes: tuple[Box, Box]) -> None:
    project = box_project(tmp_path, two_boxes, "badmove")
    done = project.cli("run", "-t", "a", "--name", "stay", "--json", "--", "true")
    old = json.loads(done.stdout)["run_id"]
    for args, says in (
        (("move", "stay", "--to", "nowhere"), "nowhere"),
        (("move", "stay", "--to", "a"), "already on a"),
        (("move", "stay"), "--to"),
    ):
        bad = project.cli(*args, rc=2)
        assert says in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
    runs = json.loads(project.cli("ls", "--json").stdout)["runs"]
    assert [r["run_id"] for r in runs] == [old]
