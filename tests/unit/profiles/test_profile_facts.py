"""The built-in profiles hold the figures the seeds give, quoted in seed_facts.toml."""

from __future__ import annotations

import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from outlive.profiles import Profile, load_profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FACTS_FILE = Path(__file__).with_name("seed_facts.toml")
SEEDS = {
    "001_27a401cec01d0e75.txt",
    "002_d4865661183c90b2.txt",
    "003_81cfcf57edf083a9.txt",
    "004_eb9e2245f8e9466c.txt",
}
_UNIT_S = {
    "s": 1,
    "min": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "GPU-hours": 3600,
    "day": 86400,
    "days": 86400,
    "week": 604800,
}
_FIGURE = re.compile(r"(\d+(?:\.\d+)?)[\s-]*(GPU-hours|hours?|days?|week|min|h|s)\b")


@lru_cache(maxsize=1)
def _facts() -> dict[str, dict[str, Any]]:
    with FACTS_FILE.open("rb") as handle:
        return {fact["id"]: fact for fact in tomllib.load(handle)["fact"]}


def fact(fact_id: str, profile_item_source: str | None = None) -> dict[str, Any]:
    """The quoted fact; if a profile item's source is given, it must cite the same seed."""
    found = _facts()[fact_id]
    if profile_item_source is not None:
        assert profile_item_source.startswith(f"seed {found['seed'][:3]}"), (
            f"{fact_id}: the profile cites {profile_item_source!r}, "
            f"the fact is from {found['seed']}"
        )
    return found


def seconds(figure: str) -> list[float]:
    """Every duration in a figure as the seed writes it, in seconds: '~9 h GPU / ~12 h CPU'
    -> [32400, 43200]; '6-hour' -> [21600]; '30s' -> [30]."""
    found = [float(number) * _UNIT_S[unit] for number, unit in _FIGURE.findall(figure)]
    assert found, f"no duration in {figure!r}"
    return found


def multiplier(figure: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)×", figure)
    assert match, figure
    return float(match.group(1))


@pytest.fixture(scope="module")
def runpod() -> Profile:
    return load_profile("runpod")


# --- the fixture itself ------------------------------------------------------------------


@pytest.mark.parametrize("fact_id", sorted(_facts()))
def test_every_quoted_fact_is_one_short_line_from_a_seed_and_holds_its_figure(fact_id: str) -> None:
    quoted = _facts()[fact_id]
    assert quoted["seed"] in SEEDS
    assert "\n" not in quoted["quote"] and len(quoted["quote"]) <= 120
    assert quoted["figure"] in quoted["quote"]


def test_duration_parser_reads_the_seed_spellings() -> None:
    assert seconds("~5 s") == [5]
    assert seconds("30s") == [30]
    assert seconds("6-hour") == [21600]
    assert seconds("1 hour 1 week") == [3600, 604800]
    assert seconds("~30 days") == [2592000]
    assert seconds("30 GPU-hours/week") == [108000]


# --- RunPod (seed 004) --------------------------------------------------------------------


def test_runpod_stopped_volume_disk_bills_twice_the_running_rate(runpod: Profile) -> None:
    volume = runpod.tier("volume disk")
    quoted = fact("runpod-volume-stopped-2x", volume.source)
    assert volume.stopped_billing_multiplier == multiplier(quoted["figure"])
    assert quoted["figure"] in volume.billing_stopped
    stop = runpod.action("stop")
    assert "volume disk" in stop.keeps_billing and quoted["figure"] in stop.keeps_billing
    assert runpod.clock("stopped pod still bills").surface_first


def test_runpod_container_disk_is_not_charged_when_stopped(runpod: Profile) -> None:
    container = runpod.tier("container disk")
    quoted = fact("runpod-container-not-charged-stopped", container.source)
    assert container.stopped_billing_multiplier == 0.0
    assert quoted["figure"] in container.billing_stopped


def test_runpod_terminate_deletes_container_and_volume_disk(runpod: Profile) -> None:
    terminate = runpod.action("terminate")
    fact("runpod-terminate-deletes", terminate.source)
    assert "container disk" in terminate.deletes and "volume disk" in terminate.deletes
    assert terminate.reversible is False
    assert runpod.meter_stop_verb == "terminate" and runpod.meter_stop_irreversible
    for name in ("container disk", "volume disk"):
        assert runpod.tier(name).survives_destroy is False
    assert runpod.tier("container disk").survives_stop is False
    assert runpod.tier("volume disk").survives_stop is True


def test_runpod_network_volume_survives_terminate_and_holds_the_durable_dir(
    runpod: Profile,
) -> None:
    network = runpod.tier("network volume")
    fact("runpod-network-volume-survives", runpod.source)
    assert network.survives_stop is True and network.survives_destroy is True
    assert runpod.durable is network
    assert "network volume" in runpod.action("terminate").keeps_billing


def test_runpod_spot_grace_is_about_five_seconds(runpod: Profile) -> None:
    clock = runpod.clock("spot preemption grace")
    quoted = fact("runpod-spot-grace", clock.source)
    assert seconds(quoted["figure"]) == [5]
    assert runpod.spot_available and runpod.spot_grace_s == 5
    assert runpod.kill_grace_s == 5 and clock.duration_s == 5


def test_runpod_teardown_commands_use_runpodctl_verbs(runpod: Profile) -> None:
    quoted = fact("runpod-cli-verbs", runpod.action("stop").source)
    assert "stop" in quoted["figure"] and "remove" in quoted["figure"]
    assert runpod.action("stop").command == "runpodctl stop pod <pod-id>"
    assert runpod.action("terminate").command == "runpodctl remove pod <pod-id>"


def test_runpod_small_container_disk_is_surfaced_first(runpod: Profile) -> None:
    container = runpod.tier("container disk")
    quoted = fact("runpod-container-disk-5gb", container.source)
    assert quoted["figure"] in container.cap
    assert runpod.clock("container disk fills").surface_first
    assert runpod.defaults.hf_home is not None
    assert runpod.defaults.hf_home.startswith("/workspace/")


def test_runpod_stale_stopped_pods_go_after_thirty_days(runpod: Profile) -> None:
    clock = runpod.clock("stale stopped pod removal")
    quoted = fact("runpod-stale-stopped-30d", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"])


def test_runpod_http_proxy_times_out_at_100_seconds(runpod: Profile) -> None:
    clock = runpod.clock("HTTP proxy timeout")
    quoted = fact("runpod-proxy-100s", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"])


def test_runpod_mtbf_is_marked_as_an_assumption(runpod: Profile) -> None:
    assert runpod.mtbf_s is not None and runpod.mtbf_source.startswith("assumption:")


# --- Paperspace (seed 001) ----------------------------------------------------------------


def test_paperspace_free_notebooks_stop_at_six_hours() -> None:
    clock = load_profile("paperspace-notebook").clock("free notebook auto-shutdown")
    quoted = fact("paperspace-free-notebook-6h", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"]) == [21600]
    assert clock.surface_first and clock.kind == "auto-shutdown"


def test_paperspace_paid_notebooks_default_to_twelve_hours_within_an_hour_to_a_week() -> None:
    clock = load_profile("paperspace-notebook").clock("paid notebook auto-shutdown")
    quoted = fact("paperspace-paid-notebook-12h", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"]) == [43200]
    assert clock.range_s is not None
    assert list(clock.range_s) == seconds(quoted["quote"].split("range")[1])


def test_paperspace_notebook_mtbf_is_the_free_cap() -> None:
    profile = load_profile("paperspace-notebook")
    quoted = fact("paperspace-free-notebook-6h", profile.mtbf_source)
    assert [profile.mtbf_s] == seconds(quoted["figure"])


def test_paperspace_core_auto_shutdown_is_chosen_between_an_hour_and_a_week() -> None:
    clock = load_profile("paperspace-core").clock("auto-shutdown")
    quoted = fact("paperspace-core-range", clock.source)
    assert clock.duration_s is None
    assert clock.range_s is not None and list(clock.range_s) == seconds(quoted["figure"])


def test_paperspace_core_snapshot_survives_a_destroy_and_keeps_billing() -> None:
    profile = load_profile("paperspace-core")
    snapshot = profile.tier("snapshot")
    fact("paperspace-snapshot-rate", snapshot.source)
    assert snapshot.survives_destroy is True
    assert profile.tier("block storage").survives_destroy is False
    assert "snapshot" in profile.action("destroy").keeps_billing


def test_paperspace_core_static_ip_release_names_the_pspace_command_and_the_cap() -> None:
    release = load_profile("paperspace-core").action("release static IP")
    quoted = fact("paperspace-release-ip", release.source)
    assert release.command == quoted["figure"]
    assert fact("paperspace-static-ip-cap")["figure"] in release.stops_billing


def test_paperspace_stop_is_reversible_and_keeps_billing_storage() -> None:
    shut_down = load_profile("paperspace-core").action("shut down")
    assert shut_down.reversible is True
    assert "block storage" in shut_down.keeps_billing and "public IP" in shut_down.keeps_billing


# --- Slurm, Kubernetes (seed 002) ---------------------------------------------------------


def test_slurm_killwait_defaults_to_thirty_seconds() -> None:
    slurm = load_profile("slurm")
    clock = slurm.clock("KillWait")
    quoted = fact("slurm-killwait-30s", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"]) == [30]
    assert slurm.kill_grace_s == 30 and slurm.spot_grace_s == 30
    fact("slurm-killwait-30s", slurm.kill_grace_source)


def test_slurm_warning_signal_may_be_off_by_sixty_seconds() -> None:
    clock = load_profile("slurm").clock("warning signal jitter")
    quoted = fact("slurm-signal-jitter-60s", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"])


def test_slurm_cancel_is_scancel_and_there_is_nothing_to_destroy() -> None:
    slurm = load_profile("slurm")
    cancel = slurm.action("cancel job")
    quoted = fact("slurm-scancel", cancel.source)
    assert cancel.command == quoted["figure"]
    assert slurm.destroy_event is None
    assert (
        slurm.durable.survives_stop is True and slurm.tier("node-local tmp").survives_stop is False
    )


def test_kubernetes_termination_grace_defaults_to_thirty_seconds() -> None:
    k8s = load_profile("kubernetes")
    clock = k8s.clock("terminationGracePeriodSeconds")
    quoted = fact("k8s-termination-grace-30s", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"]) == [30]
    assert k8s.kill_grace_s == 30


def test_kubernetes_delete_job_keeps_the_node_billing() -> None:
    k8s = load_profile("kubernetes")
    delete = k8s.action("delete job")
    quoted = fact("k8s-delete-job", delete.source)
    assert delete.command == quoted["figure"]
    assert "node" in delete.keeps_billing
    assert k8s.durable.path == "/checkpoints" and k8s.durable.survives_destroy is True
    assert k8s.tier("pod filesystem").survives_stop is False


# --- Colab / Kaggle (seed 002) ------------------------------------------------------------


def test_kaggle_gpu_quota_is_thirty_hours_a_week() -> None:
    clock = load_profile("kaggle").clock("weekly GPU quota")
    quoted = fact("kaggle-weekly-quota", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"]) == [108000]


def test_kaggle_commits_time_out_at_nine_hours_on_gpu_and_twelve_on_cpu() -> None:
    kaggle = load_profile("kaggle")
    gpu, cpu = kaggle.clock("GPU commit timeout"), kaggle.clock("CPU commit timeout")
    quoted = fact("kaggle-commit-timeout", gpu.source)
    assert [gpu.duration_s, cpu.duration_s] == seconds(quoted["figure"]) == [32400, 43200]
    assert [kaggle.mtbf_s] == seconds(fact("kaggle-commit-timeout", kaggle.mtbf_source)["figure"])[
        :1
    ]


def test_kaggle_interactive_sessions_idle_out_at_an_hour_and_end_at_nine() -> None:
    kaggle = load_profile("kaggle")
    idle, cap = kaggle.clock("interactive idle timeout"), kaggle.clock("interactive session cap")
    quoted = fact("kaggle-session-and-idle", idle.source)
    assert [idle.duration_s, cap.duration_s] == seconds(quoted["figure"])


def test_kaggle_working_dir_is_the_durable_tier_capped_at_20_gb() -> None:
    kaggle = load_profile("kaggle")
    quoted = fact("kaggle-working-20gb")
    assert kaggle.durable.path == "/kaggle/working" and quoted["figure"] in kaggle.durable.cap
    assert kaggle.defaults.durable_dir.startswith("/kaggle/working/")


def test_colab_session_idles_out_at_ninety_minutes_and_ends_by_twelve_hours() -> None:
    colab = load_profile("colab")
    idle, lifetime = colab.clock("idle timeout"), colab.clock("maximum VM lifetime")
    quoted = fact("colab-idle-and-lifetime", idle.source)
    assert [idle.duration_s, lifetime.duration_s] == seconds(quoted["figure"]) == [5400, 43200]
    assert colab.spot_grace_s is None  # no signal at all on a disconnect (NB5)


def test_colab_drive_writes_may_lag_half_an_hour() -> None:
    clock = load_profile("colab").clock("Drive sync lag")
    quoted = fact("colab-drive-sync-lag", clock.source)
    assert [clock.duration_s] == seconds(quoted["figure"])
    assert "NB1" in clock.gotchas


# --- generic SSH (seed 002) and local -----------------------------------------------------


def test_generic_ssh_warns_first_that_a_forgotten_box_bills_around_the_clock() -> None:
    generic = load_profile("generic-ssh")
    clock = generic.clocks_first()[0]
    quoted = fact("generic-bills-24-7", clock.source)
    assert clock.surface_first and quoted["figure"] in clock.what_happens
    assert generic.meter_stop_verb == "manual" and generic.spot_grace_s is None


def test_local_profile_has_no_clocks_and_no_teardown() -> None:
    local = load_profile("local")
    assert local.clocks == () and local.teardown == ()
    assert local.meter_stop_verb == "none"
    assert local.defaults.workdir == "."
    assert local.defaults.durable_dir == ".outlive/durable"
    assert local.spot_grace_s is None and local.mtbf_s is None
