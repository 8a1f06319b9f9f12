"""The interface every platform implements on the client side, and the fat base most use.

A backend turns the lifecycle's verbs into one platform's actions: launch (one run, or an array),
probe (many runs, one round trip), cancel, tail (a log chunk by offset), the result manifest, and
file transfer in and out (its transport). The lifecycle owns the loop (records, retries, deploys,
rendering) and never asks which platform it has; a new platform is one module here plus its
box-side entry in ``outlive/agent/box/`` and a profile.

Backends that reach their box through the outlive agent (local and SSH processes, Slurm) share
:class:`AgentBackend`: probe, cancel, tail and the manifest are agent verbs, and only ``launch``
differs (the box-side dispatch key, a rendered batch script).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from outlive import wire
from outlive._shapes import shape
from outlive.errors import UsageError

if TYPE_CHECKING:
    from outlive.agent.client import AgentClient
    from outlive.config import Target
    from outlive.run_status import RunStatus
    from outlive.store import RunRecord
    from outlive.transport.base import Transport


@shape(frozen=True)
class Launched:
    """One run that a launch started (or submitted), as the registry records it."""

    run_id: str
    name: str
    target: str
    run_dir: str
    ckpt_dir: str
    pid: int | None
    warnings: tuple[str, ...] = ()  # e.g. the command's program is not on the box's PATH


@shape(frozen=True)
class ProjectRef:
    """The project a backend works for: its name, its root here and its state dir (.outlive)."""

    name: str
    root: Path
    state_dir: Path


@shape(frozen=True)
class LaunchReply:
    """Where a launched run lives on its box; ``pid`` is None for a submitted job."""

    run_dir: str
    ckpt_dir: str
    pid: int | None = None
    job_id: str | None = None
    warnings: tuple[str, ...] = ()
    # Programs of the command not on the job's PATH on the box: ``{"program", "near", "path"}``.
    missing_programs: tuple[dict[str, object], ...] = ()

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> LaunchReply:
        pid, job = doc.get("pid"), doc.get("job_id")
        missing = doc.get("missing_programs")
        return cls(
            run_dir=str(doc["run_dir"]),
            ckpt_dir=str(doc["ckpt_dir"]),
            pid=pid if isinstance(pid, int) else None,
            job_id=str(job) if job is not None else None,
            missing_programs=tuple(
                m for m in (missing if isinstance(missing, list) else []) if isinstance(m, dict)
            ),
        )


@shape(frozen=True)
class TailChunk:
    """Log bytes from a run, and the offset to continue from."""

    data: bytes
    offset: int
    size: int
    ended: bool


@shape(frozen=True)
class CheckpointFile:
    """One committed checkpoint on the box (the ``ckpts`` verb): its step, size and mtime."""

    name: str
    step: int
    size_bytes: int
    mtime: float

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> CheckpointFile:
        return cls(
            name=str(doc["name"]),
            step=int(doc["step"]),
            size_bytes=int(doc["size_bytes"]),
            mtime=float(doc["mtime"]),
        )


class CancelReply(TypedDict, total=False):
    """What the box did on ``cancel`` (the agent's reply, shown as is by ``cancel --json``)."""

    signalled: str | None
    state: str  # when nothing was signalled: the run's state as a probe sees it
    diagnosis: dict[str, Any] | None
    grace_s: float
    escalated: bool
    note: str
    job_id: str
    run_id: str
    name: str


@shape(frozen=True)
class FoundRun:
    """A run the box holds under a workdir that the look did not ask about (its run.json)."""

    run_id: str
    name: str
    target: str | None
    command: list[str]
    run_dir: str
    ckpt_dir: str
    created_at: float
    probe: wire.RunProbe
    project_id: str | None = None  # the project that launched it (None: an older outlive's)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> FoundRun | None:
        run_id, name, command = doc.get("run_id"), doc.get("name"), doc.get("command")
        if not isinstance(run_id, str) or not isinstance(name, str):
            return None
        if not isinstance(command, list):
            return None
        created = doc.get("created_at")
        return cls(
            run_id=run_id,
            name=name,
            target=str(doc["target"]) if doc.get("target") is not None else None,
            command=[str(a) for a in command],
            run_dir=str(doc.get("run_dir") or ""),
            ckpt_dir=str(doc.get("ckpt_dir") or ""),
            created_at=float(created) if isinstance(created, (int, float)) else 0.0,
            probe=wire.RunProbe.from_json(dict(doc.get("probe") or {"state": "unknown"})),
            project_id=str(doc["project_id"]) if doc.get("project_id") is not None else None,
        )


class ManifestReply(TypedDict):
    """The agent's ``manifest`` reply: one manifest per requested set, and the probed runs."""

    manifests: list[dict[str, Any]]
    probes: list[dict[str, Any]]


@shape(frozen=True)
class ArrayPlan:
    """A fan-out: cell i runs ``commands[i]`` as run ``names[i]``, at most ``throttle`` at once,
    after the runs ``after`` succeeded (their last-seen records)."""

    names: tuple[str, ...]
    commands: tuple[tuple[str, ...], ...]
    throttle: int | None = None
    after: tuple[RunStatus, ...] = ()


class Backend(Protocol):
    """One platform's verbs for one target."""

    name: str  # "process", "slurm", ...
    target: Target
    # True when the launch itself carries the project (rendered into the platform's own objects,
    # a Kubernetes ConfigMap): the lifecycle then sends no push, only the deploy manifest.
    deploys_with_launch: bool
    # A run seen ended with its exit record never changes again: a look need not probe it.
    ended_is_final: bool

    @property
    def transport(self) -> Transport:
        """Runs commands on the target and moves files in and out."""
        ...

    def box_backend(self, detach: str | None) -> str:
        """The box-side dispatch key a launch with ``--detach-with detach`` gets."""
        ...

    def launch(self, request: wire.LaunchRequest) -> LaunchReply: ...

    def launch_array(self, request: wire.LaunchRequest, plan: ArrayPlan) -> list[LaunchReply]: ...

    def probe(self, run_dirs: Sequence[str], *, timeout_s: float) -> list[wire.RunProbe]: ...

    def look(
        self, run_dirs: Sequence[str], workdir: str, *, timeout_s: float, known: Sequence[str] = ()
    ) -> tuple[list[wire.RunProbe], list[FoundRun]]:
        """``probe``, plus (same round trip) the runs under ``workdir`` in neither ``run_dirs``
        nor ``known`` (runs the registry knows but does not need probed)."""
        ...

    def cancel(self, run_dir: str, grace_s: float) -> CancelReply: ...

    def tail(
        self,
        run_dir: str,
        *,
        offset: int | None = None,
        lines: int | None = None,
        max_bytes: int | None = None,
        timeout_s: float | None = None,
        file: str = wire.STDOUT_LOG,
    ) -> TailChunk: ...

    def checkpoints(self, ckpt_dir: str, *, timeout_s: float) -> list[CheckpointFile]:
        """The committed checkpoints in ``ckpt_dir`` on the box, newest first."""
        ...

    def manifest(self, request: Mapping[str, object], *, timeout_s: float) -> ManifestReply:
        """Files, sizes and hashes under the requested result roots, built on the box."""
        ...

    def teardown_commands(self) -> list[str]:
        """The exact commands that free what this target's runs hold (``down`` prints them once
        the gate passes; outlive never runs them); empty when the profile's verbs say it all."""
        ...

    def release(self) -> list[str]:
        """Free what this backend made only to reach the target for one command (a Kubernetes
        reader pod), never the user's data; returns sentences saying what it freed."""
        ...


class AgentBackend:
    """The verbs every agent-reached platform shares; subclasses say how to launch."""

    name = "agent"
    deploys_with_launch = False  # pushed over the transport first (lifecycle.push)
    ended_is_final = False  # a scheduler may requeue what it reported ended

    def __init__(
        self,
        target: Target,
        agent: AgentClient,
        records: Callable[[], Iterable[RunRecord]] = tuple,
        project: ProjectRef | None = None,
    ) -> None:
        self.target = target
        self.agent = agent
        self.records = records  # the registry's runs (a backend may learn from earlier ones)
        self.project = project

    def teardown_commands(self) -> list[str]:
        return []

    def release(self) -> list[str]:
        return []  # the agent's connection is the session's, closed with it

    @property
    def transport(self) -> Transport:
        return self.agent.transport

    def box_backend(self, detach: str | None) -> str:
        raise NotImplementedError

    def launch(self, request: wire.LaunchRequest) -> LaunchReply:
        reply = self.agent.call("launch", request.to_json())
        return LaunchReply.from_json(reply)

    def launch_array(self, request: wire.LaunchRequest, plan: ArrayPlan) -> list[LaunchReply]:
        raise UsageError(
            f"target {self.target.name!r} runs one process per launch; --array, --queue, "
            "--throttle and --after need a Slurm target (sbatch job arrays)"
        )

    def probe(self, run_dirs: Sequence[str], *, timeout_s: float) -> list[wire.RunProbe]:
        reply = self.agent.call("probe", {"run_dirs": list(run_dirs)}, timeout_s=timeout_s)
        return [wire.RunProbe.from_json(doc) for doc in reply["runs"]]

    def look(
        self, run_dirs: Sequence[str], workdir: str, *, timeout_s: float, known: Sequence[str] = ()
    ) -> tuple[list[wire.RunProbe], list[FoundRun]]:
        request: dict[str, object] = {"run_dirs": list(run_dirs), "adopt_under": workdir}
        if known:
            request["known_dirs"] = list(known)
        reply = self.agent.call("probe", request, timeout_s=timeout_s)
        found = [FoundRun.from_json(doc) for doc in reply.get("found") or []]
        probes = [wire.RunProbe.from_json(doc) for doc in reply["runs"]]
        return probes, [f for f in found if f is not None]

    def cancel(self, run_dir: str, grace_s: float) -> CancelReply:
        # A job whose supervisor is gone is signalled by the agent itself, which waits out the
        # grace before KILL: the call may take that long.
        reply: CancelReply = self.agent.call(
            "cancel", {"run_dir": run_dir, "grace_s": grace_s}, timeout_s=grace_s + 60.0
        )
        return reply

    def tail(
        self,
        run_dir: str,
        *,
        offset: int | None = None,
        lines: int | None = None,
        max_bytes: int | None = None,
        timeout_s: float | None = None,
        file: str = wire.STDOUT_LOG,
    ) -> TailChunk:
        # raw: the bytes come unencoded after the reply's header (an older agent ignores it)
        request: dict[str, object] = {"run_dir": run_dir, "raw": True}
        if file != wire.STDOUT_LOG:
            request["file"] = file
        if offset is not None:
            request["offset"] = offset
        if lines is not None:
            request["lines"] = lines
        if max_bytes is not None:
            request["max_bytes"] = max_bytes
        if timeout_s is None:
            reply = self.agent.call("tail", request)
        else:
            reply = self.agent.call("tail", request, timeout_s=timeout_s)
        return TailChunk(
            data=reply["data"] if "data" in reply else base64.b64decode(reply["data_b64"]),
            offset=int(reply["offset"]),
            size=int(reply.get("size") or 0),
            ended=bool(reply["ended"]),
        )

    def checkpoints(self, ckpt_dir: str, *, timeout_s: float) -> list[CheckpointFile]:
        reply = self.agent.call("ckpts", {"ckpt_dir": ckpt_dir}, timeout_s=timeout_s)
        return [CheckpointFile.from_json(c) for c in reply.get("checkpoints") or ()]

    def manifest(self, request: Mapping[str, object], *, timeout_s: float) -> ManifestReply:
        reply: ManifestReply = self.agent.call("manifest", request, timeout_s=timeout_s)
        return reply
