"""Kubernetes v1.20 binaries for the k8s testbed, built from Debian's source package and cached.

No registry reachable here ships kube binaries, but Debian's *source* package carries the whole
tree with its vendor/ directory (TESTBED.md). ``ensure_binaries()`` (``python -m outlive.testing
k8s build``) does, unless a complete cache exists:

1. a ``deb-src`` source for the running suite, as a deb822 ``.sources`` file (a plain ``deb-src``
   line would clash with the ``Signed-By`` of Debian's own ``debian.sources``);
2. ``apt-get install golang-go etcd-server dpkg-dev`` and ``apt-get source kubernetes``;
3. ``make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubectl"``
   with ``GOPATH`` pointing at a symlink in the tree and ``CGO_ENABLED=0`` (~8-11 min on 2 cores);
4. the binaries copied to ``~/.cache/outlive/k8s/<debian source version>/bin/`` through a
   temporary directory renamed into place, so a cache dir is complete or absent.

One build at a time per cache (a lock file); a second caller waits for it. kubectl comes from the
same tree because the testbed's server is v1.20 and kubectl supports one minor version of skew.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from outlive.testing._errors import TestbedError, TestbedUnavailable

__all__ = [
    "BINARIES",
    "BUILD_WAIT_S",
    "cache_root",
    "cached_bin_dir",
    "deb_src_sources",
    "ensure_binaries",
    "has_deb_src",
    "wait_for_binaries",
]

BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
BUILD_WAIT_S = 1800.0  # how long a caller waits for a build under way (~8-11 min on 2 cores)
_APT_PACKAGES = ("golang-go", "etcd-server", "dpkg-dev")
_SOURCES_FILE = Path("/etc/apt/sources.list.d/outlive-deb-src.sources")
_DSC_RE = re.compile(r"kubernetes_(.+)\.dsc")


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/outlive/k8s`` (``~/.cache/outlive/k8s``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "outlive" / "k8s"


def cached_bin_dir() -> Path | None:
    """The bin dir of the newest complete cached build, or None."""
    root = cache_root()
    if not root.is_dir():
        return None
    found = [
        d / "bin"
        for d in sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        if not d.name.startswith(".") and all(os.access(d / "bin" / b, os.X_OK) for b in BINARIES)
    ]
    return found[0] if found else None


@contextlib.contextmanager
def _build_lock(wait: bool = True) -> Iterator[bool]:
    cache_root().mkdir(parents=True, exist_ok=True)
    with open(cache_root() / ".build.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True


def wait_for_binaries(timeout_s: float = BUILD_WAIT_S) -> Path:
    """The cached bin dir; while a build holds the lock, wait for it (up to ``timeout_s``).
    Raises TestbedUnavailable when there is no cache and no build under way."""
    deadline = time.monotonic() + timeout_s
    while True:
        with _build_lock(wait=False) as free:
            found = cached_bin_dir()
            if found:
                return found
            if free:
                raise TestbedUnavailable(
                    "The k8s testbed needs Kubernetes v1.20 binaries, not cached in "
                    f"{cache_root()}; build them with `python -m outlive.testing k8s build` "
                    "(root, ~11 min on 2 cores)."
                )
        if time.monotonic() > deadline:
            raise TestbedError(f"The k8s binaries build did not finish within {timeout_s:.0f} s.")
        time.sleep(2.0)


def ensure_binaries(*, tree: Path | None = None, log: Path | None = None) -> Path:
    """The cached bin dir, building it first when missing (from ``tree``, an unpacked
    ``apt-get source kubernetes`` tree, when given: only what it lacks is compiled)."""
    found = cached_bin_dir()
    if found:
        return found
    with _build_lock():
        found = cached_bin_dir()  # another process may have built it while we waited
        if found:
            return found
        out = open(log, "a") if log else sys.stderr  # noqa: SIM115
        try:
            return _build(tree, out)
        finally:
            if log:
                out.close()


def _build(tree: Path | None, out: TextIO) -> Path:
    if os.geteuid() != 0:
        raise TestbedUnavailable("Building the k8s binaries installs Debian packages; run as root.")
    root = cache_root()
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        if tree is None:
            _apt_setup(out)
            _sh(["apt-get", "source", "-q", "kubernetes"], cwd=work, out=out)
            trees = [p for p in work.iterdir() if p.is_dir() and p.name.startswith("kubernetes-")]
            if len(trees) != 1:
                raise TestbedError(f"`apt-get source kubernetes` left no single tree in {work}.")
            tree = trees[0]
        version = source_version(tree)
        gopath = tree / ".go"
        link = gopath / "src" / "k8s.io" / "kubernetes"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to("../../..")
        env = dict(os.environ, GOPATH=str(gopath), CGO_ENABLED="0")
        what = " ".join(f"cmd/{b}" for b in BINARIES)
        _sh(["make", f"WHAT={what}"], cwd=tree, out=out, env=env)
        staged = work / "staged"
        (staged / "bin").mkdir(parents=True)
        for b in BINARIES:
            shutil.copy2(tree / "_output" / "bin" / b, staged / "bin" / b)
        final = root / version
        if final.exists():
            shutil.rmtree(final)  # incomplete (cached_bin_dir said so)
        os.rename(staged, final)
        return final / "bin"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def source_version(tree: Path) -> str:
    """The Debian source version (``1.20.5+really1.20.2-1.1+deb12u1``) of an unpacked tree."""
    dsc = [
        m.group(1) for p in tree.parent.glob("kubernetes_*.dsc") if (m := _DSC_RE.fullmatch(p.name))
    ]
    if len(dsc) == 1:
        return dsc[0]
    changelog = (tree / "debian" / "changelog").read_text().splitlines()[0]
    m = re.match(r"\S+ \(([^)]+)\)", changelog)
    if not m:
        raise TestbedError(f"Cannot read the source version from {tree}/debian/changelog.")
    return m.group(1)


def _apt_setup(out: TextIO) -> None:
    """deb-src for this suite (unless some sources file has one), then the build's packages."""
    if not has_deb_src():
        codename = _os_release().get("VERSION_CODENAME", "bookworm")
        _SOURCES_FILE.write_text(deb_src_sources(codename))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    _sh(["apt-get", "update", "-q"], out=out, env=env)
    _sh(["apt-get", "install", "-y", "-q", *_APT_PACKAGES], out=out, env=env)


def deb_src_sources(codename: str) -> str:
    """A deb822 ``.sources`` file for Debian's source packages of suite CODENAME."""
    return (
        "# Added by outlive.testing.k8s_build: Debian's sources, to build kube binaries.\n"
        "Types: deb-src\n"
        "URIs: http://deb.debian.org/debian\n"
        f"Suites: {codename} {codename}-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )


def has_deb_src(apt_dir: Path = Path("/etc/apt")) -> bool:
    """Whether some sources file (one-line or deb822) already enables ``deb-src``."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*"))]
    for f in files:
        if f.suffix not in (".list", ".sources") or not f.is_file():
            continue
        text = f.read_text(errors="replace")
        if re.search(r"^\s*deb-src\s", text, re.M) or re.search(
            r"^Types:.*\bdeb-src\b", text, re.M
        ):
            return True
    return False


def _os_release() -> dict[str, str]:
    try:
        lines = Path("/etc/os-release").read_text().splitlines()
    except OSError:
        return {}
    return {k: v.strip('"') for k, _, v in (ln.partition("=") for ln in lines) if k}


def _sh(
    argv: list[str], *, out: TextIO, cwd: Path | None = None, env: dict[str, str] | None = None
) -> None:
    print(f"+ {' '.join(argv)}", file=out, flush=True)
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.STDOUT,
        check=False,
    )
    if proc.returncode != 0:
        raise TestbedError(f"`{' '.join(argv)}` failed with exit status {proc.returncode}.")
