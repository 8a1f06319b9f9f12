"""Kaggle as a backend: a run is a kernel (one per run unless the target names one), pushed with
the user's ``kaggle`` CLI; each look maps the last version's status to outlive's states and pushes
the next version of the chain when one stopped for the session budget
(:class:`~outlive.backends.kaggle.KaggleChain`). The project travels inside the pushed script:
nothing is pushed over a transport. The chain's records are ``.outlive/kaggle/<run id>.json``.

What the API allows and what it does not: logs are the latest version's (``kaggle kernels
logs``); the CLI has no cancel, so ``cancel`` pushes no further version and cancels the one
running now with the SDK's ``CancelKernelSession`` (where that fails it says where to stop it on
kaggle.com); checkpoints are not listed while a version runs (they are in its output once it ends).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from outlive import wire
from outlive.backends import base as b
from outlive.backends import kaggle_render as kr
from outlive.backends.kaggle import KaggleChain
from outlive.backends.kaggle_cli import KaggleCli
from outlive.config import KaggleOptions
from outlive.errors import ConfigError, TransportError, UsageError

if TYPE_CHECKING:
    from outlive.agent.client import AgentClient
    from outlive.config import Target
    from outlive.store import RunRecord
    from outlive.transport.base import Transport

__all__ = ["KaggleBackend", "kernel_slug"]

ROOT = "/kaggle/working"


def kernel_slug(project: str, name: str, run_id: str) -> str:
    """A kernel slug of the run's own: ``<project>-<name>-<6 of its id>``, as Kaggle allows."""
    base = re.sub(r"[^a-z0-9]+", "-", f"{project}-{name}".lower()).strip("-")[:42].strip("-")
    return f"{base or 'outlive'}-{run_id[-6:]}"


class KaggleBackend:
    name = "kaggle"
    deploys_with_launch = True  # the tree travels inside the pushed script
    ended_is_final = False

    def __init__(
        self,
        target: Target,
        agent: AgentClient,
        records: Callable[[], Iterable[RunRecord]] = tuple,
        project: b.ProjectRef | None = None,
    ) -> None:
        # the agent is unused: nothing of outlive's runs on this machine for Kaggle
        self.target, self.agent, self.records = target, agent, records
        if project is None:
            raise ConfigError("a kaggle target needs its project; this is a bug in the caller")
        self.project: b.ProjectRef = project
        if not isinstance(target.options, KaggleOptions):  # a config cache of another version
            raise ConfigError(f"target {target.name!r} has no Kaggle settings; check its profile")
        self.options: KaggleOptions = target.options

    @cached_property
    def cli(self) -> KaggleCli:
        return KaggleCli()

    @cached_property
    def _agent_zip(self) -> bytes:
        from outlive.agent.bundle import zipapp

        return zipapp()

    @property
    def transport(self) -> Transport:
        raise UsageError(
            f"target {self.target.name!r} is a Kaggle kernel, reached only through the kaggle "
            "CLI; use `outlive pull RUN` to download a run's output"
        )

    def teardown_commands(self) -> list[str]:
        return []  # a version ends by itself; nothing stays billed

    def release(self) -> list[str]:
        return []

    def box_backend(self, detach: str | None) -> str:
        if detach is not None:
            raise UsageError(
                "--detach-with does not apply to a kaggle target: a version is the detach"
            )
        return wire.BACKEND_SETSID  # what runs inside the version, under the notebook supervisor

    # -- launch -------------------------------------------------------------------------------

    def launch(self, request: wire.LaunchRequest) -> b.LaunchReply:
        if request.secrets:
            raise UsageError(
                "a kaggle target takes no secrets from outlive; add them as Kaggle secrets of "
                "the kernel, or drop secrets from the target"
            )
        from outlive.notebook.colab import project_zip

        opt = self.options
        files = sorted(request.deploy_manifest or {})
        code = project_zip(self.project.root, files)
        slug = opt.kernel_slug or kernel_slug(self.project.name, request.name, request.run_id)
        first = kr.Version(
            owner=opt.owner, slug=slug, project=self.project.name, name=request.name,
            request=request.to_json(), accelerator=opt.accelerator, internet=opt.internet,
            budget_s=opt.budget_s, margin_s=opt.margin_s,
            dataset_sources=opt.dataset_sources, model_sources=opt.model_sources,
            private=opt.is_private, outputs=self.target.placement.outputs,
        )  # fmt: skip
        kr.metadata(first)  # a bad slug or accelerator is one sentence before anything is sent
        chain = KaggleChain(
            first, self.project.state_dir, self.cli, code=code, agent=self._agent_zip,
            key=request.run_id,
        )  # fmt: skip
        warnings = chain.launch()
        workdir = posixpath.join(ROOT, self.project.name)
        return b.LaunchReply(
            run_dir=posixpath.join(workdir, wire.STATE_DIRNAME, wire.RUNS_DIRNAME, request.run_id),
            ckpt_dir=posixpath.join(workdir, "checkpoints", request.name),
            warnings=tuple(warnings),
        )

    def launch_array(self, request: wire.LaunchRequest, plan: b.ArrayPlan) -> list[b.LaunchReply]:
        raise UsageError(
            f"target {self.target.name!r} runs one kernel per launch; --array, --queue, "
            "--throttle and --after need a Slurm target (sbatch job arrays)"
        )

    # -- looks --------------------------------------------------------------------------------

    def _chain(self, run_dir: str) -> KaggleChain | None:
        return KaggleChain.load(
            self.project.state_dir, posixpath.basename(run_dir), self.cli, self._agent_zip
        )

    def probe(self, run_dirs: Sequence[str], *, timeout_s: float) -> list[wire.RunProbe]:
        return [self._probe_one(d) for d in run_dirs]

    def _probe_one(self, run_dir: str) -> wire.RunProbe:
        chain = self._chain(run_dir)
        if chain is None:
            return wire.RunProbe(run_dir, "unknown", error="no kernel was pushed for this run")
        view = chain.look()
        return wire.RunProbe(
            run_dir,
            view.state,
            run_id=posixpath.basename(run_dir),
            name=chain.first.name,
            diagnosis=view.diagnosis,
            warning="; ".join(view.warnings) or None,
            restarts=max(0, len(view.versions) - 1),
            kaggle={"ref": chain.ref, "versions": list(view.versions)},
        )

    def look(
        self, run_dirs: Sequence[str], workdir: str, *, timeout_s: float, known: Sequence[str] = ()
    ) -> tuple[list[wire.RunProbe], list[b.FoundRun]]:
        return self.probe(run_dirs, timeout_s=timeout_s), []

    def cancel(self, run_dir: str, grace_s: float) -> b.CancelReply:
        chain = self._chain(run_dir)
        if chain is None:
            raise UsageError(f"no kernel was pushed for run {posixpath.basename(run_dir)}")
        note = chain.cancel()
        return {"signalled": None, "state": chain.look().state, "note": note}

    def tail(
        self,
        run_dir: str,
        *,
        offset: int | None = None,
        lines: int | None = None,
        max_bytes: int | None = None,
        timeout_s: float | None = None,
        file: str = wire.STDOUT_LOG,
    ) -> b.TailChunk:
        chain = self._chain(run_dir)
        if chain is None or file != wire.STDOUT_LOG:
            return b.TailChunk(b"", offset or 0, 0, ended=True)
        view = chain.look()
        try:
            data = _log_text(self.cli.run("kernels", "logs", chain.ref)).encode()
        except TransportError:
            data = b""  # no log yet (a queued version)
        return _chunk(data, offset, lines, max_bytes, ended=wire.State(view.state).ended)

    def checkpoints(self, ckpt_dir: str, *, timeout_s: float) -> list[b.CheckpointFile]:
        return []  # in a version's output only once it ends; not listed while it runs

    def manifest(self, request: Mapping[str, object], *, timeout_s: float) -> b.ManifestReply:
        """The result manifests each run's last good version built on Kaggle, for the sets
        asked (matched by their roots); a set no version describes is an error, never empty."""
        run_dirs = [str(d) for d in request.get("probe_run_dirs") or []]  # type: ignore[attr-defined]
        built = []
        for run_dir in run_dirs:
            chain = self._chain(run_dir)
            doc = chain.output_manifest() if chain is not None else None
            if doc is not None:
                built.append(doc)
        manifests = []
        for spec in request.get("sets") or []:  # type: ignore[attr-defined]
            roots = [{"label": r["label"], "path": r["path"]} for r in spec["roots"]]
            found = next((m for m in built if _roots(m) == roots), None)
            if found is None:
                raise TransportError(
                    f"no version on Kaggle has a result manifest for {roots[0]['path']}; the "
                    "run's versions may not have ended yet"
                )
            from outlive.verify import Manifest

            # named by its content, hashed here (its roots were renamed on Kaggle)
            manifests.append({**found, "sha256": Manifest.from_reply(found).sha256})
        probes = [p.to_json() for p in self.probe(run_dirs, timeout_s=timeout_s)]
        return {"manifests": manifests, "probes": probes}

    # -- pull ---------------------------------------------------------------------------------

    downloads_output = True  # pull downloads a version's output, then verifies it here

    def download(self, run_dir: str, into: Path) -> Path:
        """The run's last version's whole output (``kaggle kernels output``) into ``into``;
        returns the directory that stands for ``/kaggle/working`` there. What an interrupted
        call left in ``into`` is resumed, not fetched again (the caller keeps ``into`` per
        version output and verifies every file by hash afterwards)."""
        chain = self._chain(run_dir)
        if chain is None:
            raise UsageError(f"no kernel was pushed for run {posixpath.basename(run_dir)}")
        number = chain.completed()
        if number is None:
            raise UsageError(f"no version of {chain.ref} has ended well yet; pull after it does")
        self.cli.output(f"{chain.ref}/{number}", into, resume=True)
        return into


def _roots(manifest: Mapping[str, object]) -> list[dict[str, str]]:
    listed = manifest.get("roots")
    return [
        {"label": str(r.get("label")), "path": str(r.get("path"))}
        for r in (listed if isinstance(listed, list) else [])
        if isinstance(r, dict)
    ]


def _log_text(raw: str) -> str:
    """A version's log as the job printed it: Kaggle keeps it as a JSON list of
    ``{"stream_name", "time", "data"}``; anything else is shown as it came."""
    try:
        entries = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(entries, list):
        return raw
    return "".join(str(e.get("data", "")) for e in entries if isinstance(e, dict))


def _chunk(
    data: bytes, offset: int | None, lines: int | None, max_bytes: int | None, *, ended: bool
) -> b.TailChunk:
    if offset is None:
        start = len(data) - len(b"".join(data.splitlines(keepends=True)[-(lines or 20) :]))
    else:
        start = min(offset, len(data))
    end = len(data) if max_bytes is None else min(len(data), start + max_bytes)
    return b.TailChunk(data[start:end], end, len(data), ended=ended and end == len(data))
