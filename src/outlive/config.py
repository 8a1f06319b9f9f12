"""Project configuration: ``outlive.toml`` (or ``[tool.outlive]`` in pyproject.toml) → targets.

No file is needed to start: the ``local`` target always exists, with the project directory as its
workdir and ``.outlive/durable/`` as its durable path. Every mistake in a file is reported as one
sentence naming the file, the key and the fix.
"""

from __future__ import annotations

import contextlib
import difflib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from outlive._shapes import as_dict, field, shape
from outlive.errors import ConfigError, NoProject, UsageError

CONFIG_NAME = "outlive.toml"
LOCAL = "local"
STATE_DIR = ".outlive"
_ROOT_MARKERS = (CONFIG_NAME, "pyproject.toml", ".git")
USER_PROFILE_DIR = Path("~/.config/outlive/profiles").expanduser()


@shape(frozen=True)
class Connection:
    """How the client reaches the target: here (``transport = "local"``) or over the user's own
    OpenSSH, with these settings completing their ``~/.ssh/config``."""

    transport: str = "local"  # "local" | "ssh"
    host: str | None = None
    port: int | None = None
    user: str | None = None
    identity_file: str | None = None
    ssh_config: str | None = None
    accept_new_host_keys: bool = False
    python: str = "python3"  # the box's interpreter for outlive's agent (stdlib, >= 3.8)


@shape(frozen=True)
class Placement:
    """Where a run's files live on the target."""

    workdir: str
    durable: str  # checkpoints and results: <durable>/<run-name>/
    hf_home: str | None = None  # where HF caches go on the box, off small disks (RP11)
    outputs: tuple[str, ...] = ()  # result paths (workdir-relative) that `pull` also takes


@shape(frozen=True)
class JobPolicy:
    """What every job on the target gets: environment, secrets, and its kill/interrupt clocks."""

    env: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()  # exported into the job's env from the box's 0600 files
    spot: bool = False
    kill_grace_s: float = 30.0
    spot_grace_s: float | None = None
    mtbf_s: float | None = None


@shape(frozen=True)
class ProcessOptions:
    """A process backend's own settings."""

    detach: str = "setsid"  # "setsid" | "tmux"


@shape(frozen=True)
class SlurmOptions:
    """A Slurm backend's own settings (checked again when the batch script is rendered)."""

    partition: str | None = None
    gpus: str | None = None
    cpus: int | None = None
    mem: str | None = None
    time: str | None = None
    nodes: int | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    sbatch_extra: tuple[str, ...] = ()


@shape(frozen=True)
class KubernetesOptions:
    """A Kubernetes backend's own settings, checked when the config is read
    (:mod:`outlive.backends.k8s_values`): quantities, names and labels."""

    namespace: str = "default"
    context: str | None = None  # a context of the user's kubeconfig; its current one if unset
    image: str | None = None
    pvc: str | None = None  # an existing claim for the durable dir, or:
    storage_class: str | None = None  # ... a claim outlive creates with this class
    pvc_size: str = "50Gi"
    gpus: int = 0
    cpu: str | None = None  # limits (Kubernetes quantities); requests are equal
    memory: str | None = None
    shm: str | None = None  # /dev/shm size (a memory-backed emptyDir; counts against memory)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    service_account: str | None = None
    image_pull_secret: str | None = None
    time: str | None = None  # wall limit → activeDeadlineSeconds (Slurm's time format)
    nodes: int = 1
    backoff_limit: int = 6


@shape(frozen=True)
class KaggleOptions:
    """A Kaggle backend's own settings (:mod:`outlive.backends.kaggle_values` checks them): the
    kernel each run becomes, its machine, and how long one version may run."""

    owner: str  # the Kaggle user the kernels belong to (KAGGLE_USERNAME's account)
    kernel_slug: str | None = None  # one kernel for every run; unset: one per run, from its name
    accelerator: str = "none"  # none | gpu | t4x2 | p100 (enable_gpu and machine_shape)
    internet: bool = False  # enable_internet, always written out (NB3)
    dataset_sources: tuple[str, ...] = ()
    model_sources: tuple[str, ...] = ()
    is_private: bool = True
    budget_s: float = 32400.0  # one version's session (the profile's commit timeout)
    margin_s: float = 1800.0  # the job is stopped this long before the budget, to save


BackendOptions = ProcessOptions | SlurmOptions | KubernetesOptions | KaggleOptions
_OPTIONS_BY_BACKEND: dict[
    str,
    type[ProcessOptions] | type[SlurmOptions] | type[KubernetesOptions] | type[KaggleOptions],
] = {
    "process": ProcessOptions,
    "slurm": SlurmOptions,
    "kubernetes": KubernetesOptions,
    "kaggle": KaggleOptions,
}


@shape(frozen=True)
class Target:
    """A resolved target: how to reach it, where runs go, what every job gets, and which
    backend runs them with which options."""

    name: str
    profile: str
    kind: str  # what `targets` shows: "local" | "ssh" | "slurm" | "kubernetes" | "kaggle"
    backend: str  # the client backend: "process" | "slurm" | "kubernetes" | "kaggle"
    connection: Connection
    placement: Placement
    policy: JobPolicy
    options: BackendOptions = field(default_factory=ProcessOptions)
    cloud_id: str | None = None  # the provider's pod or machine id (cloud ls/audit, down --execute)

    @property
    def is_local(self) -> bool:
        """The embedded ``local`` target: this machine, the project directory as workdir."""
        return self.kind == "local"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "profile": self.profile,
            "kind": self.kind,
            "backend": self.backend,
            "connection": as_dict(self.connection),
            "placement": as_dict(self.placement),
            "policy": as_dict(self.policy),
            "options": as_dict(self.options),
            "cloud_id": self.cloud_id,
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Target:
        placement, policy, options = doc["placement"], doc["policy"], doc["options"]
        opts_cls = _OPTIONS_BY_BACKEND[doc["backend"]]
        if opts_cls is SlurmOptions:
            options = {**options, "sbatch_extra": tuple(options.get("sbatch_extra") or ())}
        elif opts_cls is KubernetesOptions:
            options = {**options, "tolerations": tuple(options.get("tolerations") or ())}
        elif opts_cls is KaggleOptions:
            options = {
                **options,
                "dataset_sources": tuple(options.get("dataset_sources") or ()),
                "model_sources": tuple(options.get("model_sources") or ()),
            }
        return cls(
            name=doc["name"],
            profile=doc["profile"],
            kind=doc["kind"],
            backend=doc["backend"],
            connection=Connection(**doc["connection"]),
            placement=Placement(**{**placement, "outputs": tuple(placement["outputs"])}),
            policy=JobPolicy(**{**policy, "secrets": tuple(policy["secrets"])}),
            options=opts_cls(**options),
            cloud_id=doc.get("cloud_id"),
        )


@shape(frozen=True)
class Config:
    """Everything read from the project: its root, the file it came from, and the targets."""

    project_dir: Path
    source: Path | None
    project_name: str
    exclude: tuple[str, ...]
    targets: dict[str, Target]
    profile_dirs: tuple[Path, ...] = (USER_PROFILE_DIR,)

    @property
    def state_dir(self) -> Path:
        return self.project_dir / STATE_DIR

    def target(self, name: str) -> Target:
        if name in self.targets:
            return self.targets[name]
        known = ", ".join(sorted(self.targets))
        hint = difflib.get_close_matches(name, list(self.targets), n=1)
        if name.strip() in self.targets:
            hint = [name.strip()]  # "box " or " box": a stray space, not another target
        did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
        where = self.source or self.project_dir / CONFIG_NAME
        if not name or name != name.strip() or not name.isprintable():
            raise ConfigError(
                f"unknown target {name!r}{did_you_mean}; configured targets are {known}"
            )
        import re

        # A bare TOML key, or a quoted one ("a b", "../x"): the table header as it must be typed.
        key = name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json_quoted(name)
        raise ConfigError(
            f"unknown target {name!r}{did_you_mean}; configured targets are {known} — "
            f"add a [targets.{key}] table to {where} or pick one of those"
        )


def json_quoted(text: str) -> str:
    """``text`` as a TOML basic string: JSON's escapes are TOML's, and DEL, which JSON leaves
    as it is, is one more that TOML wants escaped."""
    import json

    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


# Directories project discovery found no project at or above (a bare directory, or one that no
# longer exists): ensure_state_dir creates nothing there while they stay unmarked.
_NOT_PROJECTS: set[Path] = set()


def is_project_dir(directory: Path) -> bool:
    """Whether ``directory`` holds outlive.toml, pyproject.toml or .git (a project's root)."""
    return any((directory / m).exists() for m in _ROOT_MARKERS)


def ensure_state_dir(path: Path) -> Path:
    """Create the project's ``.outlive/`` (git-ignored: run records, local checkpoints).

    Only inside a project: where project discovery found none (nothing marks the directory or
    any above it, or it does not exist, as a daemon request for a vanished directory may name)
    nothing is created and NoProject says to run ``outlive init``."""
    if not path.is_dir():
        if path.parent in _NOT_PROJECTS and not is_project_dir(path.parent):
            raise NoProject(
                f"no outlive project here or above; run `outlive init` (nothing marks "
                f"{path.parent} as a project: no {CONFIG_NAME}, pyproject.toml or .git)"
            )
        path.mkdir(parents=True, exist_ok=True)
    ignore = path / ".gitignore"
    if not ignore.exists():
        # Whole or not at all: an empty one (a full disk) would let git take the registry.
        import os

        tmp = path / f".gitignore.{os.getpid()}.tmp"
        try:
            tmp.write_text("# outlive's run records and local durable checkpoints\n*\n")
            os.replace(tmp, ignore)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    return path


PROJECT_ID_NAME = "project-id"  # in the state dir: this project's own id


def project_id(state_dir: Path, *, create: bool = False) -> str | None:
    """The project's id, a random token in ``.outlive/project-id``: every run it launches
    carries it, so a look adopts only its own runs from a workdir that another project of the
    same name shares on a box. Made at the first launch (``create``); None until then."""
    import os
    import re
    import secrets

    path = state_dir / PROJECT_ID_NAME
    try:
        known = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        known = ""
    if re.fullmatch(r"[0-9a-f]{32}", known) or not create:
        return known if re.fullmatch(r"[0-9a-f]{32}", known) else None
    tmp = state_dir / f".{PROJECT_ID_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        ensure_state_dir(state_dir)
        tmp.write_text(secrets.token_hex(16) + "\n")
        try:
            os.link(tmp, path)  # whole, and only if none is there: two first launches agree
        except FileExistsError:
            if project_id(state_dir) is None:
                os.replace(tmp, path)  # a damaged one: this launch's id takes its place
        except OSError:  # a filesystem without hard links
            os.replace(tmp, path)
    except (OSError, NoProject):
        return None  # a full disk: the launch goes on, its run adoptable as an older one's
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return project_id(state_dir)


def find_project_dir(start: Path) -> Path:
    """The nearest directory at or above ``start`` holding outlive.toml, pyproject.toml or .git."""
    start = start.resolve()
    for d in (start, *start.parents):
        if is_project_dir(d):
            return d
    _NOT_PROJECTS.add(start)  # a config, not a project: nothing may be created there
    return start


def load_config(start: Path | None = None) -> Config:
    if start is None:
        try:
            start = Path.cwd()
        except FileNotFoundError:
            raise UsageError(
                "the current directory no longer exists (deleted or moved); cd into your project"
            ) from None
    project_dir = find_project_dir(start)
    _check_utf8_path(project_dir)
    found = _config_file(project_dir)
    cached = _read_cache(project_dir, found)
    if cached is not None:
        return cached
    source, raw = _read_raw(project_dir)
    if source is None or raw is None:
        # No config (or a pyproject.toml without [tool.outlive]): the embedded local target,
        # cached too, since its profile is read with pydantic (~45 ms of every `run` here).
        bare = Config(
            project_dir=project_dir,
            source=None,
            project_name=project_dir.name,
            exclude=(),
            targets={LOCAL: _local_target(project_dir, None, [USER_PROFILE_DIR])},
            profile_dirs=(USER_PROFILE_DIR,),
        )
        if (project_dir / STATE_DIR).is_dir():  # never the first to make .outlive/ here
            _write_cache(bare, _cache_key(found, project_dir, bare.profile_dirs))
        return bare
    from outlive import _config_schema as schema  # pydantic only when there is a file to check

    parsed = schema.parse(raw, source)
    project_name = parsed.project.name or project_dir.name
    if parsed.project.name is None and any(name != LOCAL for name in parsed.targets):
        from outlive.wire import name_problem

        problem = name_problem(project_dir.name, "this directory's name")
        if problem:  # it would name the project's directories on its boxes
            raise ConfigError(
                f'{problem}; set the project\'s name in {source}: [project] name = "..."'
            )
    profile_dirs = [USER_PROFILE_DIR] + [project_dir / d for d in parsed.project.profile_dirs]
    targets = {LOCAL: _local_target(project_dir, parsed.targets.get(LOCAL), profile_dirs)}
    for name, t in parsed.targets.items():
        if name != LOCAL:
            targets[name] = _remote_target(name, t, source, project_name, profile_dirs)
    cfg = Config(
        project_dir=project_dir,
        source=source,
        project_name=project_name,
        exclude=tuple(parsed.project.exclude),
        targets=targets,
        profile_dirs=tuple(profile_dirs),
    )
    _write_cache(cfg, _cache_key(source, project_dir, cfg.profile_dirs))
    return cfg


def _check_utf8_path(path: Path) -> None:
    """Paths travel as JSON text to the box and into the registry: refuse one that is not UTF-8
    before anything is launched or recorded."""
    from outlive.naming import not_utf8

    shown = not_utf8(str(path))
    if shown is not None:
        raise ConfigError(
            f"the project directory {shown} is not valid UTF-8; rename it with UTF-8 characters"
        )


# A validated config is cached (keyed by the stat of every file it was built from, the profile
# directories it read included, and by HOME, which its ``~`` paths expand with) so that the hot
# commands do not import pydantic on each call; any change to those re-validates.
_CACHE_NAME = "config-cache.json"


def _cache_key(source: Path | None, project_dir: Path, profile_dirs: Iterable[Path]) -> list[Any]:
    """What a cached config was built from: the config file (None: there was none), outlive's
    own config code and every profile file it could read, each by its stat, and HOME."""
    import os

    from outlive import __version__

    files = [Path(__file__), Path(__file__).with_name("_config_schema.py")]
    if source is not None:
        files.insert(0, source)
    data = Path(__file__).with_name("profiles") / "data"
    dirs = [data, *profile_dirs]
    for d in dirs:
        if d.is_dir():
            files += sorted(d.glob("*.toml"))
    key: list[Any] = [
        __version__,
        str(project_dir),
        os.environ.get("HOME"),
        [str(d) for d in dirs],
        str(source) if source is not None else None,
    ]
    for f in files:
        try:
            st = f.stat()
            key.append([str(f), st.st_mtime_ns, st.st_size])
        except OSError:
            key.append([str(f), None, None])
    return key


def _read_cache(project_dir: Path, source: Path | None) -> Config | None:
    """The cached config, if the files it was built from (its own profile directories among
    them) and HOME are as they were."""
    import json

    try:
        data = json.loads((project_dir / STATE_DIR / _CACHE_NAME).read_text())
        if not isinstance(data, dict):
            return None
        c = data["config"]
        dirs = [Path(d) for d in c["profile_dirs"]]
        if data.get("key") != _cache_key(source, project_dir, dirs):
            return None
        return Config(
            project_dir=Path(c["project_dir"]),
            source=Path(c["source"]) if c["source"] is not None else None,
            project_name=c["project_name"],
            exclude=tuple(c["exclude"]),
            targets={n: Target.from_json(t) for n, t in c["targets"].items()},
            profile_dirs=tuple(dirs),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(cfg: Config, key: list[Any]) -> None:
    import json
    import os
    import threading

    c = {
        "project_dir": str(cfg.project_dir),
        "source": str(cfg.source) if cfg.source is not None else None,
        "project_name": cfg.project_name,
        "exclude": list(cfg.exclude),
        "targets": {n: t.to_json() for n, t in cfg.targets.items()},
        "profile_dirs": [str(d) for d in cfg.profile_dirs],
    }
    path = cfg.state_dir / _CACHE_NAME
    try:
        ensure_state_dir(path.parent)
        # pid and thread: the daemon may validate one project for two looks at once
        tmp = path.with_name(f".{_CACHE_NAME}.{os.getpid()}.{threading.get_ident()}")
    except (OSError, NoProject):
        return  # a read-only project still works, just without the cache
    try:
        tmp.write_text(json.dumps({"key": key, "config": c}))
        os.replace(tmp, path)
    except OSError:  # a full disk: no half-written file left behind to take more of it
        with contextlib.suppress(OSError):
            tmp.unlink()


def _config_file(project_dir: Path) -> Path | None:
    """outlive.toml, else a pyproject.toml (which may or may not have [tool.outlive])."""
    for name in (CONFIG_NAME, "pyproject.toml"):
        if (project_dir / name).is_file():
            return project_dir / name
    return None


def _read_raw(project_dir: Path) -> tuple[Path | None, dict[str, Any] | None]:
    path = project_dir / CONFIG_NAME
    if path.is_file():
        return path, _parse_toml(path)
    pyproject = project_dir / "pyproject.toml"
    if pyproject.is_file():
        tool = _parse_toml(pyproject).get("tool", {})
        if isinstance(tool, dict) and isinstance(tool.get("outlive"), dict):
            return pyproject, tool["outlive"]
    return None, None


def _parse_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):  # imported here: a cached config never needs it
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            text = f.read().decode("utf-8")
        # A byte-order mark (some Windows editors save UTF-8 with one) is not TOML's: skip it.
        return tomllib.loads(text.removeprefix("\ufeff"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix the syntax there") from None
    except RecursionError:  # the parser recurses once per level of nesting
        raise ConfigError(
            f"{path} nests arrays or tables too deeply to read; flatten that value"
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not valid UTF-8 (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}); check its permissions") from None


def _local_target(project_dir: Path, t: Any | None, profile_dirs: list[Path]) -> Target:
    """The embedded ``local`` target; what its table leaves unset comes from the ``local``
    profile, like any target's (so ``cancel`` waits the kill grace ``profiles local`` shows)."""
    from outlive.profiles import load_profile

    prof = load_profile("local", profile_dirs)
    durable = project_dir / STATE_DIR / "durable"
    if t is not None and t.durable:
        durable = (project_dir / Path(t.durable).expanduser()).resolve()
    return Target(
        name=LOCAL,
        profile="local",
        kind="local",
        backend="process",
        connection=Connection(),
        placement=Placement(workdir=str(project_dir), durable=str(durable)),
        policy=JobPolicy(
            env=dict(t.env) if t is not None else {},
            secrets=tuple(t.secrets) if t is not None else (),
            kill_grace_s=_first(t.kill_grace_s if t is not None else None, prof.kill_grace_s),
            spot_grace_s=t.spot_grace_s if t is not None else None,
            mtbf_s=t.mtbf_s if t is not None else None,
        ),
    )


def _remote_target(
    name: str, t: Any, source: Path | None, project: str, profile_dirs: list[Path]
) -> Target:
    """A target from its table, every unset value taken from its platform profile."""
    from outlive.profiles import load_profile

    try:
        prof = load_profile(t.profile, profile_dirs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: [targets.{name}] profile: {exc}") from None
    d = prof.defaults.resolve(project)
    workdir = t.workdir or d.workdir
    if not workdir or workdir == ".":
        raise ConfigError(
            f"[targets.{name}] in {source} has no workdir and profile {prof.name!r} gives none; "
            'set workdir = "/path/on/the/box"'
        )
    spot = bool(t.spot)
    slurm = prof.kind == "slurm"  # submits with sbatch: on `host` over SSH, or here without one
    k8s = prof.kind == "kubernetes"  # the user's kubectl, here: no host
    kaggle = prof.detach_primitive == "kaggle-commit"  # the user's kaggle CLI, here: no host
    options: BackendOptions = ProcessOptions(detach=t.detach)
    if slurm:
        options = t.slurm_options()
    elif k8s:
        options = t.kubernetes_options(f"{source}: [targets.{name}]")
    elif kaggle:
        options = t.kaggle_options(f"{source}: [targets.{name}]", prof)
    kind = "slurm" if slurm else "kubernetes" if k8s else "kaggle" if kaggle else "ssh"
    return Target(
        name=name,
        profile=prof.name,
        kind=kind,
        backend=kind if slurm or k8s or kaggle else "process",
        connection=Connection(
            transport="ssh" if t.host or not (slurm or k8s or kaggle) else "local",
            host=t.host,
            port=t.port,
            user=t.user,
            identity_file=t.identity_file,
            ssh_config=t.ssh_config,
            accept_new_host_keys=t.accept_new_host_keys,
            python=t.python,
        ),
        placement=Placement(
            workdir=workdir,
            durable=t.durable or d.durable_dir or f"{workdir.rstrip('/')}/.outlive/durable",
            hf_home=t.hf_home or d.hf_home,
            outputs=tuple(t.outputs),
        ),
        policy=JobPolicy(
            env=dict(t.env),
            secrets=tuple(t.secrets),
            spot=spot,
            kill_grace_s=_first(t.kill_grace_s, prof.kill_grace_s, 30.0),
            spot_grace_s=_first(t.spot_grace_s, prof.spot_grace_s if spot else None),
            # An interruption model applies to spot rentals and to capped sessions, not to a
            # box the user holds on demand.
            mtbf_s=_first(t.mtbf_s, prof.mtbf_s if spot or not prof.spot_available else None),
        ),
        options=options,
        cloud_id=t.cloud_id,
    )


def _first(*values: float | None) -> Any:
    return next((v for v in values if v is not None), None)
