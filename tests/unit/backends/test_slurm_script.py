"""The batch script is a pure function of its spec: compared byte for byte with golden files
(``OUTLIVE_UPDATE_GOLDEN=1`` rewrites them), parsed by bash, and every value a #SBATCH line cannot
carry safely is refused with a sentence naming the key."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from outlive.backends.slurm_script import (
    BatchSpec,
    gres_of,
    render,
    signal_lead_s,
    spec_for,
    time_limit_s,
)
from outlive.config import SlurmOptions
from outlive.errors import ConfigError

GOLDEN = Path(__file__).parent / "golden"
RUN_ID = "20260101-000000-abcdef"

CASES: dict[str, tuple[dict[str, Any], str, float | None]] = {
    "minimal": ({}, "train-1a2b3c", None),
    "full": (
        {
            "partition": "gpu,gpu-long",
            "gpus": "a100:2",
            "cpus": 8,
            "mem": "64G",
            "time": "1-04:00:00",
            "account": "proj-42",
            "qos": "high",
            "constraint": "a100&ib",
            "sbatch_extra": ["--exclusive", "#SBATCH --mail-type=END"],
        },
        "sweep lr=3e-4",
        45.0,
    ),
    "array_after": ({"partition": "debug"}, "ablation", None),
    "multinode": ({"nodes": 2, "gpus": "a100:4", "cpus": 16, "time": "12:00:00"}, "ddp", 60.0),
    "hostile_name": (
        {"gpus": "1", "time": "30"},
        'it\'s "q" $(touch PWNED) `id` ; #SBATCH --wrap=x \\ ü',
        None,
    ),
}


def _options(table: dict[str, object]) -> SlurmOptions:
    """Slurm options as a target table spells them (lists for sbatch_extra)."""
    extra = table.get("sbatch_extra")
    fields = {**table, "sbatch_extra": tuple(extra)} if isinstance(extra, list) else table
    return SlurmOptions(**fields)  # type: ignore[arg-type]


def case_spec(case: str) -> BatchSpec:
    options, name, save_s = CASES[case]
    spec = spec_for(_options(options), RUN_ID, name, save_s)
    if case == "array_after":
        spec = dataclasses.replace(
            spec, array_size=4, array_throttle=2, dependency="afterok:12:13_1"
        )
    return spec


@pytest.mark.parametrize("case", sorted(CASES))
def test_script_matches_its_golden_file(case: str) -> None:
    text = render(case_spec(case))
    golden = GOLDEN / f"{case}.sbatch"
    if os.environ.get("OUTLIVE_UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("case", sorted(CASES))
def test_script_parses_as_bash(case: str, tmp_path: Path) -> None:
    path = tmp_path / "job.sbatch"
    path.write_text(render(case_spec(case)))
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_script_carries_the_requeue_contract() -> None:
    text = render(spec_for(SlurmOptions(gpus="a100:1", cpus=4), RUN_ID, "n"))
    directives = [ln for ln in text.splitlines() if ln.startswith("#SBATCH ")]
    for want in ("--requeue", "--open-mode=append", "--output=stdout.log", "--cpus-per-task=4"):
        assert f"#SBATCH {want}" in directives
    assert "#SBATCH --signal=B:TERM@130" in directives  # 60 s jitter + 2 x 30 s + 10 s (SLURM2)
    # SLURM3: cpus and GPUs handed to the step explicitly.
    assert 'srun --nodes=1 --ntasks=1 --cpus-per-task="${SLURM_CPUS_PER_TASK:-1}"' in text
    assert "--gres=gpu:a100:1 \\\n" in text
    assert "trap 'forward TERM' TERM" in text
    assert 'scancel --signal="$1" "$job"' in text
    assert 'scontrol requeue "$job"' in text and "requeue_exit=75" in text
    assert "py=$1 agent=$2 run_dir=$3\n" in text
    assert not any("$TMPDIR" in ln for ln in text.splitlines())  # SLURM5


def test_job_name_is_a_clean_label_and_the_name_appears_nowhere_else() -> None:
    name = "a\"b' $(x) #c\nd"
    text = render(BatchSpec(run_id=RUN_ID, name=name, signal_lead_s=100))
    assert "#SBATCH --job-name=a_b_x_c_d\n" in text
    assert "$(x)" not in text and "#c" not in text
    assert BatchSpec(run_id=RUN_ID, name="$$$", signal_lead_s=1).job_name == "outlive"
    assert len(BatchSpec(run_id=RUN_ID, name="x" * 300, signal_lead_s=1).job_name) == 64


def test_lead_covers_the_jitter_and_twice_the_measured_save() -> None:
    assert signal_lead_s(None) == 60 + 60 + 10
    assert signal_lead_s(12.2) == 60 + 25 + 10
    assert signal_lead_s(0) == signal_lead_s(None)
    assert signal_lead_s(1e9) == 65535
    assert "--signal=B:TERM@95" in render(spec_for(SlurmOptions(), RUN_ID, "n", save_s=12.2))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 1800),
        ("1:30", 90),
        ("04:00:00", 14400),
        ("2-0", 172800),
        ("1-02:03", 93780),
        ("1-02:03:04", 93784),
        ("UNLIMITED", None),
        ("infinite", None),
    ],
)
def test_time_limits_in_every_slurm_format(value: str, seconds: int | None) -> None:
    assert time_limit_s(value) == seconds


def test_gpu_requests_become_gres() -> None:
    assert gres_of("2") == "gpu:2"
    assert gres_of("a100:2") == "gpu:a100:2"
    assert gres_of("gpu:h100:8") == "gpu:h100:8"
    assert spec_for(SlurmOptions(gpus="0"), RUN_ID, "n").gres is None


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"partition": "gpu long"}, "partition"),
        ({"partition": 'gpu"x'}, "partition"),
        ({"account": "a#b"}, "account"),
        ({"qos": "q\\x"}, "qos"),
        ({"constraint": "a100 ib"}, "constraint"),
        ({"mem": "16 G"}, "mem"),
        ({"time": "4h"}, "time"),
        ({"gpus": "two"}, "gpus"),
        ({"sbatch_extra": ["--output=/tmp/x"]}, "--output"),
        ({"sbatch_extra": ["-o/tmp/x"]}, "-o"),
        ({"sbatch_extra": ["--chdir=/"]}, "--chdir"),
        ({"sbatch_extra": ["--no-requeue"]}, "--no-requeue"),
        ({"sbatch_extra": ["--exclusive\n#SBATCH --x"]}, "sbatch_extra"),
        ({"sbatch_extra": ["exclusive"]}, "sbatch_extra"),
    ],
)
def test_values_a_directive_cannot_carry_are_refused(options: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.lstrip("-")):
        spec_for(_options(options), RUN_ID, "n")


def test_an_unsafe_run_id_is_a_bug_not_a_script() -> None:
    with pytest.raises(ConfigError):
        render(BatchSpec(run_id="x\ny", name="n", signal_lead_s=1))


def test_an_array_logs_and_runs_each_cell_in_its_own_run_dir() -> None:
    text = render(case_spec("array_after"))
    assert f"#SBATCH --output={RUN_ID}-%a/stdout.log\n" in text  # relative to the runs dir
    assert "#SBATCH --array=0-3%2\n" in text
    assert "#SBATCH --dependency=afterok:12:13_1\n#SBATCH --kill-on-invalid-dep=yes\n" in text
    assert "run_dir=$3-$SLURM_ARRAY_TASK_ID\n" in text
