"""``push``: send the project to a box (rsync delta over the shared SSH master) and describe it by
a deploy manifest of content hashes, which the agent checks before any launch (U42).

What is sent: ``git ls-files`` (tracked + untracked, not ignored) in a git repo, otherwise a walk
of the tree that honours the top-level ``.gitignore``; then ``[project].exclude``; never
``.outlive/`` or ``.git/``. Shell scripts with CRLF line ends are refused before anything moves
(U26). The destination is created in the same round trip as the transfer (U13).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from outlive import wire
from outlive._hashing import hash_file
from outlive._shapes import replace, shape
from outlive.backends.base import Backend
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
    warnings: tuple[str, ...] = ()  # scripts that would break if run (CRLF, U26)


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


_SHELL_SUFFIXES = (".sh", ".bash")


def used_files(root: Path, commands: Iterable[Sequence[str]]) -> list[str]:
    """The project files a run's command names (``bash run.sh``, ``./train.py``), in order."""
    used: list[str] = []
    for argv in commands:
        for arg in argv:
            if not arg or arg.startswith("-") or "\x00" in arg or "\n" in arg:
                continue
            rel = posixpath.normpath(arg)
            if rel.startswith(("/", "../")) or rel in (".", "..") or rel in used:
                continue
            with contextlib.suppress(OSError, ValueError):
                if (root / rel).is_file():
                    used.append(rel)
    return used


def crlf_problem(root: Path, rel: str) -> str | None:
    """Why ``rel`` breaks on Linux because of Windows (CRLF) line endings, or None (U26).

    A shell script breaks on every line; any script whose ``#!`` line ends in CRLF breaks when
    run directly (the kernel looks for an interpreter named ``python\r``). Python itself reads
    CRLF source fine, so ``python train.py`` with CRLF endings is not a problem."""
    try:
        with (root / rel).open("rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return None
    if b"\r\n" not in head:
        return None
    first = head.split(b"\n", 1)[0]
    shell = rel.endswith(_SHELL_SUFFIXES) or (
        first.startswith(b"#!") and re.search(rb"\b(ba|da|z|k)?sh\b", first) is not None
    )
    if shell:
        return (
            f"{rel} has Windows (CRLF) line endings, which break bash on the box (U26); convert "
            f"it with `dos2unix {rel}` (or `sed -i 's/\\r$//' {rel}`) and add `*.sh text "
            "eol=lf` to .gitattributes so it stays fixed"
        )
    if first.startswith(b"#!") and first.endswith(b"\r"):
        interpreter = first[2:].strip().split()[-1].decode("utf-8", "replace")
        return (
            f"{rel} starts with a #! line that ends in CRLF, so the box looks for an interpreter "
            f"named '{interpreter}\\r' (U26); convert it with `dos2unix {rel}`, or run it as "
            f"`python {rel}`"
        )
    return None


def check_line_endings(root: Path, commands: Iterable[Sequence[str]]) -> None:
    """Refuse a run whose own scripts have Windows line endings that break on the box (U26).
    Only the files the command names are checked: a vendored CRLF script it never runs is not
    its business (``outlive push`` warns about those instead)."""
    problems = [p for p in (crlf_problem(root, f) for f in used_files(root, commands)) if p]
    if problems:
        more = f" (and {len(problems) - 1} more file)" if len(problems) > 1 else ""
        raise UsageError(problems[0] + more)


def crlf_warnings(root: Path, files: list[str]) -> list[str]:
    """One sentence per shell script in the project that would break on the box if run."""
    return [p for p in (crlf_problem(root, f) for f in files if f.endswith(_SHELL_SUFFIXES)) if p]


def manifest(root: Path, files: list[str]) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for rel in files:
        digest, size = hash_file(root / rel)
        out[rel] = {"size": size, "sha256": digest}
    return out


def push(
    session: Session,
    target: Target,
    *,
    skip_if_unchanged: bool = False,
    commands: Sequence[Sequence[str]] = (),
    checksum: bool = False,
) -> PushResult:
    """Sync the project to the target's workdir; return the manifest the launch will check.

    With ``skip_if_unchanged``, nothing is sent when the tree equals the last push to this
    target: the launch's manifest check on the box still proves the copy (and a mismatch there
    makes the caller push for real). A workdir on this machine (a cluster's shared filesystem
    reached by the local sbatch) is copied file by file. With ``commands`` (a launch), the files
    they run are checked for CRLF endings first; without, CRLF shell scripts are warnings. With
    ``checksum`` (a push again after the box's copy was found to differ), rsync compares every
    file's contents: its quick check skips a file changed in place with its size and mtime."""
    cfg = session.cfg
    files = project_files(cfg)
    check_line_endings(cfg.project_dir, commands)
    warnings = () if commands else tuple(crlf_warnings(cfg.project_dir, files))
    man = manifest(cfg.project_dir, files)
    size = sum(int(str(m["size"])) for m in man.values())
    if target.is_local:
        return PushResult(len(files), size, man, "none", warnings)
    stamp = _push_stamp(man, target)
    record = cfg.state_dir / "pushed" / f"{hashlib.sha256(target.name.encode()).hexdigest()[:16]}"
    if skip_if_unchanged and _read(record) == stamp:
        return PushResult(len(files), size, man, "unchanged", warnings)
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
        return PushResult(len(files), size, sync_local(cfg, target), "copy", warnings)
    workdir = target.placement.workdir
    if "$" in workdir or workdir.startswith("~"):
        # rsync takes the path literally: let the box say what $HOME/$USER are (one round trip).
        workdir = agent.call("expand", {"paths": [workdir]})["paths"][0]
    method = _rsync(cfg.project_dir, files, transport, workdir, checksum)
    try:  # only a shortcut for the next launch: without it, that launch pushes again
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(stamp)
    except OSError:
        with contextlib.suppress(OSError):
            record.unlink()  # never a cut-short stamp (it would only mismatch, but it is junk)
    return PushResult(len(files), size, man, method, warnings)


def launch_deployed(
    session: Session,
    target: Target,
    backend: Backend,
    launch: Callable[[wire.LaunchRequest], T],
    request: wire.LaunchRequest,
) -> T:
    """Deploy the project to the target's workdir, then launch with the deploy manifest, which
    the box checks before starting anything (U42). Over a remote transport the push is skipped
    when the tree is unchanged; if the box's copy changed behind our back, push for real and
    launch once more. The embedded local target runs in the project itself: nothing to deploy.
    A backend that deploys with the launch (Kubernetes: the tree travels in a ConfigMap) gets
    the manifest of the files to carry, and nothing is pushed."""
    commands = [request.command] + [c["command"] for c in request.cells or ()]
    if target.is_local:
        check_line_endings(session.cfg.project_dir, commands)
        return launch(request)
    if backend.deploys_with_launch:
        files = project_files(session.cfg)
        check_line_endings(session.cfg.project_dir, commands)
        return launch(replace(request, deploy_manifest=manifest(session.cfg.project_dir, files)))
    transport = backend.transport
    if not transport.is_remote:  # e.g. a local sbatch: copy into the shared workdir
        deployed = sync_local(session.cfg, target, commands)
        return launch(replace(request, deploy_manifest=deployed))
    pushed = push(session, target, skip_if_unchanged=True, commands=commands)
    request = replace(request, deploy_manifest=pushed.manifest)
    try:
        return launch(request)
    except BoxError as exc:
        if exc.kind != "deploy_mismatch":
            raise
        # The box's copy changed behind the last push, or in a way rsync's quick check (size and
        # mtime) cannot see: push again comparing contents, once.
        push(session, target, commands=commands, checksum=True)
        return launch(request)


def sync_local(
    cfg: Config, target: Target, commands: Sequence[Sequence[str]] = ()
) -> dict[str, dict[str, object]]:
    """Copy the project's files into a workdir on this machine (a cluster's shared filesystem)
    where they differ; returns the deploy manifest the agent checks before launching."""
    files = project_files(cfg)
    check_line_endings(cfg.project_dir, commands)
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


def _rsync(
    root: Path, files: list[str], transport: Transport, workdir: str, checksum: bool = False
) -> str:
    dest = workdir.rstrip("/") or "/"
    # paths travel inside rsync's protocol; the destination is made in the same round trip (U13)
    opts = RsyncOptions(files_from="-", make_dest=True, checksum=checksum)
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
