"""The k8s binaries cache: complete or absent, found without building, waited for while another
process builds it; the deb-src detection and the deb822 file the build adds."""

from __future__ import annotations

import fcntl
import re
import threading
from pathlib import Path

import pytest

from outlive.testing import TestbedUnavailable
from outlive.testing.k8s_build import (
    BINARIES,
    cache_root,
    cached_bin_dir,
    deb_src_sources,
    ensure_binaries,
    has_deb_src,
    source_version,
    wait_for_binaries,
)


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _fake_build(version: str, binaries: tuple[str, ...] = BINARIES) -> Path:
    bin_dir = cache_root() / version / "bin"
    bin_dir.mkdir(parents=True)
    for b in binaries:
        (bin_dir / b).write_text("#!/bin/sh\n")
        (bin_dir / b).chmod(0o755)
    return bin_dir


def test_a_complete_cache_is_used_without_building() -> None:
    _fake_build("1.20.5+really1.20.2-1.1+deb12u0", BINARIES[:-1])  # no kubectl: incomplete
    assert cached_bin_dir() is None
    complete = _fake_build("1.20.5+really1.20.2-1.1+deb12u1")
    assert cached_bin_dir() == complete
    assert ensure_binaries() == complete
    assert wait_for_binaries() == complete


def test_no_cache_and_no_build_under_way_is_unavailable_and_says_how_to_build() -> None:
    with pytest.raises(TestbedUnavailable, match=re.escape("python -m outlive.testing k8s build")):
        wait_for_binaries()


def test_waits_for_a_build_another_process_holds_the_lock_for() -> None:
    cache_root().mkdir(parents=True)
    locked, release = threading.Event(), threading.Event()

    def builder() -> None:  # another open file description: flock conflicts as across processes
        with open(cache_root() / ".build.lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            locked.set()
            release.wait(30)
            _fake_build("v1")

    t = threading.Thread(target=builder)
    t.start()
    locked.wait(30)
    release.set()
    assert wait_for_binaries(timeout_s=60) == cache_root() / "v1" / "bin"
    t.join()


def test_deb_src_is_found_in_one_line_and_deb822_files(tmp_path: Path) -> None:
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n"
    )
    assert not has_deb_src(apt)
    (apt / "sources.list.d" / "src.sources").write_text(deb_src_sources("bookworm"))
    assert has_deb_src(apt)
    (apt / "sources.list.d" / "src.sources").unlink()
    (apt / "sources.list").write_text("deb-src http://deb.debian.org/debian bookworm main\n")
    assert has_deb_src(apt)


def test_the_added_sources_file_is_deb822_with_debians_keyring() -> None:
    text = deb_src_sources("trixie")
    assert "Types: deb-src\n" in text and "Suites: trixie trixie-updates\n" in text
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n" in text


def test_source_version_from_the_dsc_or_the_changelog(tmp_path: Path) -> None:
    tree = tmp_path / "kubernetes-1.20.5+really1.20.2"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian" / "changelog").write_text(
        "kubernetes (1.20.5+really1.20.2-1.1+deb12u1) bookworm-security; urgency=medium\n"
    )
    assert source_version(tree) == "1.20.5+really1.20.2-1.1+deb12u1"
    (tmp_path / "kubernetes_1.20.5+really1.20.2-1.1+deb12u2.dsc").write_text("")
    assert source_version(tree) == "1.20.5+really1.20.2-1.1+deb12u2"
