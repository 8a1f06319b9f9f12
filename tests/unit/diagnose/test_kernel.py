"""The kernel log parsers on dmesg lines as the kernel and the NVIDIA driver print them."""

from __future__ import annotations

from diag_facts import fixture

from outlive.diagnose.kernel import XID_RERENT, parse_kernel_log, split_timestamp


def test_split_timestamp_with_and_without_the_prefix() -> None:
    assert split_timestamp("[ 7215.318469] text here") == (7215.318469, "text here")
    assert split_timestamp("[123456.790100] x") == (123456.7901, "x")
    assert split_timestamp("no prefix at all") == (None, "no prefix at all")


def test_xid_lines_with_and_without_pci_prefix() -> None:
    events = parse_kernel_log(fixture("dmesg_xid.txt").splitlines())
    assert [x.code for x in events.xids] == [13, 31, 48, 79]
    assert [x.pci for x in events.xids] == ["0000:3b:00", "0000:3b:00", "0000:86:00", "0000:3b:00"]
    assert events.xids[3].ts_s == 1203.551227
    assert events.xids[3].detail.endswith("GPU has fallen off the bus.")
    assert [x.rerent for x in events.xids] == [False, False, True, True]
    assert "fallen off the bus" in events.xids[3].meaning
    assert {48, 79} == XID_RERENT
    assert not events.oom_kills


def test_memcg_oom_kill_and_its_context_line() -> None:
    events = parse_kernel_log(fixture("dmesg_oom_memcg.txt").splitlines())
    (kill,) = events.oom_kills
    assert (kill.pid, kill.comm, kill.memcg) == (48211, "python", True)
    assert kill.ts_s == 7215.318469
    (ctx,) = events.oom_contexts
    assert ctx.pid == 48211
    assert ctx.task_memcg == "/system.slice/docker-3f2a9c.scope"
    assert ctx.fields["constraint"] == "CONSTRAINT_MEMCG"
    assert ctx.fields["mems_allowed"] == "0-1"


def test_pre_5_kernel_kill_and_killed_lines_are_one_kill() -> None:
    events = parse_kernel_log(fixture("dmesg_oom_global_4x.txt").splitlines())
    (kill,) = events.oom_kills
    assert (kill.pid, kill.comm, kill.memcg) == (2201, "python3", False)
    assert kill.line.startswith("Killed process 2201")


def test_a_reused_pid_killed_again_later_is_a_second_kill() -> None:
    lines = [
        "[100.0] Out of memory: Killed process 77 (a) total-vm:1kB",
        "[900.0] Out of memory: Killed process 77 (b) total-vm:1kB",
    ]
    assert [k.comm for k in parse_kernel_log(lines).oom_kills] == ["a", "b"]


def test_a_cpuset_with_commas_stays_one_value() -> None:
    line = (
        "[1.0] oom-kill:constraint=CONSTRAINT_NONE,cpuset=0-3,8,mems_allowed=0,task=x,pid=5,uid=0"
    )
    (ctx,) = parse_kernel_log([line]).oom_contexts
    assert ctx.fields["cpuset"] == "0-3,8"
    assert ctx.pid == 5
    assert ctx.task_memcg is None


def test_unrelated_lines_are_ignored() -> None:
    lines = [
        "[0.1] Linux version 6.1.0",
        "[2.0] oom_reaper: reaped process 9 (x), now anon-rss:0kB",
    ]
    events = parse_kernel_log(lines)
    assert not events.xids and not events.oom_kills and not events.oom_contexts


def test_recorded_memcg_oom_lines_of_a_real_kernel() -> None:
    """Recorded on this project's test VM (kernel 6.18, cgroup v1 memory controller) while
    the integration test OOM-killed a job in a small memory cgroup."""
    events = parse_kernel_log(fixture("dmesg_oom_memcg_recorded.txt").splitlines())
    (kill,) = events.oom_kills
    assert (kill.pid, kill.comm, kill.memcg, kill.ts_s) == (22606, "python", True, 1532.740966)
    (ctx,) = events.oom_contexts
    assert ctx.pid == 22606
    assert ctx.task_memcg is not None and ctx.task_memcg.endswith("/outlive-test-22264-86764214")
