"""The command line, defined once: every command is a name, its help, a class of its arguments
(each field carries its flags, help and default) and its handler as a ``"module:function"``
reference, imported only when that command runs. ``outlive.cli.parser`` turns this table into
argparse parsers; the daemon parses ``status`` with the same table.

A field's annotation says how it parses: ``bool`` is a flag, ``T | None`` an optional value,
``list[T]`` a repeatable option or a variadic positional, and a ``rest()`` field takes the command
after ``--``, unparsed. The argument classes are plain classes, not dataclasses: creating two
dozen dataclasses costs ~13 ms of every start (this module: ~1.5 ms), and ``run`` and ``status``
are hot.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pathlib import Path

_REQUIRED: Any = object()


class Spec:
    """How one field of an arguments class appears on the command line, and its default."""

    __slots__ = ("default", "flags", "help", "metavar", "negatable", "rest")

    def __init__(
        self,
        flags: tuple[str, ...],  # empty: a positional argument
        help: str,
        *,
        metavar: str | None = None,
        default: object = _REQUIRED,
        negatable: bool = False,  # --x / --no-x
        rest: bool = False,  # the command after `--`
    ) -> None:
        self.flags, self.help, self.metavar = flags, help, metavar
        self.default, self.negatable, self.rest = default, negatable, rest

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def initial(self) -> object:
        """The value when the command line does not give one (a fresh list for lists)."""
        return list(self.default) if isinstance(self.default, list) else self.default


class Args:
    """Base of the arguments classes: each annotated class attribute is a field, in order, whose
    class value is its ``Spec``; an instance holds the parsed values and is read-only."""

    @classmethod
    def fields(cls) -> list[tuple[str, str, Spec]]:
        """(name, annotation, spec) of each field, in order."""
        # own annotations only (Python >= 3.10); strings, by `from __future__ import annotations`;
        # inspect.get_annotations would import inspect (~5 ms) on the hot path
        notes: dict[str, str] = cls.__annotations__
        return [(name, note, cls.__dict__[name]) for name, note in notes.items()]

    def __init__(self, **values: object) -> None:
        for name, _, spec in self.fields():
            if name in values:
                value = values.pop(name)
            elif spec.required:
                raise TypeError(f"{type(self).__name__} needs {name}")
            else:
                value = spec.initial()
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__} has no field {', '.join(sorted(values))}")

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({inner})"


A = TypeVar("A", bound=Args)


def arg(help: str, *, metavar: str | None = None, default: Any = _REQUIRED) -> Any:
    """A positional argument; with a ``default`` it may be left out."""
    return Spec((), help, metavar=metavar, default=default)


def many(help: str, *flags: str, metavar: str | None = None) -> Any:
    """A repeatable option (``flags``) or a variadic positional (no flags); empty by default."""
    return Spec(flags, help, metavar=metavar, default=[])


def opt(*flags: str, help: str, default: Any = None, metavar: str | None = None) -> Any:
    """An option taking a value."""
    return Spec(flags, help, metavar=metavar, default=default)


def flag(*flags: str, help: str, default: bool = False, negatable: bool = False) -> Any:
    """A boolean flag; ``negatable`` adds ``--no-X``."""
    return Spec(flags, help, default=default, negatable=negatable)


def rest(help: str) -> Any:
    """The command after ``--``, taken as it is (words before ``--`` are accepted too)."""
    return Spec((), help, metavar="CMD", default=[], rest=True)


def json_flag() -> Any:
    return flag("--json", help="Print exactly one JSON document.")


# -- the project and its runs -------------------------------------------------------------------


class InitArgs(Args):
    force: bool = flag("--force", help="Overwrite an existing outlive.toml.", negatable=True)
    profile: str | None = opt(
        "--profile", help="Add a commented target for this platform (see `outlive profiles`)."
    )


class TargetsArgs(Args):
    as_json: bool = json_flag()


class TargetArgs(Args):
    """A command on one target (``push``)."""

    target: str = arg("Target name.")
    as_json: bool = json_flag()


class RunArgs(Args):
    command: list[str] = rest("The command, after `--`.")
    target: str = opt("-t", "--target", help="Target name.", default="local")
    name: str | None = opt("--name", help="Run name; the same name resumes the same checkpoints.")
    detach_with: str | None = opt(
        "--detach-with", help="setsid (default) or tmux (attachable session)."
    )
    array: int | None = opt("--array", help="Slurm: run CMD as a job array of N cells.")
    queue: str | None = opt(
        "--queue", help="Slurm: one command per line of FILE, as one job array."
    )
    throttle: int | None = opt("--throttle", help="Slurm: at most K array cells at once.")
    after: list[str] = many(
        "Slurm: start only after RUN succeeded (repeatable).", "--after", metavar="RUN"
    )
    as_json: bool = json_flag()


class StatusArgs(Args):
    runs: list[str] = many("Run ids or names (default: all).", metavar="RUN")
    as_json: bool = json_flag()
    discover: bool = flag(
        "--discover",
        help="Also look at every target this project has no run on (a fresh clone, a lost "
        ".outlive/): its own runs found there are recorded, another copy's are counted.",
    )


class LogsArgs(Args):
    run_ref: str = arg("Run id or name.", metavar="RUN")
    follow: bool = flag("-f", "--follow", help="Follow until the run ends.")
    follow_name: bool = flag(
        "--follow-name", help="With -f: go on to the next run launched under the same name."
    )
    lines: int = opt("-n", "--lines", help="Lines from the end.", default=20)


class WatchArgs(Args):
    run_ref: str = arg("Run id or name.", metavar="RUN")
    interval_s: float = opt("--interval-s", help="Seconds between looks.", default=1.0)
    stall_s: float = opt(
        "--stall-s", help="Flag a stall when no heartbeat for this long.", default=300.0
    )


class RunRefArgs(Args):
    """A command on one run (``cancel``, ``doctor``)."""

    run_ref: str = arg("Run id or name.", metavar="RUN")
    as_json: bool = json_flag()


class SweepArgs(Args):
    file: str = arg("The sweep file (TOML: command template + [grid] or [[list]]).", metavar="FILE")
    targets: list[str] = many(
        "Target to run items on (repeatable; default: local).", "-t", "--target", metavar="TARGET"
    )
    per_target: int | None = opt(
        "--per-target",
        help="At most K items at once per target (default: one per GPU the "
        "audit finds, 1 when none).",
        metavar="K",
    )
    retries: int = opt(
        "--retries",
        help="Relaunch an item that failed by its own code at most N times.",
        default=1,
        metavar="N",
    )
    items: str | None = opt(
        "--items", help="One item per line of FILE, bound to {item} in the command.", metavar="FILE"
    )
    poll_s: float = opt("--poll-s", help="Seconds between looks.", default=0.25)
    as_json: bool = json_flag()


class SweepStatusArgs(Args):
    sweep: str | None = arg(
        "A sweep name or its file (default: the newest sweep).", metavar="FILE|NAME", default=None
    )
    by: str | None = opt(
        "--by",
        help="Rank the best items by this progress metric (lowest "
        "first; default: the first metric the items report).",
        metavar="METRIC",
    )
    highest: bool = flag("--highest", help="With --by: the highest value is best.")
    as_json: bool = json_flag()


class MoveArgs(Args):
    run_ref: str = arg("Run id or name.", metavar="RUN")
    to: str = opt(
        "--to", help="The target to move the run to.", default=_REQUIRED, metavar="TARGET"
    )
    as_json: bool = json_flag()


class DemoArgs(Args):
    steps: int = opt("--steps", help="Training steps of the toy run.", default=300)
    keep: bool = flag("--keep", help="Keep the demo's project directory.", negatable=True)


# -- the catalog, the box, results ------------------------------------------------------------


class ProfilesArgs(Args):
    name: str | None = arg("Profile name (default: all).", default=None)
    as_json: bool = json_flag()


class ExplainArgs(Args):
    source: str = arg("A log file, '-' for stdin, or a run.", metavar="FILE|RUN")
    as_json: bool = json_flag()


class GotchaArgs(Args):
    gotcha_id: str | None = arg("e.g. U6, RP4.", metavar="ID", default=None)
    search_words: str | None = opt("--search", help="Entries containing all these words.")
    as_json: bool = json_flag()


class UpArgs(Args):
    target: str = arg("Target name.")
    as_json: bool = json_flag()
    torch: bool = flag(
        "--torch",
        help="Probe torch for the CUDA triangle (up to 30 s).",
        default=True,
        negatable=True,
    )


class SmokeArgs(Args):
    command: list[str] = rest("The command, after `--`.")
    timeout_s: float = opt("--timeout-s", help="Give up after this many seconds.", default=300.0)
    as_json: bool = json_flag()


class PullArgs(Args):
    run_ref: str = arg("Run id, name (its newest run) or id prefix.", metavar="RUN")
    target: str | None = opt(
        "-t", "--target", help="Look for RUN on this target (needed when a name is on several)."
    )
    to: Path | None = opt(
        "--to", help="Local directory (default .outlive/pulled/<run-name>/<run-id>/)."
    )
    output: list[str] = many(
        "A declared output path, relative to the workdir (repeatable); the durable checkpoint "
        "directory is always pulled.",
        "--output",
    )
    retries: int = opt("--retries", help="Attempts per directory.", default=6)
    stall_timeout_s: float = opt(
        "--stall-timeout-s", help="End an attempt after this long idle.", default=30.0
    )
    attempt_timeout_s: float = opt(
        "--attempt-timeout-s", help="Longest one attempt may run.", default=3600.0
    )
    bwlimit_kbps: int | None = opt(
        "--bwlimit-kbps", help="Cap the whole pull at this rate (KiB/s), shared among the rsyncs."
    )
    compress: str = opt(
        "--compress", help="auto (by a sample of each file), always or never.", default="auto"
    )
    parallel: int = opt("--parallel", help="Directories moved at once.", default=4)
    follow_links: bool = flag(
        "--follow-links",
        help="Pull the content behind symlinks that point outside the run's result roots "
        "(by default they are listed as not pulled).",
    )
    require_load_check: bool = flag(
        "--require-load-check",
        help="Fail a checkpoint that cannot be loaded here (torch not installed) instead of "
        "proving it by SHA-256 only.",
    )
    rehash: bool = flag(
        "--rehash",
        help="Read every byte at both ends, reusing no hash of an earlier pull (by default a "
        "file unchanged since an earlier pull, by size, mtime, inode and ctime, keeps its hash).",
    )
    as_json: bool = json_flag()


class VerifyArgs(Args):
    directory: Path = arg("A directory made by pull.", metavar="DIR")
    require_load_check: bool = flag(
        "--require-load-check",
        help="Fail a checkpoint that cannot be loaded here (torch not installed).",
    )
    as_json: bool = json_flag()


class DownArgs(Args):
    target: str = arg("Target name.")
    confirm: str | None = opt(
        "--confirm", help="The target's name, typed (non-interactive).", metavar="NAME"
    )
    abandon_results: bool = flag(
        "--abandon-results", help="Give up results not covered by a verified pull."
    )
    confirm_abandon: str | None = opt(
        "--confirm-abandon", help="Confirms --abandon-results.", metavar="'abandon NAME'"
    )
    require_load_check: bool = flag(
        "--require-load-check",
        help="Count only pulls whose checkpoints were loaded here, not proven by SHA-256 only.",
    )
    execute: bool = flag(
        "--execute",
        help="Once the gate passes, call the provider's meter-stop verb on the target's "
        "cloud_id (nothing else) and list again to confirm.",
    )
    as_json: bool = json_flag()


class SecretPushArgs(Args):
    target: str = arg("Target name.")
    name: str = arg("Secret name, e.g. HF_TOKEN.")
    from_env: str | None = opt("--from-env", help="Read the value from this local env var.")
    as_json: bool = json_flag()


class TunnelArgs(Args):
    target: str = arg("Target name.")
    ports: str = arg("Remote port[:local port].", metavar="PORT[:LOCAL]")


class NotebookArgs(Args):
    name: str | None = opt("--name", help="Notebook and run name (required): writes NAME.ipynb.")
    target: str | None = opt("--target", help="A colab target of outlive.toml (its env).")
    command: list[str] = rest("The command, after `--`.")


class GradientArgs(Args):
    name: str | None = opt("--name", help="Notebook and run name (required): writes NAME.ipynb.")
    target: str | None = opt(
        "--target", help="A paperspace-notebook target of outlive.toml (its env)."
    )
    requirements: Path | None = opt(
        "--requirements",
        help="A pip requirements file, installed once into a venv on /storage and reused.",
        metavar="FILE",
    )
    auto_shutdown_h: float | None = opt(
        "--auto-shutdown-h",
        help="The notebook's auto-shutdown timer in hours (default 6: the free GPUs' cap).",
        metavar="H",
    )
    command: list[str] = rest("The command, after `--`.")


class McpArgs(Args):
    """``mcp`` takes no arguments: it serves the project of the current directory."""


class UiArgs(Args):
    port: int = opt("--port", help="Port on 127.0.0.1 (0: a free one).", default=0)
    no_browser: bool = flag("--no-browser", help="Print the URL; do not open a browser.")
    as_json: bool = flag("--json", help='Print {"url": ...} (the URL carries the token).')


class JsonArgs(Args):
    """A command whose only option is ``--json`` (``ls``, ``daemon status|stop``)."""

    as_json: bool = json_flag()


# -- the table ----------------------------------------------------------------------------------


class Command(Generic[A]):
    """One command: ``name`` is one word, or ``"group sub"`` for a sub-command."""

    __slots__ = ("args", "handler", "help", "name")

    def __init__(self, name: str, help: str, args: type[A], handler: str) -> None:
        self.name, self.help, self.args = name, help, args
        self.handler = handler  # "module:function", imported only when the command runs

    def load(self) -> Callable[[A], int]:
        """The handler function (imported now)."""
        from importlib import import_module

        module, _, function = self.handler.partition(":")
        fn: Callable[[A], int] = getattr(import_module(module), function)
        return fn


_RUN = "outlive.cli.run_cmds:"
_PROJECT = "outlive.cli.project_cmds:"
_CATALOG = "outlive.cli.catalog_cmds:"
_DIAG = "outlive.cli.diag_cmds:"
_PULL = "outlive.cli.pull_cmds:"
_REMOTE = "outlive.cli.remote_cmds:"
_CLOUD = "outlive.cli.cloud_cmds:"
_NOTEBOOK = "outlive.cli.notebook_cmds:"
_SWEEP = "outlive.cli.sweep_cmds:"

COMMANDS: tuple[Command[Any], ...] = (
    Command("init", "Write a commented outlive.toml in the current directory.", InitArgs,
            _PROJECT + "init"),
    Command("targets", "List configured targets (`local` always exists).", TargetsArgs,
            _PROJECT + "targets"),
    Command("push", "Sync the project to TARGET (delta; .gitignore + excludes) and verify it "
            "there by hash.", TargetArgs, _PROJECT + "push"),
    Command("run", "Launch CMD detached on TARGET; print the run id and return.", RunArgs,
            _RUN + "do_run"),
    Command("status", "State of runs, with a diagnosis when one vanished; one round trip per "
            "target.", StatusArgs, _RUN + "status"),
    Command("ls", "All runs known to this project (as last seen; `status` looks again).",
            JsonArgs, _RUN + "ls"),
    Command("logs", "Tail a run's log; -f follows it and survives connection drops.", LogsArgs,
            _RUN + "logs"),
    Command("watch", "Live view of a run until it ends; flags stalls. Exit 0 only if it "
            "succeeded.", WatchArgs, _RUN + "watch"),
    Command("cancel", "Send TERM to the job (it may save and exit), then KILL after the "
            "target's grace.", RunRefArgs, _RUN + "cancel"),
    Command("demo", "Kill a toy training run mid-way, relaunch it, and prove the resumed "
            "result bit for bit.", DemoArgs, _PROJECT + "demo"),
    Command("profiles", "Platform profiles: danger clocks first, then the survival matrix and "
            "teardown table.", ProfilesArgs, _CATALOG + "profiles"),
    Command("explain", "Match log text against the gotcha catalog: each known failure with its "
            "line and fix.", ExplainArgs, _CATALOG + "explain"),
    Command("gotcha", "Read the gotcha catalog: one entry, a search, or the whole list.",
            GotchaArgs, _CATALOG + "gotcha"),
    Command("up", "Phase-0 audit of TARGET: PASS / WARN / FAIL per check with gotcha IDs; exit "
            "1 on FAIL.", UpArgs, _DIAG + "up"),
    Command("doctor", "Why RUN died or is slow: the vanished ladder, GPU health, disks, threads "
            "vs the quota.", RunRefArgs, _DIAG + "doctor"),
    Command("smoke", "Run CMD here, in the foreground, for 1-2 steps (OUTLIVE_SMOKE=1, a "
            "throwaway checkpoint dir) before paying for a GPU; on failure, match its output "
            "against the gotcha catalog.", SmokeArgs, _DIAG + "smoke"),
    Command("pull", "Pull a run's results (resumable, per directory) and verify them by hash "
            "and by load.", PullArgs, _PULL + "pull"),
    Command("verify", "Check a pulled directory against its manifest again: roster, sizes, "
            "SHA-256, loads.", VerifyArgs, _PULL + "verify"),
    Command("down", "The teardown gate (Iron Law): refuses until every result is pulled and "
            "verified, shows what the platform's verbs stop, keep billing and destroy, and "
            "after the target's name is typed prints the commands to run; with --execute it "
            "calls the provider's meter-stop verb on the target's pod or machine and confirms "
            "the meter stopped.", DownArgs, _PULL + "down"),
    Command("cloud ls", "Every pod/machine, volume, network volume, snapshot and IP of the "
            "configured provider accounts, with state, $/h and the outlive target using it.",
            JsonArgs, _CLOUD + "ls"),
    Command("cloud audit", "What bills with no active run or unpulled result behind it, why, "
            "$/h and $/month, costliest first; exit 1 when anything is found.", JsonArgs,
            _CLOUD + "audit"),
    Command("notebook colab", "Write NAME.ipynb: Drive (or $OUTLIVE_DRIVE_DIR), the project, "
            "CMD under outlive's supervisor with checkpoints on Drive; run it again to resume.",
            NotebookArgs, _NOTEBOOK + "colab"),
    Command("notebook gradient", "Write NAME.ipynb for Paperspace Gradient: code, records and "
            "checkpoints on /storage (or $OUTLIVE_STORAGE_DIR), requirements in a venv there, a "
            "save before the auto-shutdown; run it again to resume.", GradientArgs,
            _NOTEBOOK + "gradient"),
    Command("mcp", "Serve the lifecycle as Model Context Protocol tools over stdio for an AI "
            "agent: typed tools mirroring --json, `down` in two calls with a one-time token, no "
            "secret through any tool.", McpArgs, "outlive.cli.mcp_cmds:mcp"),
    Command("ui", "Serve a local dashboard of every run (board, curves, logs, cancel) on "
            "127.0.0.1 with a per-start token in the URL; runs until Ctrl-C.", UiArgs,
            "outlive.cli.ui_cmds:ui"),
    Command("tunnel", "Forward localhost:LOCAL to TARGET's PORT (TensorBoard, Jupyter) over "
            "the shared master; runs until Ctrl-C.", TunnelArgs, _REMOTE + "tunnel"),
    Command("secret push", "Store NAME on TARGET as a 0600 file on box-local disk; the value "
            "comes from stdin or --from-env and never appears in any command line, log or "
            "error (U34).", SecretPushArgs, _REMOTE + "secret_push"),
    Command("sweep", "Run every item of a sweep file as a named run over the targets, at most "
            "K at once per target, until all are done; rerun it to continue (finished items never "
            "rerun, running ones are adopted). `outlive sweep status` shows it.", SweepArgs,
            _SWEEP + "sweep"),
    Command("sweep status", "A sweep's items: state, target, progress, last metric, restarts; a "
            "summary line and the best items by a metric.", SweepStatusArgs,
            _SWEEP + "sweep_status"),
    Command("move", "Move RUN to another target: TERM (it saves), pull and verify its latest "
            "checkpoint, push code and checkpoint there, relaunch under the same name.",
            MoveArgs, _SWEEP + "move"),
    Command("daemon status", "List this user's running daemons: pid, age, open agent "
            "channels.", JsonArgs, _REMOTE + "daemon_status"),
    Command("daemon stop", "Stop this user's daemons (they close their agent channels; runs "
            "are not touched).", JsonArgs, _REMOTE + "daemon_stop"),
)  # fmt: skip

GROUPS = {
    "cloud": "Provider accounts (RunPod, Paperspace): what is billing, and what bills with "
    "nothing behind it.",
    "notebook": "Generated notebooks for platforms with no shell (Colab): runs that survive "
    "their sessions.",
    "secret": "Move credentials to a box without putting them on a command line.",
    "sweep": "Resumable sweeps of named runs over several targets.",
    "daemon": "The local daemon that answers `status` warm (started by the first look; "
    "OUTLIVE_NO_DAEMON=1 turns it off).",
}

DESCRIPTION = "Run long GPU jobs on rented or borrowed machines so the result outlives the machine."


def find(name: str) -> Command[Any] | None:
    """The command called ``name`` (``"secret push"`` for a sub-command), if there is one."""
    for cmd in COMMANDS:
        if cmd.name == name:
            return cmd
    return None
