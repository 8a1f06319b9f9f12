"""GPU checks from nvidia-smi facts: presence, VRAM holders (U11), throttle and clocks (U23),
feed (U21) and the CUDA triangle (U28, RP9, PS11)."""

from __future__ import annotations

from typing import Any

from diag_facts import cmd, gpu_facts, no_gpu_facts

from outlive.diagnose.cuda import triangle_check
from outlive.diagnose.gpu import (
    clocks_check,
    feed_check,
    presence_check,
    read_gpu,
    throttle_check,
    vram_check,
)
from outlive.diagnose.model import Status


def test_no_nvidia_smi_is_a_warning_that_says_so_and_other_gpu_checks_skip() -> None:
    view = read_gpu(no_gpu_facts())
    check = presence_check(view)
    assert check.status is Status.WARN
    assert "nvidia-smi is not installed" in check.detail
    for other in (throttle_check(view), clocks_check(view), feed_check(view)):
        assert other.status is Status.SKIP
    assert vram_check(view, None)[0].status is Status.SKIP


def test_a_hung_nvidia_smi_fails_and_names_a_wedged_driver() -> None:
    facts = no_gpu_facts()
    facts["query"] = cmd(rc=None, timed_out=True, error="nvidia-smi did not answer within 10 s")
    check = presence_check(read_gpu(facts))
    assert check.status is Status.FAIL
    assert "wedged" in check.detail and "U22" in check.gotchas


def test_nvidia_smi_without_driver_or_devices_fails_with_the_matching_gotcha() -> None:
    facts = no_gpu_facts()
    text = (
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running."
    )
    facts["query"] = cmd(rc=9, error=f"nvidia-smi exited 9: {text}")
    check = presence_check(read_gpu(facts))
    assert check.status is Status.FAIL and "RP9" in check.gotchas
    facts["query"] = cmd(rc=6, error="nvidia-smi exited 6: No devices were found")
    assert presence_check(read_gpu(facts)).gotchas == ("RP1",)


def test_presence_names_driver_cuda_and_free_memory() -> None:
    check = presence_check(read_gpu(gpu_facts()))
    assert check.status is Status.PASS
    assert "2 GPU(s), driver 535.104.05 (CUDA 12.2)" in check.detail
    assert "GPU 0 (NVIDIA H100 80GB HBM3): 79.1 GiB free of 79.6 GiB" in check.detail


def test_hw_thermal_slowdown_warns_and_power_cap_alone_passes() -> None:
    hot = throttle_check(read_gpu(gpu_facts(perf="perf_r470_throttle.txt")))
    assert hot.status is Status.WARN
    assert "HW Thermal Slowdown" in hot.detail and hot.gotchas == ("U23",)
    capped = throttle_check(read_gpu(gpu_facts(perf="perf_r550_counters.txt")))
    assert capped.status is Status.PASS
    assert "power limit" in capped.detail
    assert throttle_check(read_gpu(gpu_facts(perf=None))).status is Status.SKIP


def test_sm_clock_below_base_while_hot_warns() -> None:
    check = clocks_check(read_gpu(gpu_facts()))
    assert check.status is Status.WARN
    assert "GPU 1 (NVIDIA H100 80GB HBM3) at 87 °C runs 1410 MHz < base 1755" in check.detail


def test_cool_gpu_or_missing_base_clock() -> None:
    cool = gpu_facts()
    cool["query"]["stdout"] = cool["query"]["stdout"].splitlines()[0] + "\n"
    assert clocks_check(read_gpu(cool)).status is Status.PASS
    assert clocks_check(read_gpu(gpu_facts(query="query_geforce_na.csv"))).status is Status.SKIP


def test_busy_at_low_power_is_underfed() -> None:
    check = feed_check(read_gpu(gpu_facts(dmon="dmon_pucv_underfed.txt")))
    assert check.status is Status.WARN
    assert "GPU 0 SM 97 % at 142 W of 700 W" in check.detail
    assert "U21" in check.gotchas


def test_idle_gpu_while_the_job_runs_points_at_cpu_or_data() -> None:
    facts = gpu_facts(query="query_geforce_na.csv", dmon="dmon_basic_idle.txt")
    check = feed_check(read_gpu(facts))
    assert check.status is Status.WARN
    assert "mostly idle" in check.detail and "U40" in check.gotchas


def test_no_dmon_samples_skips_feed() -> None:
    assert feed_check(read_gpu(gpu_facts())).status is Status.SKIP


def test_a_broken_dmon_is_recorded_as_a_problem_not_a_crash() -> None:
    facts = gpu_facts()
    facts["dmon"] = cmd("garbage line\n")
    view = read_gpu(facts)
    assert view.ok and view.problems and "dmon" in view.problems[0]


def _holder(pid: int, comm: str = "python", state: str = "S", pgid: int = 1) -> dict[str, Any]:
    return {"pid": pid, "comm": comm, "state": state, "ppid": 1, "pgid": pgid, "devices": []}


def test_holder_not_listed_by_nvidia_smi_is_reported_as_a_dry_run() -> None:
    view = read_gpu(gpu_facts(apps="apps_two.csv"))
    holders = {
        "holders": [
            _holder(48211),
            _holder(777, state="Z"),
            _holder(5, comm="nvidia-persistenced"),
        ],
        "unreadable": 0,
    }
    check, unseen = vram_check(view, holders)
    assert check.status is Status.WARN
    assert "pid 777 python [zombie]" in check.detail
    assert "48211" not in check.detail and "persistenced" not in check.detail
    assert "dry run" in check.detail and "outlive kills nothing" in check.detail
    assert check.gotchas == ("U11",)
    assert unseen == []


def test_a_leftover_of_the_run_holding_the_gpu_is_named() -> None:
    view = read_gpu(gpu_facts())
    holders = {"holders": [_holder(900, pgid=4242)], "unreadable": 3}
    check, unseen = vram_check(view, holders, own_pids=[], own_pgid=4242)
    assert check.status is Status.WARN
    assert "left over from this run" in check.detail
    assert "3 process(es)" in unseen[0]


def test_the_runs_own_live_processes_are_not_strays() -> None:
    view = read_gpu(gpu_facts())
    holders = {"holders": [_holder(4242, pgid=4242)], "unreadable": 0}
    check, _ = vram_check(view, holders, own_pids=[4242], own_pgid=4242)
    assert check.status is Status.PASS


def test_memory_in_use_that_no_process_holds_is_a_ghost() -> None:
    check, _ = vram_check(read_gpu(gpu_facts()), {"holders": [], "unreadable": 0})
    assert check.status is Status.WARN
    assert "GPU 1 (NVIDIA H100 80GB HBM3) has 60.0 GiB in use" in check.detail
    assert "no process here holds it" in check.detail


def test_listed_processes_of_others_are_reported() -> None:
    check, _ = vram_check(read_gpu(gpu_facts(apps="apps_two.csv")), {"holders": []})
    assert check.status is Status.WARN
    assert "pid 48211 python (60.0 GiB)" in check.detail


def _torch(**result: Any) -> dict[str, Any]:
    base = {
        "torch": "2.3.1+cu121",
        "cuda": "12.1",
        "available": True,
        "device_count": 2,
        "names": ["NVIDIA H100 80GB HBM3"] * 2,
        "capabilities": [[9, 0], [9, 0]],
        "arch_list": ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"],
        "warnings": [],
    }
    base.update(result)
    return {"python": "/usr/bin/python3", "run": {"rc": 0}, "result": base}


def test_triangle_passes_when_driver_and_arch_fit() -> None:
    check = triangle_check(read_gpu(gpu_facts()), _torch())
    assert check.status is Status.PASS
    assert "CUDA 12.1 <= driver CUDA 12.2" in check.detail and "sm_90" in check.detail


def test_triangle_fails_when_the_driver_is_older_than_torchs_cuda() -> None:
    view = read_gpu(gpu_facts(perf="perf_r470_throttle.txt"))  # driver CUDA 11.4
    check = triangle_check(
        view,
        _torch(
            available=False,
            warnings=["The NVIDIA driver on your system is too old (found version 11040)."],
            capabilities=[],
        ),
    )
    assert check.status is Status.FAIL
    assert "at most CUDA 11.4" in check.detail and "too old" in check.detail
    assert set(check.gotchas) == {"U28", "RP9", "PS11"}


def test_triangle_warns_on_a_newer_minor_cuda() -> None:
    check = triangle_check(read_gpu(gpu_facts()), _torch(cuda="12.4", torch="2.4.0+cu124"))
    assert check.status is Status.WARN
    assert "minor-version compatibility" in check.detail


def test_triangle_fails_without_kernels_for_the_gpu_arch() -> None:
    check = triangle_check(
        read_gpu(gpu_facts()),
        _torch(capabilities=[[12, 0]], names=["NVIDIA RTX PRO 6000"], arch_list=["sm_80", "sm_90"]),
    )
    assert check.status is Status.FAIL
    assert "no kernels for NVIDIA RTX PRO 6000 (sm_120" in check.detail


def test_triangle_warns_when_only_ptx_can_run() -> None:
    check = triangle_check(
        read_gpu(gpu_facts()), _torch(capabilities=[[9, 0]], arch_list=["sm_80", "compute_80"])
    )
    assert check.status is Status.WARN and "PTX" in check.detail


def test_binary_kernels_for_a_lower_minor_of_the_same_major_run() -> None:
    check = triangle_check(
        read_gpu(gpu_facts()), _torch(capabilities=[[8, 6]], arch_list=["sm_80"], names=["A10"])
    )
    assert check.status is Status.PASS


def test_cpu_only_torch_on_a_gpu_box_fails() -> None:
    check = triangle_check(read_gpu(gpu_facts()), _torch(cuda=None, torch="2.3.1+cpu"))
    assert check.status is Status.FAIL and "CPU-only" in check.detail


def test_triangle_skips_without_torch_or_gpu() -> None:
    absent = {"python": "/usr/bin/python3", "result": {"import_error": "ModuleNotFoundError: x"}}
    assert triangle_check(read_gpu(gpu_facts()), absent).status is Status.SKIP
    assert triangle_check(read_gpu(no_gpu_facts()), _torch()).status is Status.SKIP
    assert triangle_check(read_gpu(gpu_facts()), None).status is Status.SKIP
    hung = {"python": "/x", "run": {"error": "/x did not answer within 30 s"}}
    assert "30 s" in triangle_check(read_gpu(gpu_facts()), hung).detail
