"""`pull`, `verify` and `down` against a real box: sshd in its own network namespace, real rsync,
a real link cut (``ip link set eth0 down`` on the box's side) in the middle of a transfer.

The box shares this machine's filesystem, so a test reads and damages box files directly.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from outlive import wire
from outlive.lifecycle.gate import teardown_facts
from outlive.profiles import load_profile
from outlive.testing import Box, wait_until
from outlive.testing.no_torch import SAVE_PT, no_torch_env

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
EXAMPLE = Path(__file__).resolve().parents[3] / "src" / "outlive" / "examples" / "train_numpy.py"


@pytest.fixture
def project(tmp_path: Path, box: Box, tag: str) -> Path:
    """A project whose target `box` has a workdir with hostile characters and its own durable
    directory on the box."""
    proj = tmp_path / "proj"
    proj.mkdir()
    target = dict(
        box.target,
        workdir=str(box.workdir / f"pull {tag} 'q' $(x) ü"),
        durable=str(box.durable / tag),
    )
    lines = ["[targets.box]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    shutil.copyfile(EXAMPLE, proj / "train_numpy.py")
    return proj


def cli(
    proj: Path, *args: str, timeout_s: float = 180, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTLIVE, *args], cwd=proj, capture_output=True, text=True, timeout=timeout_s, env=env
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if proc.returncode != 0:
        raise AssertionError(f"{proc.args} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def finished_run(
    proj: Path, name: str, steps: int = 30, command: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Launch the numpy example (real checkpoints and final.npz), or ``command``, and wait for
    it to succeed."""
    command = command or (
        sys.executable, "train_numpy.py", "--steps", str(steps), "--save-every", "10"
    )  # fmt: skip
    run_id = launch(proj, name, *command)

    def succeeded() -> dict[str, Any] | None:
        st = json.loads(cli(proj, "status", "--json", run_id).stdout)["runs"][0]
        assert st["state"] in ("pending", "running", "succeeded"), st
        return dict(st) if st["state"] == "succeeded" else None

    return wait_until(succeeded, f"run {name} to succeed", interval_s=0.2)


def launch(proj: Path, name: str, *command: str, target: str = "box") -> str:
    out = ok(cli(proj, "run", "-t", target, "--name", name, "--json", "--", *command))
    return str(json.loads(out.stdout)["run_id"])


def pull(
    proj: Path, ref: str, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    proc = cli(proj, "pull", ref, "--json", *extra, timeout_s=300, env=env)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def random_file(path: Path, size_bytes: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size_bytes
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            f.write(chunk)
            left -= len(chunk)


# ---------------------------------------------------------------------------------------------
# pull


def test_pull_verifies_checkpoints_outputs_and_hostile_names(project: Path, box: Box) -> None:
    st = finished_run(project, "hostile")
    ckpt = Path(st["ckpt_dir"])
    (ckpt / "a b 'q' $(x)\nü.txt").write_text("hostile name\n")
    workdir = Path(json.loads(cli(project, "targets", "--json").stdout)["targets"][1]["workdir"])
    (workdir / "results" / "deep").mkdir(parents=True)
    (workdir / "results" / "deep" / "metrics.json").write_text('{"acc": 0.9}')
    (workdir / "results" / "w.npy").write_bytes(b"")  # replaced below by a real array
    import numpy as np

    np.save(workdir / "results" / "w.npy", np.arange(12.0))
    (workdir / "summary.csv").write_text("step,loss\n30,0.1\n")

    code, result, err = pull(project, "hostile", "--output", "results", "--output", "summary.csv")
    assert code == 0, (err, result["verify"]["problems"], result["transfer"])
    dest = Path(result["dest"])
    assert dest == project / ".outlive" / "pulled" / "hostile" / st["run_id"]
    assert result["ok"] and result["verified_file"] == str(dest / "PULL_VERIFIED.json")
    assert (dest / "ckpt" / "final.npz").is_file()
    assert (dest / "ckpt" / "a b 'q' $(x)\nü.txt").read_text() == "hostile name\n"
    assert (dest / "out" / "results" / "deep" / "metrics.json").is_file()
    assert (dest / "out" / "summary.csv").read_text() == "step,loss\n30,0.1\n"
    record = json.loads((dest / "PULL_VERIFIED.json").read_text())
    assert record["manifest_sha256"] == result["manifest_sha256"]
    loads = {f["path"]: f["load"] for f in record["files"] if f["load"]}
    assert loads["ckpt/final.npz"] == "npz" and loads["out/results/w.npy"] == "npy"
    assert sum(1 for kind in loads.values() if kind == "outlive-ckpt") >= 1
    assert all(f["load_ok"] for f in record["files"] if f["load"])
    # The manifest is kept on both ends, named by its own hash.
    name = f"{result['manifest_sha256']}.json"
    assert (dest / ".outlive" / "manifests" / name).is_file()
    assert (Path(st["run_dir"]) / "manifests" / name).is_file()
    # `verify DIR` checks again at any time.
    again = cli(project, "verify", str(dest), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["ok"], again.stderr


def test_pull_interrupted_by_a_link_cut_resumes_and_sends_the_tree_about_once(
    project: Path, box: Box
) -> None:
    st = finished_run(project, "cut")
    ckpt = Path(st["ckpt_dir"])
    random_file(ckpt / "big.bin", 48 << 20)  # random: no compression; one directory
    tree_bytes = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
    dest = project / "pulled-cut"
    local = dest / "ckpt"
    err_path = project / "pull-cut.err"
    with err_path.open("w") as err_file:
        puller = subprocess.Popen(
            [OUTLIVE, "pull", st["run_id"], "--json", "--to", str(dest), "--bwlimit-kbps", "8000",
             "--stall-timeout-s", "3", "--retries", "12"],
            cwd=project, stdout=subprocess.PIPE, stderr=err_file, text=True,
        )  # fmt: skip
    try:

        def half_there() -> bool:
            partial = list(local.glob("*big.bin*")) if local.is_dir() else []
            return any(p.stat().st_size > (12 << 20) for p in partial)

        wait_until(lambda: half_there() or puller.poll() is not None, "a quarter of big.bin")
        assert puller.poll() is None, "the transfer finished before the link could be cut"
        box.cut()
        # the attempt must fail (the stall timeout) and the retry be announced before the restore
        wait_until(
            lambda: "(U12)" in err_path.read_text() or puller.poll() is not None,
            "the cut attempt to fail",
        )
    except BaseException:
        puller.kill()
        raise
    finally:
        box.restore()
    out, _ = puller.communicate(timeout=300)
    code, result, err = puller.returncode, json.loads(out), err_path.read_text()
    assert code == 0, (err, result["transfer"], result["verify"]["problems"])
    assert result["ok"] and (dest / "PULL_VERIFIED.json").is_file()
    (unit,) = [u for u in result["transfer"]["units"] if u["label"] == "ckpt"]
    attempts = unit["attempts"]
    assert len(attempts) >= 2 and attempts[0]["rc"] != 0 and attempts[-1]["rc"] == 0
    assert "U12" in err  # the retry was announced, naming the gotcha
    # rsync's own counts: --stats for the attempt that finished; for the one the cut ended,
    # "N bytes received so far" if rsync said it on TERM, else its last --info=progress2 line
    # (a loaded machine may need the KILL after TERM's grace). The resumed attempt sent only
    # the rest of the half file.
    assert attempts[-1]["bytes_from"] == "stats", attempts
    assert all(a["bytes_from"] in ("so-far", "progress") for a in attempts[:-1]), attempts
    received = result["transfer"]["bytes_received"]
    ratio = received / tree_bytes
    print(f"\nlink-cut pull: tree {tree_bytes} B, rsync received {received} B, ratio {ratio:.4f}")
    assert ratio <= 1.1, attempts
    assert attempts[-1]["bytes_received"] < 0.9 * tree_bytes  # not from zero


def test_a_checkpoint_that_does_not_load_fails_the_pull(project: Path, box: Box) -> None:
    st = finished_run(project, "broken")
    final = Path(st["ckpt_dir"]) / "final.npz"
    final.write_bytes(final.read_bytes()[:-40])  # the box itself holds a torn npz
    code, result, _ = pull(project, "broken")
    assert code == 1 and not result["ok"] and result["verified_file"] is None
    assert any(
        p.startswith("ckpt/final.npz: checkpoint does not load as npz")
        for p in result["verify"]["problems"]
    ), result["verify"]["problems"]
    assert not (Path(result["dest"]) / "PULL_VERIFIED.json").exists()


@pytest.mark.parametrize("damage", ["flip", "missing", "extra"])
def test_verify_fails_naming_the_file(project: Path, box: Box, damage: str) -> None:
    st = finished_run(project, f"v-{damage}")
    code, result, _ = pull(project, st["run_id"])
    assert code == 0
    dest = Path(result["dest"])
    ckpts = sorted((dest / "ckpt").glob("step-*.ckpt"))
    if damage == "flip":
        target, rel = ckpts[-1], f"ckpt/{ckpts[-1].name}"
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x01
        target.write_bytes(bytes(data))
    elif damage == "missing":
        target, rel = dest / "ckpt" / "final.npz", "ckpt/final.npz"
        target.unlink()
    else:
        target, rel = dest / "ckpt" / "notes.txt", "ckpt/notes.txt"
        target.write_text("added here, not on the box")
    out = cli(project, "verify", str(dest), "--json")
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert not report["ok"]
    assert [p.split(":")[0] for p in report["problems"]] == [rel]
    assert rel in out.stderr
    assert not (dest / "PULL_VERIFIED.json").exists()  # moved aside: no longer true


def test_repull_after_the_box_pruned_moves_old_files_aside_and_verifies(
    project: Path, box: Box
) -> None:
    st = finished_run(project, "prune")
    ckpt = Path(st["ckpt_dir"])
    assert pull(project, st["run_id"])[0] == 0
    oldest = sorted(ckpt.glob("step-*.ckpt"))[0]
    oldest.unlink()  # the job's keep_last pruned it on the box
    shutil.copyfile(ckpt / "final.npz", ckpt / "best.npz")  # and wrote something new
    code, second, err = pull(project, st["run_id"])
    assert code == 0 and second["ok"], (err, second["verify"]["problems"])
    assert second["superseded"] == [f"ckpt/{oldest.name}"]
    dest = Path(second["dest"])
    assert not (dest / "ckpt" / oldest.name).exists()
    assert list(dest.parent.glob(f"{dest.name}.superseded/*/ckpt/{oldest.name}"))


# ---------------------------------------------------------------------------------------------
# down


def down(proj: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    proc = cli(proj, "down", "box", "--json", *args)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def test_down_refuses_until_a_fresh_verified_pull_and_the_right_name(
    project: Path, box: Box
) -> None:
    st = finished_run(project, "gate")
    ckpt = Path(st["ckpt_dir"])

    # no pull yet
    code, report, err = down(project, "--confirm", "box")
    assert code == 1 and not report["allowed"] and report["plan"] is None
    assert "not covered by a verified pull" in err and "Iron Law" in err
    assert {x["why"] for x in report["lost_if_abandoned"]} == {"never pulled"}
    # the table is the profile's
    assert report["teardown"] == json.loads(json.dumps(teardown_facts(load_profile("generic-ssh"))))

    assert pull(project, "gate")[0] == 0
    code, report, err = down(project, "--confirm", "box")
    assert code == 0 and report["allowed"], err
    assert [r["covered"] for r in report["runs"]] == [True]
    assert report["plan"] == report["teardown"]["plan"]

    # the wrong name, or none typed when not interactive
    code, report, err = down(project, "--confirm", "box2")
    assert code == 1 and not report["allowed"] and "'box2'" in err
    code, report, err = down(project)
    assert code == 1 and "--confirm box" in err

    # a file appears on the box after the pull
    (ckpt / "late.txt").write_text("written after the pull")
    code, report, err = down(project, "--confirm", "box")
    assert code == 1 and not report["allowed"]
    assert [x["path"] for x in report["lost_if_abandoned"]] == ["ckpt/late.txt"]

    # a file changed on the box after the pull
    assert pull(project, "gate")[0] == 0
    assert down(project, "--confirm", "box")[0] == 0
    (ckpt / "late.txt").write_text("changed after the pull")
    code, report, err = down(project, "--confirm", "box")
    assert code == 1
    assert report["lost_if_abandoned"][0]["why"] == "changed on the box since the pull"

    # giving the results up needs its own typed phrase, and then the name
    code, report, err = down(project, "--confirm", "box", "--abandon-results")
    assert code == 1 and "abandon box" in err
    code, report, err = down(
        project, "--confirm", "box", "--abandon-results", "--confirm-abandon", "abandon box"
    )
    assert code == 0 and report["allowed"] and report["abandoned"], err
    assert (ckpt / "late.txt").exists()  # the gate never deletes anything


def test_down_refuses_when_the_pulled_copy_is_gone_or_the_box_is_unreachable(
    project: Path, box: Box
) -> None:
    finished_run(project, "gone")
    code, result, _ = pull(project, "gone")
    assert code == 0
    shutil.rmtree(Path(result["dest"]) / "ckpt")
    code, report, err = down(project, "--confirm", "box")
    assert code == 1 and "not covered" in err
    assert report["runs"][0]["pulls"][0]["valid"] is False
    assert pull(project, "gone")[0] == 0
    assert down(project, "--confirm", "box")[0] == 0
    box.cut()
    try:
        code, report, err = down(project, "--confirm", "box")
    finally:
        box.restore()
    assert code == 1 and report["reachable"] is False and "last-known" in err


def test_down_refuses_while_a_run_is_still_running(project: Path, box: Box) -> None:
    out = ok(cli(project, "run", "-t", "box", "--name", "busy", "--json", "--", "sleep", "600"))
    run_id = json.loads(out.stdout)["run_id"]
    try:
        code, _, err = down(project, "--confirm", "box")
        assert code == 1 and "not ended" in err and "running" in err
    finally:
        cli(project, "cancel", run_id)


def test_down_human_output_shows_clocks_first_and_the_plan_last(project: Path, box: Box) -> None:
    finished_run(project, "human")
    assert pull(project, "human")[0] == 0
    out = cli(project, "down", "box", "--confirm", "box")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.index("Danger clocks") < text.index("Teardown verbs") < text.index("gate passed")
    assert "no idle timer" in text and "destroy" in text


# ---------------------------------------------------------------------------------------------
# issue 12: content, symlinks and a full box disk


def test_down_refuses_a_flipped_byte_in_the_pulled_copy(project: Path, box: Box) -> None:
    finished_run(project, "flip")
    code, result, _ = pull(project, "flip")
    assert code == 0
    path = Path(result["dest"]) / "ckpt" / "final.npz"
    before = os.stat(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # size and mtime kept
    code, report, err = down(project, "--confirm", "box")
    assert code == 1 and not report["allowed"] and "not covered" in err
    assert "changed content" in str(report["runs"][0]["pulls"][0]["problem"])
    assert pull(project, "flip")[0] == 0  # a pull repairs it, keeping the damaged copy aside
    assert down(project, "--confirm", "box")[0] == 0


def test_the_gate_reads_bytes_where_a_pull_trusts_its_hash_cache(project: Path, box: Box) -> None:
    """A pull reuses the box's hash of a file unchanged since it was hashed (the run dir's
    hash-cache.json); the gate never does. With that cache made to lie (a wrong hash under
    the file's true stamp), a pull that trusts it finds the difference and fails, while
    `down` reads the bytes and passes, and `pull --rehash` proves the copy again."""
    st = finished_run(project, "cache")
    time.sleep(wire.RACY_MARGIN_NS / 1e9 + 0.3)  # the run's files settle
    code, first, _ = pull(project, "cache")
    assert code == 0 and first["hashes_reused"]["box_files"] == 0
    cache = Path(st["run_dir"]) / wire.HASH_CACHE_NAME
    doc = json.loads(cache.read_text())
    (key,) = [k for k in doc["files"] if k.endswith("/final.npz")]
    doc["files"][key][5] = "0" * 64  # the stamp still holds; the hash is a lie
    cache.write_text(json.dumps(doc))
    code, lied, err = pull(project, "cache")
    assert code == 1 and lied["hashes_reused"]["box_files"] == first["files"]
    assert any("final.npz" in p for p in lied["verify"]["problems"])
    last = err.strip().splitlines()[-1]  # the failure's one sentence, after the notes
    assert "--rehash" in last and "disk fault" in last
    code, report, err = down(project, "--confirm", "box")
    assert code == 1 and "not covered" in err  # the failed pull is no proof, though...
    code, again, _ = pull(project, "cache", "--rehash")
    assert code == 0 and again["hashes_reused"]["box_files"] == 0
    doc["files"][key][5] = "0" * 64
    cache.write_text(json.dumps(doc))  # ... lie once more: the gate still reads the bytes
    code, report, err = down(project, "--confirm", "box")
    assert code == 0 and report["allowed"], err


def test_a_symlink_out_of_the_roots_is_listed_by_pull_and_lost_for_down(
    project: Path, box: Box, tmp_path: Path
) -> None:
    st = finished_run(project, "links")
    ckpt = Path(st["ckpt_dir"])
    volume = box.workdir / f"volume-{time.time_ns()}"
    volume.mkdir()
    (volume / "shard.bin").write_bytes(os.urandom(50_000))
    (ckpt / "data").symlink_to(volume)
    code, result, err = pull(project, "links")
    assert code == 0 and result["not_pulled"] == ["ckpt/data"]
    assert "not pulled: ckpt/data" in err
    code, report, err = down(project, "--confirm", "box")
    assert code == 1 and [x["path"] for x in report["lost_if_abandoned"]] == ["ckpt/data"]
    assert str(volume) in report["lost_if_abandoned"][0]["why"]
    code, result, err = pull(project, "links", "--follow-links")
    assert code == 0 and result["not_pulled"] == [], err
    shard = Path(result["dest"]) / "ckpt" / "data" / "shard.bin"
    assert shard.read_bytes() == (volume / "shard.bin").read_bytes()
    code, report, err = down(project, "--confirm", "box")
    assert code == 0 and report["allowed"], err


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (needs root)")
def test_a_full_disk_under_the_box_run_dir_blocks_neither_pull_nor_down(
    project: Path, box: Box
) -> None:
    st = finished_run(project, "full")
    run_dir = Path(st["run_dir"])
    manifests = run_dir / "manifests"
    manifests.mkdir(exist_ok=True)
    # the box has its own mount namespace: the tmpfs is mounted there, filled to the last byte
    q = shlex.quote(str(manifests))
    fill = f"mount -t tmpfs -o size=64k tmpfs {q} && (cat /dev/zero > {q}/filler; true)"
    done = box.ssh(fill)
    assert done.returncode == 0, done.stderr
    try:
        code, result, err = pull(project, "full")
        assert code == 0 and result["verify"]["ok"], err
        assert any("could not keep its copy" in w for w in result["warnings"])
        code, report, err = down(project, "--confirm", "box")
        assert code == 0 and report["allowed"], err
    finally:
        box.ssh(f"umount -l {q}")


# ---------------------------------------------------------------------------------------------
# issue 13: pulling without torch here, snapshots of running runs, names on several targets

WRITER = """\
import os, sys, time
from pathlib import Path

ckpt = Path(os.environ["OUTLIVE_CKPT_DIR"])
ckpt.mkdir(parents=True, exist_ok=True)
(ckpt / "early.txt").write_text("written while running\\n")
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.02)
(ckpt / "final.txt").write_text("written at the end\\n")
"""


def wait_state(proj: Path, run_id: str, want: str) -> dict[str, Any]:
    def look() -> dict[str, Any] | None:
        st = dict(json.loads(cli(proj, "status", "--json", run_id).stdout)["runs"][0])
        return st if st["state"] == want else None

    return wait_until(look, f"run {run_id} to be {want}", interval_s=0.1)


def test_down_counts_a_torch_file_verified_by_hash_only_unless_load_check_is_required(
    project: Path, box: Box, tmp_path: Path
) -> None:
    (project / "save_pt.py").write_text(SAVE_PT)
    finished_run(project, "pt", command=(sys.executable, "save_pt.py"))
    env = no_torch_env(tmp_path / "no-torch", os.environ)

    code, result, err = pull(project, "pt", env=env)
    assert code == 0, err
    assert result["verify"]["load_skipped"] == ["ckpt/model.pt"]
    code, report, err = down(project, "--confirm", "box")
    assert code == 0 and report["allowed"], err

    code, report, err = down(project, "--confirm", "box", "--require-load-check")
    assert code == 1 and not report["allowed"]
    (view,) = report["runs"][0]["pulls"]
    assert view["valid"] is False and "--require-load-check" in str(view["problem"])
    assert "install torch here" in str(view["problem"])
    # With torch here, `verify` loads it and the strict gate counts the pull.
    ok(cli(project, "verify", result["dest"], "--require-load-check"))
    assert down(project, "--confirm", "box", "--require-load-check")[0] == 0


def test_down_never_counts_a_snapshot_of_a_running_run(
    project: Path, box: Box, tmp_path: Path
) -> None:
    (project / "writer.py").write_text(WRITER)
    go = tmp_path / "go"
    run_id = launch(project, "snap", sys.executable, "writer.py", str(go))
    try:
        st = wait_state(project, run_id, "running")
        wait_until((Path(st["ckpt_dir"]) / "early.txt").exists, "the writer's first file")
        code, result, err = pull(project, "snap")
        assert code == 0 and result["snapshot"] is True and result["state"] == "running", err
        code, _, err = down(project, "--confirm", "box")
        assert code == 1 and "not ended" in err and "running" in err
    finally:
        go.write_text("")
    wait_state(project, run_id, "succeeded")
    # Ended now: the snapshot still does not count, and says why.
    code, report, err = down(project, "--confirm", "box")
    assert code == 1 and not report["allowed"], err
    (view,) = report["runs"][0]["pulls"]
    assert view["snapshot"] is True and view["valid"] is False
    whys = {x["path"]: x["why"] for x in report["lost_if_abandoned"]}
    assert whys["ckpt/early.txt"] == "pulled only in a snapshot taken while the run was still going"
    # A pull after the end is the run's result, and it counts.
    code, result, err = pull(project, "snap")
    assert code == 0 and result["snapshot"] is False, err
    code, report, err = down(project, "--confirm", "box")
    assert code == 0 and report["allowed"], err


def test_pull_of_a_name_on_two_targets_asks_for_t(project: Path, box: Box) -> None:
    local_id = launch(project, "dup", sys.executable, "-c", "pass", target="local")
    box_id = launch(project, "dup", sys.executable, "-c", "pass")
    wait_state(project, local_id, "succeeded")
    wait_state(project, box_id, "succeeded")
    proc = cli(project, "pull", "dup")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "on several targets (box, local); say which with -t TARGET" in proc.stderr
    code, result, err = pull(project, "dup", "-t", "box")
    assert code == 0 and result["run_id"] == box_id and result["target"] == "box", err
    assert f"'dup' is run {box_id} on target 'box'" in err
