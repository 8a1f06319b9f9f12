"""The bundle that travels to a box: the agent (the ``box/`` package at the bundle root), the wire
module both sides agree on (``outlive/wire.py``) and the job library (the stdlib-only part of
outlive a job imports: ``Checkpointer``, ``progress``). It is named by its content hash, so a box
never runs stale code (U42) and nothing is installed there; the agent puts the bundle root on the
job's PYTHONPATH."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # .../outlive


def bundle_files() -> list[tuple[str, Path]]:
    """(path inside the bundle, source file) for every file of the bundle."""
    agent = _PACKAGE / "agent" / "box"
    files = [(f"box/{src.name}", src) for src in sorted(agent.glob("*.py"))]
    for name in ("__init__.py", "_shapes.py", "errors.py", "wire.py", "py.typed"):
        files.append((f"outlive/{name}", _PACKAGE / name))
    for src in sorted((_PACKAGE / "ckpt").rglob("*.py")):
        files.append((f"outlive/{src.relative_to(_PACKAGE).as_posix()}", src))
    return files


@lru_cache(maxsize=1)
def bundle_hash() -> str:
    h = hashlib.sha256()
    for rel, src in bundle_files():
        h.update(rel.encode() + b"\0" + src.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def materialize(root: Path) -> Path:
    """Write the bundle under ``root/<hash>/`` once (atomically); return that directory."""
    dest = root / bundle_hash()
    if dest.is_dir():
        return dest
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=root))
    try:
        for rel, src in bundle_files():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / rel)
        os.replace(tmp, dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not dest.is_dir():  # another process won the race: its copy is identical
            raise
    return dest


def tarball() -> bytes:
    """The bundle as a deterministic gzip tar stream (for upload over the ssh channel)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        for rel, src in bundle_files():
            data = src.read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


_ZIPAPP_MAIN = (
    b"# outlive's agent as a zipapp (a Kubernetes pod runs `python3 agent.pyz k8s-attempt ...`)\n"
    b"import sys\nfrom box.main import main\nsys.exit(main(sys.argv))\n"
)


@lru_cache(maxsize=1)
def zipapp() -> bytes:
    """The bundle as a runnable zipapp (``python3 agent.pyz VERB``), deterministic and deflated:
    it travels in a ConfigMap, whose size is capped at 1 MiB. The job imports the job library
    from it too (zipimport: the bundle is pure Python)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        entries = [("__main__.py", _ZIPAPP_MAIN)]
        entries += [(rel, src.read_bytes()) for rel, src in bundle_files()]
        for rel, data in entries:
            info = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()
