"""The MCP server: the lifecycle as tools (typed inputs, the CLI's ``--json`` documents as
structured output), the gotcha catalog and platform profiles as resources.

Every tool runs its body in a worker thread under a stated timeout and answers by then; a bad
argument or a refusal from the library is one sentence (``isError``), nothing executed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field, ValidationError

from outlive.errors import OutliveError
from outlive.mcp_server import shapes as S
from outlive.mcp_server.resources import add_resources
from outlive.mcp_server.tools import MAX_LOG_LINES, Tools

T = TypeVar("T")
log = logging.getLogger("outlive.mcp")

IRON_LAW = "Iron Law: never tear down a box before its results are pulled and verified."
CLOCKS = (
    "Danger clocks: auto-shutdowns, walltimes, session caps and 'stopped still bills' kill "
    "jobs or keep billing; read `profiles` (clocks first) before you run."
)
SECRETS = (
    "Secrets never pass through these tools: a human runs `outlive secret push TARGET NAME` "
    "with the value on stdin."
)

# How long each tool may take before it answers with a timeout (pull: its own argument).
TIMEOUTS_S: dict[str, float] = {
    "targets": 30, "profiles": 30, "up": 180, "run": 300, "status": 120, "logs": 60,
    "explain": 120, "doctor": 180, "verify": 600, "down": 600, "cloud_audit": 120,
    "sweep_status": 180,
}  # fmt: skip
PULL_TIMEOUT_S = 900.0
PULL_TIMEOUT_MAX_S = 6 * 3600.0

INSTRUCTIONS = f"""outlive runs long GPU jobs on rented machines so the results outlive the machine.
Loop: targets -> profiles (danger clocks) -> up (audit) -> run -> status / logs (watch) ->
pull (verified by hash and load) -> down (two calls: the second with the token the first gave;
execute=true in both to stop the meter through the provider's API). sweep_status watches sweeps.
Trust status's state and diagnosis, not a log line; `explain` and `doctor` say why a run died.
{IRON_LAW}
{CLOCKS}
{SECRETS}"""


def _desc(text: str, tool: str, *extra: str) -> str:
    timeout = f"Times out after {TIMEOUTS_S[tool]:g} s." if tool in TIMEOUTS_S else ""
    return "\n".join([text, timeout, *extra]).strip()


def one_sentence(exc: ValidationError) -> str:
    """The first problem of an argument validation, without echoing the value given."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(p) for p in first["loc"]) or "arguments"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"argument {where!r}: {first['msg'].rstrip('.')}{more}; see the tool's input schema"


class OutliveMCP(MCPServer[Any]):
    """MCPServer whose tool errors are one sentence: outlive's own, or a short one of ours."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, OutliveError | ToolError):
                return _error(str(cause))
            if isinstance(cause, ValidationError):
                return _error(one_sentence(cause))
            if isinstance(exc, UnexpectedToolError):
                log.error("tool %s failed", name, exc_info=cause)
                return _error(
                    f"the {name} tool failed unexpectedly ({type(cause).__name__}); the server's "
                    "stderr has the details"
                )
            return _error(str(exc))


def _error(sentence: str) -> CallToolResult:
    from mcp.types import TextContent

    return CallToolResult(content=[TextContent(type="text", text=sentence)], is_error=True)


async def _bounded(tool: str, fn: Callable[[], T], timeout_s: float | None = None) -> T:
    """Run ``fn`` in a worker thread; answer within the timeout whatever it does."""
    limit = TIMEOUTS_S[tool] if timeout_s is None else timeout_s
    try:
        with anyio.fail_after(limit):
            return await anyio.to_thread.run_sync(fn, abandon_on_cancel=True)
    except TimeoutError:
        raise ToolError(
            f"{tool} did not finish within {limit:g} s; whatever it started goes on in the "
            "background: look again with `status` before repeating it"
        ) from None


def _progress(ctx: Context[Any, Any]) -> Callable[[int, int, str], None]:
    """A callback for any thread (the pull's transfer threads too) that sends progress
    notifications on the server's event loop, at most 4 a second."""
    loop = anyio.lowlevel.current_token()
    last = [0.0]

    def report(done: int, total: int, what: str) -> None:
        now = time.monotonic()
        if now - last[0] < 0.25 and done < total:
            return
        last[0] = now
        # the request may have ended (timed out): then nobody is listening any more
        with contextlib.suppress(Exception):
            anyio.from_thread.run(
                ctx.report_progress, float(done), float(total) or None, what, token=loop
            )

    return report


def _note(ctx: Context[Any, Any]) -> Callable[[str], None]:
    """A callback for any thread that sends a note as an MCP log message."""
    loop = anyio.lowlevel.current_token()

    def note(message: str) -> None:
        with contextlib.suppress(Exception):
            anyio.from_thread.run(ctx.info, message, token=loop)

    return note


RunRef = Annotated[str, Field(description="Run id, name or id prefix.", max_length=200)]
TargetName = Annotated[str, Field(description="Target name (see `targets`).", max_length=200)]
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def build(project: Path) -> OutliveMCP:
    """The server for the project at ``project``."""
    tools = Tools(project)
    mcp = OutliveMCP("outlive", instructions=INSTRUCTIONS, version=_version())

    @mcp.tool(description=_desc("Configured targets (`local` always exists).", "targets"),
              annotations=READ)  # fmt: skip
    async def targets() -> S.TargetsOut:
        return await _bounded("targets", tools.targets)

    @mcp.tool(
        description=_desc(
            "Platform profiles: every danger clock first, then each profile's storage survival "
            "and teardown facts.",
            "profiles",
            CLOCKS,
        ),
        annotations=READ,
    )
    async def profiles(
        name: Annotated[str | None, Field(description="One profile (default: all).",
                                          max_length=200)] = None,
    ) -> S.ProfilesOut:  # fmt: skip
        return await _bounded("profiles", lambda: tools.profiles(name))

    @mcp.tool(
        description=_desc(
            "Phase-0 audit of a target: PASS / WARN / FAIL per check with gotcha IDs; ok is "
            "false on any FAIL. Run it before paying for a job.",
            "up",
            CLOCKS,
        ),
        annotations=READ,
    )
    async def up(
        target: TargetName,
        torch: Annotated[bool, Field(description="Probe torch for the CUDA triangle.")] = True,
    ) -> S.UpOut:
        return await _bounded("up", lambda: tools.up(target, torch))

    @mcp.tool(
        description=_desc(
            "Push the project and launch a command detached on a target; returns the run id at "
            "once (the job keeps running). The same name resumes the same checkpoints. Sends "
            "progress notifications while it deploys.",
            "run",
            CLOCKS,
            SECRETS,
        ),
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=False),
    )
    async def run(
        command: Annotated[list[str], Field(description="The command as words, e.g. "
                                             "[\"python\", \"train.py\"]; no shell.",
                                             min_length=1, max_length=256)],
        target: TargetName = "local",
        name: Annotated[str | None, Field(description="Run name; reuse it to resume.",
                                          max_length=200)] = None,
        ctx: Context[Any, Any] | None = None,
    ) -> S.RunOut:  # fmt: skip
        step = _progress(ctx) if ctx is not None else (lambda *_: None)
        return await _bounded("run", lambda: tools.run(target, command, name, step))

    @mcp.tool(
        description=_desc(
            "State of runs (all when none named), one round trip per target: state is one of "
            "pending, running, succeeded, failed, vanished, cancelled, requeued; a vanished run "
            "carries a diagnosis with its cause and evidence. Trust this, not a log line.",
            "status",
        ),
        annotations=READ,
    )
    async def status(
        runs: Annotated[list[str], Field(description="Run ids or names (default: all).",
                                         max_length=1000)] = [],  # noqa: B006
    ) -> S.StatusOut:  # fmt: skip
        return await _bounded("status", lambda: tools.status(list(runs)))

    @mcp.tool(
        description=_desc(
            f"The last lines of a run's log (at most {MAX_LOG_LINES} lines and 64 KiB, "
            "newest kept). A log line proves nothing about state: use status.",
            "logs",
        ),
        annotations=READ,
    )
    async def logs(
        run: RunRef,
        lines: Annotated[int, Field(description="Lines from the end.", ge=1,
                                    le=MAX_LOG_LINES)] = 50,
    ) -> S.LogsOut:  # fmt: skip
        return await _bounded("logs", lambda: tools.logs(run, lines))

    @mcp.tool(
        description=_desc(
            "Match log text against the gotcha catalog (most specific first): give exactly one "
            "of run (its log), file (a path inside the project) or text.",
            "explain",
        ),
        annotations=READ,
    )
    async def explain(
        run: Annotated[str | None, Field(description="Run id or name.", max_length=200)] = None,
        file: Annotated[str | None, Field(description="A log file, relative to the project.",
                                          max_length=4096)] = None,
        text: Annotated[str | None, Field(description="Log text.")] = None,
    ) -> S.ExplainOut:  # fmt: skip
        return await _bounded("explain", lambda: tools.explain(run, file, text))

    @mcp.tool(
        description=_desc(
            "Why a run died or is slow: the vanished ladder (reboot, OOM, killed), GPU health, "
            "disks, threads vs the CPU quota.",
            "doctor",
        ),
        annotations=READ,
    )
    async def doctor(run: RunRef) -> S.DoctorOut:
        return await _bounded("doctor", lambda: tools.doctor(run))

    @mcp.tool(
        description=_desc(
            "Pull a run's results (resumable, per directory) and verify them by SHA-256 and by "
            "loading every checkpoint; ok is true only then. Sends progress notifications. "
            f"Times out after timeout_s (default {PULL_TIMEOUT_S:g} s); run it again to resume.",
            "pull",
            IRON_LAW,
        ),
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True),
    )
    async def pull(
        run: RunRef,
        to: Annotated[str | None, Field(description="Local directory, relative to the project "
                                        "(default .outlive/pulled/NAME/ID).",
                                        max_length=4096)] = None,
        outputs: Annotated[list[str], Field(description="Declared output paths, relative to "
                                            "the workdir.", max_length=64)] = [],  # noqa: B006
        timeout_s: Annotated[float, Field(description="Answer within this many seconds.",
                                          gt=0, le=PULL_TIMEOUT_MAX_S)] = PULL_TIMEOUT_S,
        ctx: Context[Any, Any] | None = None,
    ) -> S.PullOut:  # fmt: skip
        step = _progress(ctx) if ctx is not None else (lambda *_: None)
        say = _note(ctx) if ctx is not None else (lambda _: None)
        return await _bounded(
            "pull", lambda: tools.pull(run, to, list(outputs), timeout_s, step, say), timeout_s
        )

    @mcp.tool(
        description=_desc(
            "Check a pulled directory (relative to the project) against its manifest again: "
            "roster, sizes, SHA-256, loads.",
            "verify",
        ),
        annotations=READ,
    )
    async def verify(
        dir: Annotated[str, Field(description="A directory made by pull, relative to the "
                                  "project.", max_length=4096)],
    ) -> S.VerifyOut:  # fmt: skip
        return await _bounded("verify", lambda: tools.verify(dir))

    @mcp.tool(
        description=_desc(
            "A sweep's items as their runs show them now (`outlive sweep status --json`): state, "
            "target, step and metric per item, counts by state, the best items by a metric. "
            "Starting a sweep is the CLI's `outlive sweep FILE`.",
            "sweep_status",
        ),
        annotations=READ,
    )
    async def sweep_status(
        sweep: Annotated[str | None, Field(description="A sweep name, or its file relative to "
                                           "the project (default: the newest sweep).",
                                           max_length=4096)] = None,
        by: Annotated[str | None, Field(description="Rank the best items by this progress "
                                        "metric (lowest first).", max_length=200)] = None,
        highest: Annotated[bool, Field(description="With by: the highest value is best.")] = False,
    ) -> S.SweepStatusOut:  # fmt: skip
        return await _bounded("sweep_status", lambda: tools.sweep_status(sweep, by, highest))

    @mcp.tool(
        description=_desc(
            "The teardown gate, in two calls. Without a token: the verdict, what the target's "
            "pod or machine bills now (cloud), and a one-time token when every result is covered "
            "by a verified pull. With that token: the plan of teardown commands for a human "
            "(outlive runs none). With execute=true in both calls (a target with a cloud_id and "
            "its provider's key): the second call calls the profile's meter-stop verb (RunPod "
            "terminate, Paperspace shut-down) on that one pod or machine, then lists again and "
            "says what still bills. Any change in between (a run, a file on the box, a pull) voids "
            "the token; nothing is stopped without it.",
            "down",
            IRON_LAW,
            CLOCKS,
        ),
        annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=False),
    )
    async def down(
        target: TargetName,
        token: Annotated[str | None, Field(description="The token the first call returned.",
                                           max_length=200)] = None,
        execute: Annotated[bool, Field(description="Stop the meter through the provider's API "
                                       "once the gate passes (give the same value in both "
                                       "calls: the token is bound to it).")] = False,
    ) -> S.DownOut:  # fmt: skip
        return await _bounded("down", lambda: tools.down(target, token, execute))

    @mcp.tool(
        description=_desc(
            "The orphan audit of the configured provider accounts (RunPod, Paperspace; keys from "
            "the server's environment or key files): everything that bills with no active run or "
            "unpulled result of this project behind it, why, and its cost; costliest first. It "
            "only looks; stopping anything is `down` on its target.",
            "cloud_audit",
            CLOCKS,
        ),
        annotations=READ,
    )
    async def cloud_audit() -> S.CloudAuditOut:
        return await _bounded("cloud_audit", tools.cloud_audit)

    add_resources(mcp, project)
    return mcp


def _version() -> str:
    from importlib.metadata import version

    return version("outlive")
