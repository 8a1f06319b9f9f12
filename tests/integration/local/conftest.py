"""Fixtures for the local target end to end: a fresh project directory (its processes killed in
teardown) and throwaway memory / cpu cgroups (emptied and removed in teardown)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from local_helpers import CgroupUnavailable, ChildCgroup, Project


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[..., Project]]:
    """``make_project(dirname="proj", toml="")``: a fresh project dir with that outlive.toml."""
    made: list[Project] = []

    def make(dirname: str = "proj", toml: str = "") -> Project:
        d = tmp_path / dirname
        d.mkdir()
        (d / "outlive.toml").write_text(toml)
        p = Project(d)
        made.append(p)
        return p

    yield make
    for p in made:
        p.kill_leftovers()


@pytest.fixture
def project(make_project: Callable[..., Project]) -> Project:
    return make_project()


def _child_cgroup(controller: str) -> Iterator[ChildCgroup]:
    if os.geteuid() != 0:
        pytest.skip(f"a {controller} cgroup of the test's own needs root (CI runs as root)")
    try:
        cg = ChildCgroup(controller)
    except CgroupUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cg
    finally:
        cg.remove()


@pytest.fixture
def memory_cgroup() -> Iterator[ChildCgroup]:
    yield from _child_cgroup("memory")


@pytest.fixture
def cpu_cgroup() -> Iterator[ChildCgroup]:
    yield from _child_cgroup("cpu")
