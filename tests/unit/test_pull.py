"""`pull` on the local target (the agent as a subprocess, real rsync) and its pure parts: declared
outputs, units, the rsync command line and what rsync reports."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outlive.config import Connection, JobPolicy, Placement, Target
from outlive.errors import UsageError
from outlive.lifecycle.pull import declared_outputs, pull, result_roots
from outlive.lifecycle.transfer import (
    PullOptions,
    Unit,
    plan_units,
    rsync_argv,
    run_rsync,
    shared_bwlimit,
    transfer_unit,
)
from outlive.session import Session
from outlive.store import RunRecord, Store
from outlive.transport.files import Direction, RsyncOptions
from outlive.transport.files import rsync_argv as transport_rsync_argv
from outlive.transport.local import LocalTransport
from outlive.transport.ssh import SshTransport

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


def _target(outputs: tuple[str, ...] = ()) -> Target:
    return Target(
        name="gpu",
        profile="generic-ssh",
        kind="ssh",
        backend="process",
        connection=Connection(transport="ssh", host="gpu-box", ssh_config="/tmp/cfg"),
        placement=Placement(
            workdir="$HOME/proj", durable="$HOME/proj/.outlive/durable", outputs=outputs
        ),
        policy=JobPolicy(),
    )


def test_declared_outputs_are_relative_normalised_and_do_not_overlap() -> None:
    t = _target(
        outputs=(
            "results/",
            "logs/metrics.csv",
        )
    )
    assert declared_outputs(t, ["./plots", "results"]) == ["results", "logs/metrics.csv", "plots"]
    for bad in ("/etc", "../up", "a/../..", "~/x", "$HOME/x", "", "."):
        with pytest.raises(UsageError, match="relative to the workdir"):
            declared_outputs(t, [bad])
    with pytest.raises(UsageError, match="overlap"):
        declared_outputs(t, ["results/sub"])


def test_result_roots_are_the_checkpoint_dir_and_each_output_under_the_workdir() -> None:
    rec = RunRecord("r1", "n", "gpu", ["x"], "/box/run", "/box/durable/n", 0.0)
    assert result_roots(_target(), rec, ["results"]) == [
        {"label": "ckpt", "path": "/box/durable/n"},
        {"label": "out/results", "path": "$HOME/proj/results"},
    ]


def test_units_are_top_level_directories_and_compress_only_what_shrinks(tmp_path: Path) -> None:
    roster = {
        "roots": [
            {"label": "ckpt", "path": "/d/n", "real": "/d/n", "kind": "dir"},
            {"label": "out/m.csv", "path": "/w/m.csv", "real": "/w/real.csv", "kind": "file"},
        ],
        "files": [
            {"path": "ckpt/a.ckpt", "root": "ckpt", "rel": "a.ckpt", "size": 100, "zratio": 0.99},
            {"path": "ckpt/s/x", "root": "ckpt", "rel": "s/x", "size": 50, "zratio": 0.2},
            {"path": "ckpt/s/y/z", "root": "ckpt", "rel": "s/y/z", "size": 50, "zratio": 0.3},
            {"path": "out/m.csv", "root": "out/m.csv", "rel": "", "size": 9, "zratio": None},
        ],
    }
    units = {u.label: u for u in plan_units(roster, tmp_path, "auto", own_rsync_min_bytes=100)}
    assert set(units) == {"ckpt", "ckpt/s", "out/m.csv"}
    assert units["ckpt"].files == ["a.ckpt"] and not units["ckpt"].compress
    assert units["ckpt/s"].files == ["s/x", "s/y/z"] and units["ckpt/s"].compress
    single = units["out/m.csv"]
    assert single.files == [] and single.source == "/w/real.csv"
    assert single.local == tmp_path / "out/m.csv"
    assert all(u.compress for u in plan_units(roster, tmp_path, "always"))
    assert not any(u.compress for u in plan_units(roster, tmp_path, "never"))


def test_small_directories_ride_with_the_rest_of_their_root(tmp_path: Path) -> None:
    """One rsync per root where its directories are small (each rsync costs a session and a
    start-up on both ends); a big directory keeps its own; what compresses never rides with
    what does not."""
    mib = 1 << 20

    def f(rel: str, size: int, zratio: float) -> dict[str, object]:
        return {"path": f"ckpt/{rel}", "root": "ckpt", "rel": rel, "size": size, "zratio": zratio}

    roster = {
        "roots": [{"label": "ckpt", "path": "/d/n", "real": "/d/n", "kind": "dir"}],
        "files": [
            f("top.bin", 5 * mib, 0.99),
            f("a/x.bin", 32 * mib, 0.99),
            f("b/y.bin", 32 * mib, 0.99),
            f("big/z.bin", 80 * mib, 0.99),
            f("logs/l.txt", mib, 0.1),
        ],
    }
    units = {u.label: u for u in plan_units(roster, tmp_path, "auto")}
    assert set(units) == {"ckpt", "ckpt (-z)", "ckpt/big"}
    rest = units["ckpt"]
    assert rest.files == ["a/x.bin", "b/y.bin", "top.bin"] and not rest.compress
    assert rest.source == "/d/n" and rest.local == tmp_path / "ckpt"
    assert rest.paths == ["ckpt/a/x.bin", "ckpt/b/y.bin", "ckpt/top.bin"]
    assert units["ckpt (-z)"].files == ["logs/l.txt"] and units["ckpt (-z)"].compress
    assert units["ckpt/big"].files == ["big/z.bin"] and units["ckpt/big"].size_bytes == 80 * mib
    # the 128 MiB bench tree (4 directories of 32 MiB and a few small files): one rsync
    bench = {**roster, "files": [r for r in roster["files"] if r["rel"] != "big/z.bin"][:3]}
    (one,) = plan_units(bench, tmp_path, "never")
    assert one.label == "ckpt" and len(one.files) == 3


def test_rsync_command_is_resumable_bounded_and_rides_the_ssh_master(tmp_path: Path) -> None:
    unit = Unit("ckpt", "/box/d n", tmp_path / "ckpt", ["a"], ["ckpt/a"], [1], compress=True)
    target = _target()
    opts = PullOptions(stall_timeout_s=7, bwlimit_kbps=500)
    argv = rsync_argv(unit, SshTransport(target), opts, "/tmp/list")
    assert argv[0] == "rsync" and "scp" not in argv
    for flag in ("--partial", "--protect-args", "--stats", "--timeout=7", "-z", "--bwlimit=500"):
        assert flag in argv
    ssh = argv[argv.index("-e") + 1]
    assert ssh.startswith("ssh -F /tmp/cfg") and "ControlMaster=auto" in ssh
    assert argv[-2:] == ["gpu-box:/box/d n/", f"{tmp_path}/ckpt/"]
    plain = Unit("o", "/w/m.csv", tmp_path / "out/m.csv", [], ["out/m.csv"], [1], compress=False)
    argv = rsync_argv(plain, LocalTransport(), PullOptions(), None)
    assert "-z" not in argv and "-e" not in argv and argv[-2:] == ["/w/m.csv", str(plain.local)]


def test_bwlimit_caps_the_whole_pull_shared_among_the_rsyncs_at_once() -> None:
    opts = PullOptions(bwlimit_kbps=40_000)
    assert shared_bwlimit(opts, 4).bwlimit_kbps == 10_000
    assert shared_bwlimit(opts, 1).bwlimit_kbps == 40_000
    assert shared_bwlimit(PullOptions(bwlimit_kbps=3), 4).bwlimit_kbps == 1  # never unlimited
    assert shared_bwlimit(PullOptions(), 4).bwlimit_kbps is None


def test_run_rsync_reads_rsync_stats_and_names_a_failure(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.bin").write_bytes(os.urandom(300_000))
    seen: list[int] = []
    done = run_rsync(
        ["rsync", "-a", "--info=progress2", "--stats", f"{src}/", f"{tmp_path / 'dst'}/"],
        60,
        seen.append,
    )
    assert done.rc == 0 and done.error is None and done.bytes_from == "stats"
    assert done.bytes_received is not None and seen and max(seen) == 300_000
    failed = run_rsync(["rsync", "-a", f"{tmp_path / 'missing'}/", str(tmp_path / "x")], 60, print)
    assert failed.rc == 23 and failed.error and "missing" in failed.error


@pytest.mark.parametrize("first", ["the broken pipe", "the full disk"])
def test_a_full_disk_is_named_whichever_rsync_process_reports_first(
    tmp_path: Path, first: str
) -> None:
    """rsync's receiver and sender write to the same stream: once the disk fills, the sender
    may say "Broken pipe" before the receiver says why. The cause is named either way (a pull
    that took the broken pipe for the error went on to verify a half tree, not "disk full")."""
    full = 'rsync: [receiver] write failed on "/d/big.bin": No space left on device (28)'
    pipe = "rsync: [sender] write error: Broken pipe (32)"
    lines = [pipe, full] if first == "the broken pipe" else [full, pipe]
    fake = tmp_path / "rsync"
    fake.write_text(
        "#!/bin/sh\n"
        + "".join(f"echo {shlex.quote(line)}\n" for line in lines)
        + "echo 'rsync error: error in file IO (code 11) at receiver.c(657) [receiver=3.5.0]'\n"
        + "exit 11\n"
    )
    fake.chmod(0o755)
    failed = run_rsync([str(fake)], 60, lambda _n: None)
    assert failed.rc == 11 and failed.error is not None
    assert failed.error.startswith(full) and "code 11" in failed.error


def test_run_rsync_names_each_file_once_it_is_in_place(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    names = ["a/one.bin", "a/two words.bin", "b/new\nline.bin", "b/last.bin"]
    sizes = {}
    for i, rel in enumerate(names):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        sizes[rel] = 200_000 * (i + 1)
        (src / rel).write_bytes(os.urandom(sizes[rel]))
    unit = Unit("ckpt", str(src), dst, names, names, list(sizes.values()), compress=False)
    listing = tmp_path / "list"
    listing.write_bytes(b"\0".join(os.fsencode(n) for n in names) + b"\0")
    in_place: dict[str, bool] = {}

    def landed(rel: str) -> None:  # what is at the final name when rsync names the next file
        here = dst / rel
        in_place[rel] = here.is_file() and here.read_bytes() == (src / rel).read_bytes()

    argv = rsync_argv(unit, LocalTransport(), PullOptions(), str(listing))
    done = run_rsync(argv, 60, lambda _n: None, landed)
    assert done.rc == 0, done.error
    # every file but the one rsync handled last, each complete at its final name
    assert len(in_place) == len(names) - 1 and set(in_place) < set(names), in_place
    assert all(in_place.values()), in_place


def test_run_rsync_ends_an_attempt_at_its_deadline(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # rsync waits forever to read its file list from a FIFO nobody writes to
    done = run_rsync(["rsync", "-a", f"--files-from={fifo}", "/", str(tmp_path / "d")], 1.0, print)
    assert done.rc == -1 and done.error and "no end within" in done.error


def test_pull_on_the_local_target_verifies_and_records(local_run: tuple[Path, str]) -> None:
    proj, run_id = local_run
    notes: list[str] = []
    result = pull(Session.open(proj), run_id, on_note=notes.append)
    assert result["ok"], result["verify"]["problems"]
    dest = Path(result["dest"])
    assert dest == proj / ".outlive" / "pulled" / "loc" / run_id
    with np.load(dest / "ckpt" / "final.npz") as z:
        assert set(z.files) == {"w1", "b1", "w2", "b2"}
    (row,) = Store(proj / ".outlive").pulls([run_id])
    assert row.verified and row.manifest_sha256 == result["manifest_sha256"]
    assert row.dest == str(dest)
    # again: nothing new to move, the same manifest, still verified
    again = pull(Session.open(proj), run_id)
    assert again["ok"] and again["manifest_sha256"] == result["manifest_sha256"]


def test_roster_and_hashes_come_from_one_agent_that_ends_with_them(
    local_run: tuple[Path, str],
) -> None:
    """The pull's two manifest calls go to one agent process (one start on the box), which
    ends as soon as the hashes are in; a backend with its own manifest is asked directly."""
    import hashlib

    from outlive.lifecycle.pull import BoxManifests

    proj, run_id = local_run
    session = Session.open(proj)
    rec = session.store.resolve(run_id)
    backend = session.backend(session.cfg.target(rec.target))
    roots = [{"label": "ckpt", "path": rec.ckpt_dir}]
    with BoxManifests(backend) as box:
        roster = box.ask({"sets": [{"roots": roots, "sample": True}]}, timeout_s=60)
        assert box.channel is not None and box.channel.hello is not None
        agent = box.channel.proc
        hashed = box.last({"sets": [{"roots": roots, "hash": True}]}, 60)
        assert box.channel is None and agent.poll() is not None  # ended with the hashes
    (listed,) = roster["manifests"]
    (manifest,) = hashed["manifests"]
    assert [f["path"] for f in listed["files"]] == [f["path"] for f in manifest["files"]]
    assert all("sha256" not in f for f in listed["files"])
    for f in manifest["files"]:
        data = (Path(rec.ckpt_dir) / f["rel"]).read_bytes()
        assert f["sha256"] == hashlib.sha256(data).hexdigest() and f["size"] == len(data)

    class OwnManifest:  # a backend that builds its manifest its own way (a reader pod)
        def manifest(self, request: dict[str, object], *, timeout_s: float) -> dict[str, str]:
            return {"asked": str(request["x"])}

    with BoxManifests(OwnManifest()) as box:  # type: ignore[arg-type]
        assert box.ask({"x": 1}, timeout_s=1) == {"asked": "1"} and box.channel is None


def test_a_channel_opened_early_is_the_one_the_pull_uses(local_run: tuple[Path, str]) -> None:
    """The CLI starts opening the box's channel before it imports the rest of the pull; the
    pull asks its roster and hashes over that channel, which ends with the hashes."""
    from outlive.lifecycle.pull import BoxManifests

    proj, run_id = local_run
    session = Session.open(proj)
    assert BoxManifests.opening(session, "no-such-run", None) is None  # the pull says why
    box = BoxManifests.opening(session, run_id, None)
    assert box is not None and box._opening is not None
    seen: list[object] = []
    ask = box.ask

    def counted(request: dict[str, object], *, timeout_s: float) -> object:
        seen.append(box.channel)
        return ask(request, timeout_s=timeout_s)

    box.ask = counted  # type: ignore[method-assign]
    result = pull(session, run_id, PullOptions(dest=proj / "early"), box=box)
    assert result["ok"], result["verify"]["problems"]
    assert len(seen) == 2 and box.channel is None and box._opening is None
    # a box opened for another backend is not used: the pull makes its own
    other = Session.open(proj)
    stray = BoxManifests.opening(other, run_id, None)
    assert stray is not None and stray.backend is not session.backend("local")
    again = pull(session, run_id, PullOptions(dest=proj / "early"), box=stray)
    assert again["ok"] and stray._opening is not None  # never asked
    stray.close()
    assert stray.channel is None


def test_pull_cli_prints_one_json_document_and_verify_agrees(local_run: tuple[Path, str]) -> None:
    proj, run_id = local_run
    dest = proj / "elsewhere"
    out = subprocess.run(
        [OUTLIVE, "pull", run_id, "--to", str(dest), "--json"],
        cwd=proj, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)  # exactly one document
    assert doc["dest"] == str(dest) and doc["verify"]["ok"]
    for key in ("run_id", "name", "target", "manifest_sha256", "files", "size_bytes", "transfer"):
        assert key in doc
    out = subprocess.run([OUTLIVE, "verify", str(dest)], cwd=proj, capture_output=True, text=True)
    assert out.returncode == 0 and "match manifest" in out.stdout
    out = subprocess.run([OUTLIVE, "verify", str(proj)], cwd=proj, capture_output=True, text=True)
    assert out.returncode == 2 and "not a directory made by `outlive pull`" in out.stderr


def test_pull_with_bad_options_is_a_usage_error(local_run: tuple[Path, str]) -> None:
    proj, run_id = local_run
    with pytest.raises(UsageError):
        pull(Session.open(proj), run_id, PullOptions(retries=0))
    with pytest.raises(UsageError):
        pull(Session.open(proj), run_id, PullOptions(compress="maybe"))
    out = subprocess.run(
        [OUTLIVE, "pull", run_id, "--output", "/etc"], cwd=proj, capture_output=True, text=True
    )
    assert out.returncode == 2 and "relative to the workdir" in out.stderr


def test_down_on_the_local_target_is_a_usage_error(local_run: tuple[Path, str]) -> None:
    proj, _ = local_run
    out = subprocess.run([OUTLIVE, "down", "local"], cwd=proj, capture_output=True, text=True)
    assert out.returncode == 2 and "nothing to tear down" in out.stderr


class _BoxWithoutRsync(LocalTransport):
    """A stand-in transport for a box that has no rsync: its remote shell fails exactly as sh
    reports it there."""

    def rsync_argv(
        self, direction: Direction, here: str, there: str, opts: RsyncOptions
    ) -> list[str]:
        shell = ["sh", "-c", 'echo "sh: 1: rsync: not found" >&2; exit 127', "--"]
        return transport_rsync_argv(direction, here, there, opts, remote_shell=shell, host="box")

    def close(self) -> None:
        raise AssertionError("a missing rsync is not a link problem")


def test_a_box_without_rsync_is_named_and_not_retried(tmp_path: Path) -> None:
    unit = Unit("ckpt", "/box/d", tmp_path / "ckpt", ["a"], ["ckpt/a"], [1], compress=False)
    notes: list[str] = []
    transfer_unit(
        unit,
        tmp_path,
        _target(),
        _BoxWithoutRsync(),
        PullOptions(retries=5),
        lambda n: None,
        notes.append,
    )
    assert not unit.ok and len(unit.attempts) == 1
    assert unit.error is not None and "rsync is not installed on gpu" in unit.error
    assert "GEN3" in notes[0]
    assert (tmp_path / "ckpt").is_dir()  # made before the transfer (U13)


class _SenderSaysBrokenPipe(LocalTransport):
    """A transfer whose receiver died on a full disk without a word: only the sender's broken
    pipe and rsync's summary reach the output (what the tmpfs test sees now and then)."""

    def rsync_argv(
        self, direction: Direction, here: str, there: str, opts: RsyncOptions
    ) -> list[str]:
        said = (
            "echo 'rsync: [sender] write error: Broken pipe (32)'; "
            "echo 'rsync error: error in file IO (code 11) at receiver.c(657)'; exit 11"
        )
        return ["sh", "-c", said]


def test_a_disk_that_filled_is_named_even_where_rsync_only_says_broken_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outlive.lifecycle import transfer

    unit = Unit("ckpt", "/box/d", tmp_path / "ckpt", ["a"], ["ckpt/a"], [5 << 20], compress=False)
    notes: list[str] = []
    monkeypatch.setattr(transfer, "free_bytes", lambda _p: 1 << 20)  # 1 MiB left, 5 needed
    transfer_unit(
        unit, tmp_path, _target(), _SenderSaysBrokenPipe(), PullOptions(retries=5),
        lambda n: None, notes.append,
    )  # fmt: skip
    assert unit.disk_full and len(unit.attempts) == 1  # not retried
    assert "disk is full" in notes[0]
    # Room enough: the same failure is just a failure (rc 11 is not retried either)
    roomy = Unit("ckpt", "/box/d", tmp_path / "ckpt", ["a"], ["ckpt/a"], [5 << 20], compress=False)
    monkeypatch.setattr(transfer, "free_bytes", lambda _p: 1 << 40)
    transfer_unit(
        roomy, tmp_path, _target(), _SenderSaysBrokenPipe(), PullOptions(retries=5),
        lambda n: None, notes.append,
    )  # fmt: skip
    assert not roomy.disk_full and "not retried" in notes[-1]


def test_the_compression_sample_stops_at_4_kib_that_do_not_shrink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The roster is on the pull's critical path and deflate is slowest on bytes it cannot
    shrink: a file whose first 4 KiB do not shrink is not sampled further, one whose do is
    sampled over its first 16 KiB (the ratio U15's -z decision reads)."""
    import zlib

    from outlive.agent.box import manifests

    compressed: list[int] = []
    real = zlib.compress

    def spy(data: bytes, level: int = -1) -> bytes:
        compressed.append(len(data))
        return real(data, level)

    monkeypatch.setattr(zlib, "compress", spy)
    noise = tmp_path / "noise.bin"
    noise.write_bytes(os.urandom(1 << 20))
    text = tmp_path / "log.txt"
    text.write_bytes(b"step 1 loss 0.25 lr 3e-4\n" * 4000)
    short = tmp_path / "short.txt"
    short.write_bytes(b"x" * 5000)
    ratio = manifests._zsample(str(noise))
    assert ratio is not None and ratio >= manifests.SAMPLE_INCOMPRESSIBLE_RATIO
    assert compressed == [4096]
    ratio = manifests._zsample(str(text))
    assert ratio is not None and ratio < 0.1
    assert compressed == [4096, 4096, 16384]
    assert manifests._zsample(str(short)) == round(len(real(b"x" * 5000, 1)) / 5000, 3)
    assert manifests._zsample(str(tmp_path / "gone")) is None


def test_the_roster_samples_the_biggest_files_of_each_directory_and_still_judges_it(
    tmp_path: Path,
) -> None:
    """A directory of many files is judged by its SAMPLES_PER_GROUP biggest (the roster is on
    the pull's critical path: sampling 2,000 files took 0.27 s); each directory and the root's
    other files are judged apart, so a compressible directory still goes with -z."""
    from outlive.agent.box import manifests

    per = manifests.SAMPLES_PER_GROUP
    logs, shards = tmp_path / "logs", tmp_path / "shards"
    logs.mkdir()
    shards.mkdir()
    for i in range(per + 40):
        (logs / f"step-{i:04d}.txt").write_bytes(b"step 1 loss 0.25 lr 3e-4\n" * (200 + i))
        (shards / f"part-{i:04d}.bin").write_bytes(os.urandom(8192 + i))
    (tmp_path / "big-top.bin").write_bytes(os.urandom(1 << 16))
    roster = manifests.build_manifest(
        {"roots": [{"label": "ckpt", "path": str(tmp_path)}], "hash": False, "sample": True}
    )
    files = roster["files"]
    sampled = [f for f in files if f.get("zratio") is not None]
    for sub in ("logs/", "shards/"):
        mine = [f for f in files if f["rel"].startswith(sub)]
        took = [f for f in mine if f.get("zratio") is not None]
        assert len(mine) == per + 40 and len(took) == per
        assert min(f["size"] for f in took) >= max(f["size"] for f in mine if f not in took)
    assert any(f["rel"] == "big-top.bin" for f in sampled)
    # small directories ride with the rest of the root: the logs in one rsync with -z, the
    # shards and the top-level file in another without
    units = {u.label: u for u in plan_units(roster, tmp_path / "dest", "auto")}
    assert sorted(units) == ["ckpt", "ckpt (-z)"]
    assert units["ckpt (-z)"].compress and not units["ckpt"].compress
    assert {f.split("/")[0] for f in units["ckpt (-z)"].files} == {"logs"}
    assert {f.split("/")[0] for f in units["ckpt"].files} == {"shards", "big-top.bin"}


def test_a_lost_manifest_reply_is_asked_again_and_kept_and_named_in_the_record(
    local_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The box's hashes are kept here as soon as they arrive, while files still move; a reply
    lost on the way (a cut link) is asked for again, and then kept the same way: stored by
    its hash next to the data and named in the pull's record, before the verdict."""
    from outlive import verify as V
    from outlive.errors import TransportError
    from outlive.lifecycle import pull as pull_module

    proj, run_id = local_run
    lost: list[dict[str, object]] = []

    def cut(self: object, request: dict[str, object], timeout_s: float) -> object:
        lost.append(request)
        raise TransportError("the link dropped")

    monkeypatch.setattr(pull_module.BoxManifests, "last", cut)
    monkeypatch.setattr(pull_module, "backoff", lambda attempt: 0.0)
    notes: list[str] = []
    result = pull(Session.open(proj), run_id, PullOptions(dest=proj / "got"), on_note=notes.append)
    assert result["ok"], result["verify"]["problems"]
    assert len(lost) == 1 and any("asking again" in n for n in notes), notes
    dest = Path(result["dest"])
    info = json.loads((V.meta_dir(dest) / V.PULL_INFO).read_text())
    assert info["manifest_sha256"] == result["manifest_sha256"]
    assert V.load_manifest(dest, result["manifest_sha256"]).sha256 == result["manifest_sha256"]
    assert V.read_verified(dest) is not None


def test_a_pull_that_stops_does_not_wait_for_the_box_to_finish_hashing(
    local_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or any error) while files move: the box's hashing of a big tree (here 64 GiB,
    most of a minute) is not waited for; its agent is ended at once and nothing of its
    manifest is kept."""
    from outlive import verify as V
    from outlive.lifecycle import pull as pull_module

    proj, run_id = local_run
    session = Session.open(proj)
    ckpt = Path(session.store.resolve(run_id).ckpt_dir)
    with open(ckpt / "huge.bin", "wb") as f:
        f.truncate(64 << 30)  # sparse: no disk, but every byte is hashed
    agents: list[object] = []

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    real_last = pull_module.BoxManifests.last

    def last(
        self: pull_module.BoxManifests, request: dict[str, object], timeout_s: float
    ) -> object:
        assert self.channel is not None
        agents.append(self.channel.proc)
        return real_last(self, request, timeout_s)

    monkeypatch.setattr(pull_module, "check_free_space", lambda roster, dest: None)
    monkeypatch.setattr(pull_module, "move_all", interrupted)
    monkeypatch.setattr(pull_module.BoxManifests, "last", last)
    with pytest.raises(KeyboardInterrupt):
        pull(session, run_id, PullOptions(dest=proj / "got"))
    (agent,) = agents
    assert agent.poll() is not None  # type: ignore[attr-defined]
    assert not (V.meta_dir(proj / "got") / V.MANIFESTS_DIR).exists()


def test_a_proof_half_written_by_a_killed_pull_never_fails_the_next_one(
    local_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 while ``PULL_VERIFIED.json`` was being written left its temp file at the top of
    the tree, where every later pull counted it as an extra file and failed, forever. The temp
    file is made in ``.outlive/`` now, and one an older version left is not taken for data."""
    from outlive import verify as V

    proj, run_id = local_run
    dest = proj / "got"
    assert pull(Session.open(proj), run_id, PullOptions(dest=dest))["ok"]
    (dest / f".{V.VERIFIED_NAME}.tmp-4242").write_text("{")  # an older outlive, killed
    moved: list[tuple[str, str]] = []
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        moved.append((str(src), str(dst)))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    again = pull(Session.open(proj), run_id, PullOptions(dest=dest))
    assert again["ok"], again["verify"]["problems"]
    (src,) = [a for a, b in moved if b == str(dest / V.VERIFIED_NAME)]
    assert Path(src).parent == V.meta_dir(dest)  # a kill now leaves it out of the tree


def test_sizes_here_reads_each_directory_once_and_names_only_what_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from outlive.lifecycle.transfer import sizes_here

    (tmp_path / "ckpt" / "a").mkdir(parents=True)
    (tmp_path / "ckpt" / "a" / "x.bin").write_bytes(b"x" * 10)
    (tmp_path / "ckpt" / "top.bin").write_bytes(b"y" * 3)
    (tmp_path / "ckpt" / "link").symlink_to("a/x.bin")
    (tmp_path / "ckpt" / "file-not-dir").write_bytes(b"")
    paths = [f"ckpt/a/f{i}.bin" for i in range(100)] + [
        "ckpt/a/x.bin", "ckpt/top.bin", "ckpt/link", "ckpt/gone/z.bin", "ckpt/file-not-dir/q",
        "final.npz",
    ]  # fmt: skip
    listed: list[str] = []
    real = os.scandir

    def counted(path: str) -> Any:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counted)
    got = sizes_here(tmp_path, paths)
    assert got == {
        "ckpt/a/x.bin": 10,
        "ckpt/top.bin": 3,
        "ckpt/link": os.lstat(tmp_path / "ckpt" / "link").st_size,  # the link's own, as lstat
    }
    assert sorted(listed) == sorted(
        str(p)
        for p in (
            tmp_path / "ckpt" / "a", tmp_path / "ckpt", tmp_path / "ckpt" / "gone",
            tmp_path / "ckpt" / "file-not-dir", tmp_path,
        )
    )  # fmt: skip


def test_landed_files_are_hashed_in_batches_and_a_big_one_alone() -> None:
    from outlive.lifecycle.landed import BATCH_BYTES, BATCH_FILES, Batch

    tasks: list[list[tuple[str, int]]] = []
    batch = Batch(tasks.append)
    for i in range(BATCH_FILES + 3):
        batch.add(f"ckpt/logs/{i}.txt", 100)
    batch.add("ckpt/model.pt", BATCH_BYTES)  # big: a task of its own, at once
    batch.add("ckpt/a.bin", BATCH_BYTES // 2)
    assert [len(t) for t in tasks] == [BATCH_FILES, 1]
    assert tasks[1] == [("ckpt/model.pt", BATCH_BYTES)]
    batch.add("ckpt/b.bin", BATCH_BYTES // 2)  # the bytes fill a batch
    assert [len(t) for t in tasks] == [BATCH_FILES, 1, 5]
    batch.flush()
    batch.flush()  # nothing left: no empty task
    assert len(tasks) == 3
    batch.add("ckpt/last.txt", 1)
    batch.flush()
    assert tasks[-1] == [("ckpt/last.txt", 1)]
    every = [path for task in tasks for path, _ in task]
    assert len(every) == len(set(every)) == BATCH_FILES + 3 + 4
