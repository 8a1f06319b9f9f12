"""The nvidia-smi parsers on outputs in the formats the tool prints."""

from __future__ import annotations

import pytest
from diag_facts import fixture

from outlive.agent.box import gpu_facts as box_gpu_facts
from outlive.diagnose.nvsmi import (
    NvsmiParseError,
    parse_compute_apps,
    parse_dmon,
    parse_performance,
    parse_query_csv,
)


def test_query_csv_reads_one_row_per_gpu_with_numbers_as_floats() -> None:
    rows = parse_query_csv(fixture("query_h100x2.csv"), box_gpu_facts.GPU_QUERY_FIELDS)
    assert len(rows) == 2
    first = rows[0]
    assert first["name"] == "NVIDIA H100 80GB HBM3"
    assert first["driver_version"] == "535.104.05"
    assert first["pci.bus_id"] == "00000000:18:00.0"
    assert first["memory.total"] == 81559.0
    assert first["power.draw"] == pytest.approx(69.88)
    assert first["clocks.default_applications.graphics"] == 1755.0
    assert first["pstate"] == "P0"
    assert rows[1]["temperature.gpu"] == 87.0


def test_query_csv_turns_not_available_into_none() -> None:
    (row,) = parse_query_csv(fixture("query_geforce_na.csv"), box_gpu_facts.GPU_QUERY_FIELDS)
    assert row["power.limit"] is None
    assert row["clocks.default_applications.graphics"] is None
    assert row["memory.free"] == 22701.0


def test_query_csv_reads_the_minimal_field_set_of_old_drivers() -> None:
    (row,) = parse_query_csv(fixture("query_min.csv"), box_gpu_facts.GPU_QUERY_FIELDS_MIN)
    assert row["name"] == "Tesla T4"
    assert row["memory.used"] == 0.0


def test_query_csv_joins_a_gpu_name_that_contains_a_comma() -> None:
    (row,) = parse_query_csv("0, Odd, Name, 1024", ("index", "name", "memory.total"))
    assert row["name"] == "Odd, Name"
    assert row["memory.total"] == 1024.0


def test_query_csv_refuses_a_line_with_too_few_values() -> None:
    with pytest.raises(NvsmiParseError, match="line 1"):
        parse_query_csv("0, 1024", ("index", "name", "memory.total"))


def test_compute_apps_rows_and_the_old_no_processes_line() -> None:
    apps = parse_compute_apps(fixture("apps_two.csv"), box_gpu_facts.COMPUTE_APP_FIELDS)
    assert [a["pid"] for a in apps] == [48211.0, 48260.0]
    assert apps[1]["process_name"] == "/usr/bin/python3"
    assert apps[0]["used_gpu_memory"] == 61432.0
    assert (
        parse_compute_apps(fixture("apps_none_old_driver.txt"), box_gpu_facts.COMPUTE_APP_FIELDS)
        == []
    )
    assert parse_compute_apps("", box_gpu_facts.COMPUTE_APP_FIELDS) == []


def test_performance_reads_clocks_event_reasons_of_r535() -> None:
    perf = parse_performance(fixture("perf_r535_idle.txt"))
    assert perf.driver_version == "535.104.05"
    assert perf.cuda_version == "12.2"
    (gpu,) = perf.gpus
    assert gpu.bus_id == "00000000:18:00.0"
    assert gpu.pstate == "P0"
    assert gpu.active == ["Idle"]
    assert len(gpu.reasons) == 9
    assert "Sparse Operation Mode" not in gpu.reasons


def test_performance_reads_the_older_clocks_throttle_reasons_per_gpu() -> None:
    perf = parse_performance(fixture("perf_r470_throttle.txt"))
    assert perf.cuda_version == "11.4"
    assert [g.bus_id for g in perf.gpus] == ["00000000:3B:00.0", "00000000:86:00.0"]
    assert perf.gpus[0].active == ["HW Slowdown", "HW Thermal Slowdown"]
    assert perf.gpus[1].active == ["SW Power Cap"]


def test_performance_does_not_take_the_counters_section_for_reasons() -> None:
    perf = parse_performance(fixture("perf_r550_counters.txt"))
    (gpu,) = perf.gpus
    assert gpu.active == ["SW Power Cap"]
    assert "SW Power Capping" not in gpu.reasons
    assert gpu.reasons["HW Thermal Slowdown"] is False


def test_performance_refuses_output_without_header_or_gpu() -> None:
    with pytest.raises(NvsmiParseError):
        parse_performance("No devices were found\n")


def test_dmon_reads_samples_across_repeated_headers() -> None:
    samples = parse_dmon(fixture("dmon_pucv_underfed.txt"))
    assert len(samples) == 6
    assert samples[0] == {
        "gpu": 0.0,
        "pwr": 142.0,
        "gtemp": 52.0,
        "mtemp": 61.0,
        "sm": 97.0,
        "mem": 12.0,
        "enc": 0.0,
        "dec": 0.0,
        "jpg": 0.0,
        "ofa": 0.0,
        "mclk": 2619.0,
        "pclk": 1980.0,
        "pviol": 0.0,
        "tviol": 0.0,
    }
    assert samples[-1]["gpu"] == 1.0
    assert samples[-1]["tviol"] == 1.0


def test_dmon_turns_a_dash_into_none() -> None:
    samples = parse_dmon(fixture("dmon_basic_idle.txt"))
    assert [s["sm"] for s in samples] == [3.0, 2.0, 4.0]
    assert all(s["mtemp"] is None for s in samples)
    assert "pviol" not in samples[0]


def test_dmon_refuses_data_before_a_header_and_ragged_lines() -> None:
    with pytest.raises(NvsmiParseError, match="before"):
        parse_dmon("    0     21     37\n")
    with pytest.raises(NvsmiParseError, match="3 values for 4 columns"):
        parse_dmon("# gpu pwr gtemp sm\n# Idx W C %\n 0 21 37\n")
