"""The pydantic schema of outlive.toml, imported only when a config file exists (start-up cost)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outlive.config import KaggleOptions, KubernetesOptions, SlurmOptions
from outlive.errors import ConfigError
from outlive.naming import secret_name_problem
from outlive.wire import name_problem

_DAY_S = 86400.0
_CENTURY_S = 100 * 365 * 86400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


class ProjectTable(_Strict):
    name: str | None = None
    exclude: list[str] = Field(default_factory=list)
    profile_dirs: list[str] = Field(default_factory=list)  # extra *.toml platform profiles

    @field_validator("name")
    @classmethod
    def _one_directory(cls, name: str | None) -> str | None:
        """The name is a directory on the box (``/workspace/{project}``, Drive, /storage, the
        Kaggle working dir): one directory name, nothing that climbs out or drives a terminal."""
        problem = None if name is None else name_problem(name, "project name")
        if problem:
            raise ValueError(problem)
        return name


class TargetTable(_Strict):
    profile: str = "generic-ssh"
    host: str | None = Field(default=None, min_length=1)  # "" is a mistake, not "no host"
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
    # Kubernetes (gpus, time and nodes are shared with Slurm)
    namespace: str | None = None
    context: str | None = None
    image: str | None = None
    pvc: str | None = None
    storage_class: str | None = None
    pvc_size: str | None = None
    cpu: str | int | float | None = None
    memory: str | None = None
    shm: str | None = None
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    service_account: str | None = None
    image_pull_secret: str | None = None
    backoff_limit: int | None = Field(default=None, ge=0, le=1000)
    # Kaggle
    owner: str | None = None
    kernel_slug: str | None = None
    accelerator: str | None = None
    internet: bool | None = None
    dataset_sources: list[str] = Field(default_factory=list)
    model_sources: list[str] = Field(default_factory=list)
    is_private: bool | None = None
    session_budget_s: float | None = Field(default=None, gt=0, le=_DAY_S, allow_inf_nan=False)
    session_margin_s: float | None = Field(default=None, ge=0, le=_DAY_S, allow_inf_nan=False)

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

    def kaggle_options(self, where: str, profile: Any) -> KaggleOptions:
        """The Kaggle backend's settings from this table and ``profile`` (the session budget);
        ``where`` ("FILE: [targets.N]") starts the one-sentence error."""
        from outlive.backends.kaggle_values import kaggle_options

        try:
            return kaggle_options(self, profile)
        except ConfigError as exc:
            raise ConfigError(f"{where} {exc}") from None

    def kubernetes_options(self, where: str) -> KubernetesOptions:
        """The Kubernetes backend's settings from this table, each value checked as the API
        server would; ``where`` ("FILE: [targets.N]") starts the one-sentence error."""
        from outlive.backends import k8s_values as kv

        try:
            return self._kubernetes_options(kv)
        except ConfigError as exc:
            raise ConfigError(f"{where} {exc}") from None

    def _kubernetes_options(self, kv: Any) -> KubernetesOptions:
        if self.host:
            raise ConfigError(
                "has host set, but a kubernetes target is reached with kubectl from here (your "
                "kubeconfig and `context`); remove host"
            )
        if self.pvc and self.storage_class:
            raise ConfigError("sets both pvc and storage_class; name an existing claim or a class")
        gpus = str(self.gpus or "0").strip()
        if not gpus.isdigit() or int(gpus) > 64:
            raise ConfigError(
                f"gpus = {self.gpus!r} must be a whole number of GPUs on a kubernetes target "
                '(e.g. gpus = "1"); GPUs are not shared or split there (K8S6)'
            )
        if self.time is not None:
            from outlive.backends.slurm_script import time_limit_s

            time_limit_s(self.time)
        opt = KubernetesOptions(
            namespace=kv.check_namespace(self.namespace or "default"),
            context=self.context,
            image=self.image,
            pvc=kv.check_name("pvc", self.pvc) if self.pvc else None,
            storage_class=(
                kv.check_name("storage_class", self.storage_class) if self.storage_class else None
            ),
            pvc_size=kv.check_quantity("pvc_size", self.pvc_size or "50Gi"),
            gpus=int(gpus),
            cpu=kv.check_quantity("cpu", self.cpu) if self.cpu is not None else None,
            memory=kv.check_quantity("memory", self.memory) if self.memory else None,
            shm=kv.check_quantity("shm", self.shm) if self.shm else None,
            node_selector=kv.check_label_map("node_selector", self.node_selector),
            tolerations=kv.check_tolerations(self.tolerations),
            service_account=(
                kv.check_name("service_account", self.service_account)
                if self.service_account
                else None
            ),
            image_pull_secret=(
                kv.check_name("image_pull_secret", self.image_pull_secret)
                if self.image_pull_secret
                else None
            ),
            time=self.time,
            nodes=self.nodes or 1,
            backoff_limit=6 if self.backoff_limit is None else self.backoff_limit,
        )
        if opt.shm and opt.memory and kv.quantity_bytes(opt.shm) >= kv.quantity_bytes(opt.memory):
            raise ConfigError(
                f"has shm = {opt.shm!r}, not below memory = {opt.memory!r}; /dev/shm is a "
                "memory-backed volume that counts against the memory limit, so make it smaller"
            )
        return opt


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
