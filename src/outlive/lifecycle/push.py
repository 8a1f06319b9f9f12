"""``push``: send the project to a box (rsync delta over the shared SSH master) and describe it by
a deploy manifest of content hashes, which the agent checks before any launch (U42).

What is sent: ``git ls-files`` (tracked + untracked, not ignored) in a git repo, otherwise a walk
of the tree that honours the top-level ``.gitignore``; then ``[project].exclude``; never
``.outlive/`` or ``.git/``. Shell scripts with CRLF line ends are refused before anything moves
(U26). The destination is created in the same round trip as the transfer (U13).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from outlive import wire
from outlive._hashing import hash_file
from outlive._shapes import replace, shape
from outlive.config import Config, Target
from outlive.errors import BoxError, TransportError, UsageError
from outlive.session import Session
from outlive.transport.base import Transport
from outlive.transport.files import RsyncOptions, tar_upload

T = TypeVar("T")

ALWAYS_EXCLUDED = (".outlive/", ".git/")
RSYNC_TIMEOUT_S = 600
_PROXY_ONLY_HOSTS = re.compile(r"(^|\.)ssh\.runpod\.io$")


@shape(frozen=True)
class PushResult:
    files: int
    size_bytes: int
    manifest: dict[str, dict[str, object]]
    method: str  # "rsync" | "tar"


def project_files(cfg: Config) -> list[str]:
    """Relative paths (posix) of the files a push sends, sorted."""
    root = cfg.project_dir
    listed = _git_files(root)
    if listed is None:
        listed = list(_walk(root, _read_gitignore(root)))
    patterns = [*ALWAYS_EXCLUDED, *cfg.exclude]
    return sorted(p for p in set(listed) if not _excluded(p, patterns) and (root / p).is_file())


def _git_files(root: Path) -> list[str] | None:
    try:
        proc = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return [p for p in proc.stdout.decode("utf-8", errors="surrogateescape").split("\0") if p]


def _read_gitignore(root: Path) -> list[str]:
    try:
        lines = (root / ".gitignore").read_text(errors="replace").splitlines()
    except OSError:
        return []
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def _walk(root: Path, ignore: list[str]) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        dirnames[:] = [d for d in dirnames if not _excluded(rel_dir + d + "/", ignore)]
        for name in filenames:
            rel = rel_dir + name
            if not _excluded(rel, ignore):
                yield rel


def _excluded(rel: str, patterns: Iterable[str]) -> bool:
    """gitignore-style match (no negation): 'dir/' matches directories only, a pattern with a
    '/' is anchored at the root, one without matches any path component; a matched directory
    excludes everything under it."""
    is_dir = rel.endswith("/")
    parts = rel.rstrip("/").split("/")
    for raw in patterns:
        pat = raw.strip()
        if not pat or pat.startswith(("#", "!")):
            continue
        dir_only = pat.endswith("/")
        anchored = "/" in pat.rstrip("/")
        pat = pat.strip("/")
        for k in range(1, len(parts) + 1):
            if dir_only and not (k < len(parts) or is_dir):
                continue
            subject = "/".join(parts[:k]) if anchored else parts[k - 1]
            if fnmatch.fnmatchcase(subject, pat):
                return True
    return False


def check_line_endings(root: Path, files: list[str]) -> None:
    """Refuse shell scripts saved with CRLF: bash reads `$'\\r': command not found` (U26)."""
    bad = [f for f in files if f.endswith(".sh") and b"\r\n" in (root / f).read_bytes()]
    if bad:
        raise UsageError(
            f"{', '.join(bad[:3])} {'has' if len(bad) == 1 else 'have'} Windows (CRLF) line "
            "endings, which break bash on the box (U26); convert with `dos2unix FILE` or "
            "`sed -i 's/\\r$//' FILE` and push again"
        )


def manifest(root: Path, files: list[str]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for rel in files:
        digest, size = hash_file(root / rel)
        out[rel] = {"size": size, "sha256": digest}
    return out


def push(session: Session, target: Target, *, skip_if_unchanged: bool = False) -> PushResult:
    """Sync the project to the target's workdir; return the manifest the launch will check.

    With ``skip_if_unchanged``, nothing is sent when the tree equals the last push to this
    target: the launch's manifest check on the box still proves the copy (and a mismatch there
    makes the caller push for real). A workdir on this machine (a cluster's shared filesystem
    reached by the local sbatch) is copied file by file."""
    cfg = session.cfg
    files = project_files(cfg)
    check_line_endings(cfg.project_dir, files)
    man = manifest(cfg.project_dir, files)
    size = sum(int(str(m["size"])) for m in man.values())
    if target.is_local:
        return PushResult(len(files), size, man, "none")
    stamp = _push_stamp(man, target)
    record = cfg.state_dir / "pushed" / f"{hashlib.sha256(target.name.encode()).hexdigest()[:16]}"
    if skip_if_unchanged and _read(record) == stamp:
        return PushResult(len(files), size, man, "unchanged")
    if target.connection.host and _PROXY_ONLY_HOSTS.search(
        target.connection.host.rsplit("@", 1)[-1]
    ):
        raise UsageError(
            f"{target.connection.host} is RunPod's basic SSH proxy, which carries no file "
            "transfer or remote commands (RP6); expose TCP port 22 on the pod and use its "
            "public IP and port as host"
        )
    agent = session.agent(target)
    transport = agent.transport
    if not transport.is_remote:
        return PushResult(len(files), size, sync_local(cfg, target), "copy")
    workdir = target.placement.workdir
    if "$" in workdir or workdir.startswith("~"):
        # rsync takes the path literally: let the box say what $HOME/$USER are (one round trip).
        workdir = agent.call("expand", {"paths": [workdir]})["paths"][0]
    method = _rsync(cfg.project_dir, files, transport, workdir)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(stamp)
    return PushResult(len(files), size, man, method)


def launch_deployed(
    session: Session,
    target: Target,
    transport: Transport,
    launch: Callable[[wire.LaunchRequest], T],
    request: wire.LaunchRequest,
) -> T:
    """Deploy the project to the target's workdir, then launch with the deploy manifest, which
    the box checks before starting anything (U42). Over a remote transport the push is skipped
    when the tree is unchanged; if the box's copy changed behind our back, push for real and
    launch once more. The embedded local target runs in the project itself: nothing to deploy."""
    if target.is_local:
        return launch(request)
    if not transport.is_remote:  # e.g. a local sbatch: copy into the shared workdir
        return launch(replace(request, deploy_manifest=sync_local(session.cfg, target)))
    pushed = push(session, target, skip_if_unchanged=True)
    request = replace(request, deploy_manifest=pushed.manifest)
    try:
        return launch(request)
    except BoxError as exc:
        if exc.kind != "deploy_mismatch" or pushed.method != "unchanged":
            raise
        push(session, target)
        return launch(request)


def sync_local(cfg: Config, target: Target) -> dict[str, dict[str, object]]:
    """Copy the project's files into a workdir on this machine (a cluster's shared filesystem)
    where they differ; returns the deploy manifest the agent checks before launching."""
    files = project_files(cfg)
    check_line_endings(cfg.project_dir, files)
    man = manifest(cfg.project_dir, files)
    dest = Path(os.path.expandvars(os.path.expanduser(target.placement.workdir))).absolute()
    if dest.resolve() == cfg.project_dir.resolve():
        return man
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"workdir {dest} of target {target.name!r} is not a directory")
    for rel in files:
        src, dst = cfg.project_dir / rel, dest / rel
        want = man[rel]
        if (
            dst.is_file()
            and dst.stat().st_size == want["size"]
            and hash_file(dst)[0] == want["sha256"]
        ):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
        os.close(fd)
        try:
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return man


def _push_stamp(man: dict[str, dict[str, object]], target: Target) -> str:
    import json

    body = json.dumps(
        [target.connection.host, target.placement.workdir, man], sort_keys=True
    ).encode()
    return hashlib.sha256(body).hexdigest()


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _rsync(root: Path, files: list[str], transport: Transport, workdir: str) -> str:
    dest = workdir.rstrip("/") or "/"
    # paths travel inside rsync's protocol; the destination is made in the same round trip (U13)
    opts = RsyncOptions(files_from="-", make_dest=True)
    argv = transport.rsync_argv("to_target", str(root) + "/", f"{dest}/", opts)
    listing = "\0".join(files).encode("utf-8", errors="surrogateescape")
    try:
        proc = subprocess.run(argv, input=listing, capture_output=True, timeout=RSYNC_TIMEOUT_S)
    except FileNotFoundError:
        raise TransportError(
            "rsync is not installed here; install it (apt install rsync)"
        ) from None
    except subprocess.TimeoutExpired:
        raise TransportError(
            f"push to {transport.name} did not finish in {RSYNC_TIMEOUT_S} s"
        ) from None
    if proc.returncode == 0:
        return "rsync"
    err = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 255 and ("command not found" in err or "rsync: not found" in err):
        _tar_stream(root, files, transport, dest)
        return "tar"
    failed = transport.failure(proc.returncode, proc.stderr)  # unreachable / host key / auth
    if failed is not None:
        raise failed
    last = err.strip().splitlines()[-1] if err.strip() else f"exit {proc.returncode}"
    raise TransportError(f"push to {transport.name} failed ({last}); nothing was launched")


def _tar_stream(root: Path, files: list[str], transport: Transport, dest: str) -> None:
    """rsync is missing on the box: stream a tar over the same channel instead."""
    done = tar_upload(transport, root, files, dest)
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", errors="replace").strip()
        raise TransportError(
            f"push to {transport.name} by tar failed ({err}); nothing was launched"
        )
