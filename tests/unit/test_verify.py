"""outlive.verify: a pulled tree matches its manifest exactly and every checkpoint loads.

The manifests here are made by the box agent's own code
(``outlive.agent.box.manifests.build_manifest``) over real files, exactly as ``outlive pull`` gets
them, so the two sides' canonical forms are checked against each other too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from outlive import verify as V
from outlive.agent.box import common as box_common
from outlive.agent.box import manifests as box_manifests
from outlive.ckpt import Checkpointer
from outlive.errors import UsageError
from outlive.verify import tree as tree_mod

HOSTILE = ["a b.bin", "q'uote\".bin", "new\nline.bin", "$(x).bin", "ünï.bin"]


class NotATensor:
    """A custom class: torch.load(weights_only=True) refuses to unpickle it."""

    def __init__(self) -> None:
        self.x = 1


def _box_manifest(roots: list[tuple[str, Path]], store: Path | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "roots": [{"label": label, "path": str(path)} for label, path in roots],
        "hash": True,
    }
    if store is not None:
        spec["store_dir"] = str(store)
    return box_manifests.build_manifest(spec)


def _pulled(tmp_path: Path, src: Path) -> tuple[Path, V.Manifest]:
    """``src`` on the "box", copied into a pulled tree under ``ckpt/`` with its manifest."""
    reply = _box_manifest([("ckpt", src)])
    manifest = V.Manifest.from_reply(reply)
    dest = tmp_path / "pulled"
    # what rsync brings: the manifest's files (an in-flight temp file is not one of them)
    shutil.copytree(src, dest / "ckpt", symlinks=True, ignore=shutil.ignore_patterns(".*.tmp-*"))
    V.store_manifest(dest, manifest)
    V.write_json_atomic(
        dest / V.META_DIR / V.PULL_INFO,
        {"run_id": "r1", "name": "n", "target": "box", "manifest_sha256": manifest.sha256},
    )
    return dest, manifest


def _npz(path: Path, **arrays: Any) -> None:
    np.savez(path, **arrays)


def _safetensors(tensors: dict[str, tuple[str, list[int], bytes]], extra: bytes = b"") -> bytes:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + data + extra


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """A checkpoint directory as a run leaves it: outlive checkpoints, an npz, hostile names,
    a subdirectory, a symlink and an in-flight temp file (which is not part of the results)."""
    d = tmp_path / "box" / "durable" / "run"
    d.mkdir(parents=True)
    ckpt = Checkpointer(d, keep_last=None, handle_signals=False)
    for step in (10, 20):
        ckpt.save({"w": np.arange(4.0) * step, "step": step}, step=step)
    ckpt.close()
    _npz(d / "final.npz", w=np.ones((3, 3)))
    for name in HOSTILE:
        (d / name).write_bytes(name.encode() * 100)
    (d / "sub").mkdir()
    (d / "sub" / "metrics.json").write_text('{"loss": 0.1}')
    (d / "latest").symlink_to("step-000000000020.ckpt")
    (d / ".step-000000000030.ckpt.tmp-123-abcd").write_bytes(b"half")
    return d


def test_agent_and_client_build_the_same_canonical_manifest(results: Path) -> None:
    reply = _box_manifest([("ckpt", results)])
    manifest = V.Manifest.from_reply(reply)
    assert manifest.sha256 == reply["sha256"]
    assert box_manifests.manifest_canonical(
        [{"label": "ckpt", "path": str(results)}],
        [e.as_doc() for e in manifest.entries.values()],
    ) == V.canonical_bytes(
        [{"label": "ckpt", "path": str(results)}],
        [e.as_doc() for e in manifest.entries.values()],
    )
    assert "ckpt/.step-000000000030.ckpt.tmp-123-abcd" not in manifest.entries  # in flight
    assert manifest.entries["ckpt/latest"].link == "step-000000000020.ckpt"
    assert {f"ckpt/{n}" for n in HOSTILE} <= set(manifest.entries)


def test_manifest_is_named_by_its_own_hash_and_never_rewritten(
    tmp_path: Path, results: Path
) -> None:
    store = tmp_path / "run-dir"
    reply = _box_manifest([("ckpt", results)], store=store)
    stored = Path(reply["stored"])
    assert stored.name == reply["sha256"] + ".json"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == reply["sha256"]
    assert stored.stat().st_mode & 0o222 == 0  # read-only
    again = _box_manifest([("ckpt", results)], store=store)
    assert again["sha256"] == reply["sha256"] and again["stored"] == reply["stored"]
    (results / "new.txt").write_text("x")
    assert _box_manifest([("ckpt", results)])["sha256"] != reply["sha256"]
    parsed = V.Manifest.from_bytes(stored.read_bytes(), name=reply["sha256"])
    assert parsed.sha256 == reply["sha256"]


def test_damaged_manifest_bytes_are_refused(results: Path) -> None:
    manifest = V.Manifest.from_reply(_box_manifest([("ckpt", results)]))
    data = bytearray(manifest.canonical())
    data[40] ^= 1
    with pytest.raises(UsageError, match="damaged"):
        V.Manifest.from_bytes(bytes(data), name=manifest.sha256)


def test_an_exact_copy_verifies_and_loads_every_checkpoint(tmp_path: Path, results: Path) -> None:
    dest, manifest = _pulled(tmp_path, results)
    report = V.verify_tree(dest, manifest)
    assert report.ok, report.problems
    loads = {r.path: r.load for r in report.files if r.load}
    assert loads == {
        "ckpt/step-000000000010.ckpt": "outlive-ckpt",
        "ckpt/step-000000000020.ckpt": "outlive-ckpt",
        "ckpt/final.npz": "npz",
    }
    assert all(r.load_ok for r in report.files if r.load)


def _flip(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "name", "words"),
    [
        ("flip", "ckpt/sub/metrics.json", "SHA-256 differs"),
        ("flip", "ckpt/q'uote\".bin", "SHA-256 differs"),
        ("missing", "ckpt/final.npz", "missing here"),
        ("extra", "ckpt/sub/stray.txt", "extra file"),
        ("extra", "ckpt/new\nfile", "extra file"),
        ("truncate", "ckpt/step-000000000010.ckpt", "bytes here"),
        ("relink", "ckpt/latest", "links to"),
    ],
)
def test_verify_fails_naming_the_file(
    tmp_path: Path, results: Path, damage: str, name: str, words: str
) -> None:
    dest, manifest = _pulled(tmp_path, results)
    path = dest / name
    if damage == "flip":
        _flip(path)
    elif damage == "missing":
        path.unlink()
    elif damage == "extra":
        path.write_text("not on the box")
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:-5])
    elif damage == "relink":
        path.unlink()
        path.symlink_to("step-000000000010.ckpt")
    report = V.verify_tree(dest, manifest)
    assert not report.ok
    assert any(p.startswith(name) and words in p for p in report.problems), report.problems
    assert len(report.problems) == 1


@pytest.mark.parametrize("which", ["outlive-ckpt", "npz", "npy", "safetensors", "torch"])
def test_a_checkpoint_that_does_not_load_fails_even_when_its_hash_matches(
    tmp_path: Path, which: str
) -> None:
    """The box itself holds a broken checkpoint: the bytes arrive intact, the load fails."""
    src = tmp_path / "box"
    src.mkdir()
    if which == "outlive-ckpt":
        ckpt = Checkpointer(src, keep_last=None, handle_signals=False)
        ckpt.save({"w": np.arange(1000.0)}, step=5)
        ckpt.close()
        name = "step-000000000005.ckpt"
        _flip(src / name)
    elif which == "npz":
        name = "final.npz"
        _npz(src / name, w=np.arange(1000.0))
        (src / name).write_bytes((src / name).read_bytes()[:-30])
    elif which == "npy":
        name = "w.npy"
        np.save(src / name, np.arange(1000.0))
        (src / name).write_bytes((src / name).read_bytes()[:-8])
    elif which == "safetensors":
        name = "model.safetensors"
        (src / name).write_bytes(_safetensors({"w": ("F32", [4], b"\0" * 12)}))
    else:
        pytest.importorskip("torch")
        name = "weights.pt"
        (src / name).write_bytes(b"PK\x03\x04 this is no torch file")
    dest, manifest = _pulled(tmp_path, src)
    report = V.verify_tree(dest, manifest)
    assert not report.ok
    (problem,) = report.problems
    assert problem.startswith(f"ckpt/{name}: checkpoint does not load as {which}"), problem


def test_renamed_outlive_checkpoint_still_loads(tmp_path: Path) -> None:
    src = tmp_path / "box"
    ckpt = Checkpointer(src, keep_last=None, handle_signals=False)
    ckpt.save({"w": [1, 2, 3]}, step=7)
    ckpt.close()
    os.replace(src / "step-000000000007.ckpt", src / "best.ckpt")

    def whole(self: Path) -> bytes:
        raise AssertionError(f"{self} read whole into memory")

    with pytest.MonkeyPatch.context() as mp:  # streamed, never read whole (a 20 GB file)
        mp.setattr(Path, "read_bytes", whole)
        assert V.check_load(src / "best.ckpt") == ("outlive-ckpt", True, None)
    _flip(src / "best.ckpt")
    kind, ok, detail = V.check_load(src / "best.ckpt")
    assert (kind, ok) == ("outlive-ckpt", False) and detail


def test_torch_files_load_with_weights_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    good = tmp_path / "model.pt"
    torch.save({"w": torch.arange(6.0)}, good)
    assert V.check_load(good) == ("torch", True, None)

    bad = tmp_path / "pickled.pth"
    torch.save({"obj": NotATensor()}, bad)
    kind, ok, detail = V.check_load(bad)
    assert (kind, ok) == ("torch", False) and detail


def test_lightning_style_ckpt_is_loaded_as_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "epoch=1.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, path)
    assert V.check_load(path) == ("torch", True, None)


def test_real_safetensors_files_parse(tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    path = tmp_path / "model.safetensors"
    st.save_file(
        {
            "a": np.arange(6, dtype=np.float32).reshape(2, 3),
            "b": np.zeros((0,), dtype=np.int64),
            "c": np.ones(5, dtype=np.float16),
        },
        str(path),
    )
    assert V.check_safetensors(path) is None


def _raw(header: dict[str, Any], data: bytes) -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


def _u8(begin: int, end: int) -> dict[str, Any]:
    return {"dtype": "U8", "shape": [end - begin], "data_offsets": [begin, end]}


@pytest.mark.parametrize(
    ("blob", "words"),
    [
        (_safetensors({"w": ("F32", [2], b"\0" * 8)}), None),
        (_safetensors({"w": ("BF16", [2, 2], b"\0" * 8), "v": ("U8", [3], b"abc")}), None),
        (_safetensors({"w": ("F4", [3], b"\0" * 2)}), None),
        (_safetensors({"w": ("F32", [3], b"\0" * 8)}), "expected 12"),
        (_safetensors({"w": ("F32", [2], b"\0" * 8)}, extra=b"junk"), "belong to none"),
        (_raw({"a": _u8(0, 4), "b": _u8(2, 6)}, b"x" * 6), "overlap"),
        (_raw({"a": _u8(0, 2), "b": _u8(4, 6)}, b"x" * 6), "gap"),
        (_raw({"a": _u8(0, 4)}, b"x" * 2), "outside"),
        (_raw({"a": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b""), "malformed"),
        (_raw({"__metadata__": {"k": 1}}, b""), "__metadata__"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00{}", "claims 16 bytes"),
        (b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "not a JSON object"),
        (b"\x02\x00\x00\x00\x00\x00\x00\x00\xff\xfe", "not JSON"),
        (b"\x01\x00", "too short"),
    ],
)
def test_safetensors_header_checks(tmp_path: Path, blob: bytes, words: str | None) -> None:
    path = tmp_path / "t.safetensors"
    path.write_bytes(blob)
    problem = V.check_safetensors(path)
    if words is None:
        assert problem is None
    else:
        assert problem is not None and words in problem, problem


def test_unknown_files_are_checked_by_hash_only(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"\0" * 10)
    assert V.check_load(path) == (None, None, None)


def test_verify_dir_records_a_pass_and_moves_a_stale_record_aside(
    tmp_path: Path, results: Path
) -> None:
    dest, manifest = _pulled(tmp_path, results)
    report = V.verify_dir(dest)
    assert report.ok
    record = json.loads((dest / V.VERIFIED_NAME).read_text())
    assert record["manifest_sha256"] == manifest.sha256
    assert {f["path"] for f in record["files"]} == set(manifest.entries)
    assert record["verified_at"] == report.checked_at

    _flip(dest / "ckpt" / "final.npz", 100)
    report = V.verify_dir(dest)
    assert not report.ok and any("ckpt/final.npz" in p for p in report.problems)
    assert not (dest / V.VERIFIED_NAME).exists()
    assert list((dest / V.META_DIR / "previous").glob("PULL_VERIFIED.*.failed.json"))


def test_verify_dir_refuses_a_directory_pull_did_not_make(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a directory made by `outlive pull`"):
        V.verify_dir(tmp_path)
    with pytest.raises(UsageError, match="not a directory"):
        V.verify_dir(tmp_path / "nope")


def test_results_computed_during_the_transfer_are_reused_only_if_unchanged(
    tmp_path: Path, results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, manifest = _pulled(tmp_path, results)
    known = {p: V.observe_file(dest, p) for p in manifest.entries}
    hashed: list[str] = []
    real = tree_mod._sha256_of
    monkeypatch.setattr(tree_mod, "_sha256_of", lambda p: hashed.append(str(p)) or real(p))
    assert V.verify_tree(dest, manifest, known=known).ok
    assert hashed == []  # nothing hashed twice
    # The file changes after it was observed (size and mtime move): it is looked at again.
    target = dest / "ckpt" / "sub" / "metrics.json"
    target.write_text('{"loss": 0.2, "more": 1}')
    report = V.verify_tree(dest, manifest, known=known)
    assert [p.split(":")[0] for p in report.problems] == ["ckpt/sub/metrics.json"]
    assert hashed == []  # looked at again: its new size differs, which needs no hash


def test_a_file_replaced_at_the_same_size_and_mtime_is_hashed_again(
    tmp_path: Path, results: Path
) -> None:
    dest, manifest = _pulled(tmp_path, results)
    known = {p: V.observe_file(dest, p) for p in manifest.entries}
    # Another file put in its place (as rsync renames one in), same size, same mtime: the hash
    # taken earlier is not of these bytes, so it is not reused.
    target = dest / "ckpt" / "sub" / "metrics.json"
    before = target.stat()
    other = target.with_name("metrics.json.new")
    other.write_bytes(bytes(b ^ 1 for b in target.read_bytes()))
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(other, target)
    assert (target.stat().st_size, target.stat().st_mtime_ns) == (
        before.st_size,
        before.st_mtime_ns,
    )
    report = V.verify_tree(dest, manifest, known=known)
    assert [p.split(":")[0] for p in report.problems] == ["ckpt/sub/metrics.json"]
    assert "SHA-256 differs" in report.problems[0]


def test_non_utf8_names_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "box"
    src.mkdir()
    raw = os.fsencode(str(src)) + b"/caf\xe9.bin"
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    dest, manifest = _pulled(tmp_path, src)
    assert V.verify_tree(dest, manifest).ok
    again = V.Manifest.from_bytes(manifest.canonical(), name=manifest.sha256)
    assert set(again.entries) == set(manifest.entries)


def test_a_single_file_root_and_a_missing_root(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "metrics.csv").write_text("step,loss\n1,0.5\n")
    reply = _box_manifest([("out/metrics.csv", work / "metrics.csv"), ("out/none", work / "none")])
    kinds = {r["label"]: r["kind"] for r in reply["roots"]}
    assert kinds == {"out/metrics.csv": "file", "out/none": "missing"}
    assert [f["path"] for f in reply["files"]] == ["out/metrics.csv"]
    assert reply["files"][0]["rel"] == ""


def test_overlapping_roots_are_refused(tmp_path: Path) -> None:
    with pytest.raises(box_common.AgentError, match="overlap"):
        _box_manifest([("out/a", tmp_path), ("out/a/b", tmp_path)])
    with pytest.raises(box_common.AgentError, match="relative"):
        _box_manifest([("/abs", tmp_path)])


def test_zip_crc_damage_inside_an_npz_is_caught(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        arr = io.BytesIO()
        np.save(arr, np.arange(100.0))
        z.writestr("w.npy", arr.getvalue())
    data = bytearray(buf.getvalue())
    data[200] ^= 0xFF  # inside the stored array: the CRC no longer matches
    path = tmp_path / "x.npz"
    path.write_bytes(bytes(data))
    kind, ok, detail = V.check_load(path)
    assert (kind, ok) == ("npz", False) and detail


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (4, 3), (64, 8)])
def test_the_box_hashes_on_every_core_but_one_which_the_transfer_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    for i in range(12):
        (tmp_path / f"part-{i}.bin").write_bytes(os.urandom(1000 + i))
    used: list[int] = []
    real = box_manifests._hash_all

    def counted(paths: list[str], workers: int) -> Any:
        used.append(workers)
        return real(paths, workers)

    monkeypatch.setattr(box_manifests, "_cores", lambda: cores)
    monkeypatch.setattr(box_manifests, "_hash_all", counted)
    reply = _box_manifest([("ckpt", tmp_path)])
    assert used == [threads]
    assert len(reply["files"]) == 12
    assert all(len(f["sha256"]) == 64 for f in reply["files"])


def test_the_box_counts_the_cores_a_cgroup_quota_and_its_affinity_allow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this system: the box counts every core")
    mine = len(os.sched_getaffinity(0))
    monkeypatch.setattr(box_manifests, "thread_count", lambda: None)
    assert box_manifests._cores() == mine
    monkeypatch.setattr(box_manifests, "thread_count", lambda: 1)  # a quota of one core
    assert box_manifests._cores() == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})  # pinned to one core
    monkeypatch.setattr(box_manifests, "thread_count", lambda: None)
    assert box_manifests._cores() == 1
