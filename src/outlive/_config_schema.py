"""The pydantic schema of outlive.toml, imported only when a config file exists (start-up cost)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outlive.config import SlurmOptions
from outlive.errors import ConfigError
from outlive.naming import secret_name_problem

_DAY_S = 86400.0
_CENTURY_S = 100 * 365 * 86400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ProjectTable(_Strict):
    name: str | None = None
    exclude: list[str] = Field(default_factory=list)
    profile_dirs: list[str] = Field(default_factory=list)  # extra *.toml platform profiles


class TargetTable(_Strict):
    profile: str = "generic-ssh"
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    identity_file: str | None = None
    ssh_config: str | None = None
    accept_new_host_keys: bool = False
    python: str = "python3"  # the box's interpreter for outlive's agent (stdlib only, >= 3.8)
    workdir: str | None = None
    durable: str | None = None
    hf_home: str | None = None
    spot: bool = False
    detach: Literal["setsid", "tmux"] = "setsid"
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[str] = Field(default_factory=list)  # names pushed with `outlive secret push`
    outputs: list[str] = Field(default_factory=list)  # result paths (workdir-relative) to pull
    # Finite and bounded: a grace becomes a signal.alarm() and a sleep on the box (a day at most).
    kill_grace_s: float | None = Field(default=None, ge=0, le=_DAY_S, allow_inf_nan=False)
    spot_grace_s: float | None = Field(default=None, ge=0, le=_DAY_S, allow_inf_nan=False)
    mtbf_s: float | None = Field(default=None, gt=0, le=_CENTURY_S, allow_inf_nan=False)
    # The provider's id of the pod or machine this target is (RunPod pod id, Paperspace machine
    # id): `cloud ls|audit` count it as used by the target, `down --execute` acts on it alone.
    cloud_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$"
    )
    # Slurm
    partition: str | None = None
    gpus: str | None = None
    cpus: int | None = Field(default=None, ge=1)
    mem: str | None = None
    time: str | None = None
    nodes: int | None = Field(default=None, ge=1)
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch_extra: list[str] = Field(default_factory=list)

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not key or "=" in key or "\x00" in key:
                raise ValueError(
                    f"environment variable name {key!r} must be non-empty with no '=' or NUL"
                )
            if "\x00" in value:
                raise ValueError(f"the value of {key} has a NUL byte, which no job can receive")
        return env

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, names: list[str]) -> list[str]:
        for name in names:
            problem = secret_name_problem(name)
            if problem:
                raise ValueError(problem)
        return names

    def slurm_options(self) -> SlurmOptions:
        """The Slurm backend's settings from this table."""
        return SlurmOptions(
            partition=self.partition,
            gpus=self.gpus,
            cpus=self.cpus,
            mem=self.mem,
            time=self.time,
            nodes=self.nodes,
            account=self.account,
            qos=self.qos,
            constraint=self.constraint,
            sbatch_extra=tuple(self.sbatch_extra),
        )


class ConfigFile(_Strict):
    project: ProjectTable = Field(default_factory=ProjectTable)
    targets: dict[str, TargetTable] = Field(default_factory=dict)


def parse(raw: dict[str, Any], source: Path | None) -> ConfigFile:
    try:
        return ConfigFile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, raw, source)) from None


def _explain(exc: ValidationError, raw: dict[str, Any], source: Path | None) -> str:
    """The first problem as one sentence: the file, the key, what is wrong and the fix."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    where = _table_name(loc[:-1])
    key = loc[-1] if loc else "?"
    if err["type"] == "extra_forbidden":
        model = _model_at(loc[:-1])
        valid = sorted(model.model_fields) if model else []
        hint = difflib.get_close_matches(key, valid, n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else f"valid keys are {', '.join(valid)}"
        return f"{source}: unknown key {key!r} in {where}; {fix}"
    msg = err["msg"].removeprefix("Value error, ").rstrip(".")
    return f"{source}: {where} key {key!r}: {msg}; fix the value of {key!r}"


def _table_name(loc: list[str]) -> str:
    if not loc:
        return "the top level"
    if loc[0] == "targets" and len(loc) >= 2:
        return f"[targets.{loc[1]}]"
    return "[" + ".".join(loc) + "]"


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    if not loc:
        return ConfigFile
    if loc == ["project"]:
        return ProjectTable
    if loc[0] == "targets" and len(loc) == 2:
        return TargetTable
    return None
