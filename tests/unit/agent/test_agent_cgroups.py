"""The agent's cgroup readers against real-shaped fixture texts and directories, in both cgroup v1
(per-controller mounts, ``memory.oom_control``, cfs quota/period) and v2 (one unified tree,
``memory.events``, ``cpu.max``), including containers whose cgroup mount root is not ``/``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from outlive.agent.box.procfs import (
    cgroup_dirs,
    cpu_quota_cores,
    parse_cgroup_mounts,
    parse_proc_cgroup,
    read_oom_kill,
)

# cgroup v1 as on these test machines: one mount per controller, plus an empty unified tree.
V1_MOUNTINFO = """\
22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V1_PROC_CGROUP = """\
9:name=systemd:/
4:memory:/process_api/7528
3:cpuset:/
2:cpuacct:/
1:cpu:/jobs/a
0::/
"""

# cgroup v1 the systemd way: cpu and cpuacct co-mounted, optional fields before the separator.
V1_COMOUNT_MOUNTINFO = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup \
rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup \
rw,memory
"""
V1_COMOUNT_PROC_CGROUP = """\
6:memory:/user.slice/user-1000.slice/session-3.scope
4:cpu,cpuacct:/user.slice
"""

# cgroup v2 only (modern distros): one unified mount, one "0::" line.
V2_MOUNTINFO = """\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
29 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 \
rw,nsdelegate,memory_recursiveprot
"""
V2_PROC_CGROUP = "0::/user.slice/user-1000.slice/session-2.scope\n"

# A v1 container without a cgroup namespace: the host's cgroup is bind-mounted as the root.
V1_BIND_MOUNTINFO = """\
812 806 0:32 /docker/3f9a /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime master:15 - \
cgroup cgroup rw,memory
813 806 0:29 /docker/3f9a /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime master:12 - \
cgroup cgroup rw,cpu
"""
V1_BIND_PROC_CGROUP = "4:memory:/docker/3f9a/train\n1:cpu:/docker/3f9a\n"

# A v2 pod whose cgroup is bind-mounted at /sys/fs/cgroup (mount root = the pod's own path).
V2_BIND_MOUNTINFO = """\
900 880 0:26 /kubepods/pod42/ctr /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 \
cgroup rw
"""
V2_BIND_PROC_CGROUP = "0::/kubepods/pod42/ctr\n"

# A v2 container with its own cgroup namespace: the root it sees is "/" again.
V2_NS_MOUNTINFO = "700 690 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
V2_NS_PROC_CGROUP = "0::/\n"


def _norm(dirs: dict[str, str]) -> dict[str, str]:
    return {k: os.path.normpath(v) for k, v in dirs.items()}


def test_v1_mounts_map_each_controller_to_its_own_mount():
    mounts = parse_cgroup_mounts(V1_MOUNTINFO)
    assert mounts["memory"] == ("/", "/sys/fs/cgroup/memory")
    assert mounts["cpu"] == ("/", "/sys/fs/cgroup/cpu")  # not cpuacct, not cpuset
    assert mounts["unified"] == ("/", "/sys/fs/cgroup/unified")


def test_comounted_cpu_cpuacct_with_optional_fields_is_found():
    mounts = parse_cgroup_mounts(V1_COMOUNT_MOUNTINFO)
    assert mounts["cpu"] == ("/", "/sys/fs/cgroup/cpu,cpuacct")
    assert mounts["memory"] == ("/", "/sys/fs/cgroup/memory")
    assert "unified" not in mounts


def test_v2_mount_is_the_unified_tree():
    assert parse_cgroup_mounts(V2_MOUNTINFO) == {"unified": ("/", "/sys/fs/cgroup")}


def test_proc_cgroup_v1_lines_name_memory_cpu_and_the_empty_unified_line():
    assert parse_proc_cgroup(V1_PROC_CGROUP) == {
        "memory": "/process_api/7528",
        "cpu": "/jobs/a",
        "unified": "/",
    }
    assert parse_proc_cgroup(V1_COMOUNT_PROC_CGROUP) == {
        "memory": "/user.slice/user-1000.slice/session-3.scope",
        "cpu": "/user.slice",
    }


def test_proc_cgroup_v2_is_one_unified_path():
    assert parse_proc_cgroup(V2_PROC_CGROUP) == {
        "unified": "/user.slice/user-1000.slice/session-2.scope"
    }


def test_cgroup_dirs_prefer_v1_controllers():
    assert _norm(cgroup_dirs(V1_MOUNTINFO, V1_PROC_CGROUP)) == {
        "memory": "/sys/fs/cgroup/memory/process_api/7528",
        "cpu": "/sys/fs/cgroup/cpu/jobs/a",
    }
    assert _norm(cgroup_dirs(V1_COMOUNT_MOUNTINFO, V1_COMOUNT_PROC_CGROUP)) == {
        "memory": "/sys/fs/cgroup/memory/user.slice/user-1000.slice/session-3.scope",
        "cpu": "/sys/fs/cgroup/cpu,cpuacct/user.slice",
    }


def test_cgroup_dirs_on_v2_use_the_unified_tree_for_both():
    d = "/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope"
    assert _norm(cgroup_dirs(V2_MOUNTINFO, V2_PROC_CGROUP)) == {"memory": d, "cpu": d}


@pytest.mark.parametrize(
    ("mountinfo", "proc_cgroup", "expected"),
    [
        (
            V1_BIND_MOUNTINFO,
            V1_BIND_PROC_CGROUP,
            {"memory": "/sys/fs/cgroup/memory/train", "cpu": "/sys/fs/cgroup/cpu"},
        ),
        (
            V2_BIND_MOUNTINFO,
            V2_BIND_PROC_CGROUP,
            {"memory": "/sys/fs/cgroup", "cpu": "/sys/fs/cgroup"},
        ),
        (V2_NS_MOUNTINFO, V2_NS_PROC_CGROUP, {"memory": "/sys/fs/cgroup", "cpu": "/sys/fs/cgroup"}),
    ],
    ids=["v1-bind-mounted-root", "v2-bind-mounted-root", "v2-cgroup-namespace"],
)
def test_cgroup_dirs_strip_a_mount_root_that_is_not_slash(mountinfo, proc_cgroup, expected):
    assert _norm(cgroup_dirs(mountinfo, proc_cgroup)) == expected


def test_cgroup_dirs_without_any_cgroup_mount_are_empty():
    assert cgroup_dirs("22 28 0:21 / /proc rw - proc proc rw\n", V2_PROC_CGROUP) == {}
    assert cgroup_dirs("", "") == {}


def test_read_oom_kill_reads_the_v1_oom_control_counter(tmp_path: Path):
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    assert read_oom_kill(str(tmp_path)) == 3


def test_read_oom_kill_reads_the_v2_events_counter_not_oom_or_group_kill(tmp_path: Path):
    (tmp_path / "memory.events").write_text(
        "low 0\nhigh 12\nmax 40\noom 5\noom_kill 2\noom_group_kill 9\n"
    )
    assert read_oom_kill(str(tmp_path)) == 2


def test_read_oom_kill_is_none_when_no_counter_is_readable(tmp_path: Path):
    assert read_oom_kill(None) is None
    assert read_oom_kill(str(tmp_path)) is None  # neither file
    assert read_oom_kill(str(tmp_path / "gone")) is None
    # An old v1 kernel without the oom_kill line (before 4.13).
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    assert read_oom_kill(str(tmp_path)) is None


def test_cpu_quota_from_v1_cfs_quota_and_period(tmp_path: Path):
    (tmp_path / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota_cores(str(tmp_path)) == 0.5
    (tmp_path / "cpu.cfs_quota_us").write_text("250000\n")
    assert cpu_quota_cores(str(tmp_path)) == 2.5


def test_cpu_quota_v1_minus_one_is_unlimited(tmp_path: Path):
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    assert cpu_quota_cores(str(tmp_path)) is None


@pytest.mark.parametrize(
    ("cpu_max", "cores"),
    [("max 100000\n", None), ("50000 100000\n", 0.5), ("150000 100000\n", 1.5)],
)
def test_cpu_quota_from_v2_cpu_max(tmp_path: Path, cpu_max: str, cores: float | None):
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert cpu_quota_cores(str(tmp_path)) == cores


def test_cpu_quota_is_none_without_a_cgroup_dir_or_files(tmp_path: Path):
    assert cpu_quota_cores(None) is None
    assert cpu_quota_cores(str(tmp_path)) is None
