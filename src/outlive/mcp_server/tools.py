"""The bodies of the MCP tools: the same library calls the CLI commands make, returning the same
JSON documents. Each runs in a worker thread (``server`` bounds it by its timeout); none prints.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

from outlive.errors import UsageError
from outlive.mcp_server import guard
from outlive.mcp_server import shapes as S
from outlive.mcp_server.gate_tokens import GateTokens
from outlive.session import Session

Progress = Callable[[int, int, str], None]
Note = Callable[[str], None]

MAX_LOG_LINES = 2000
MAX_LOG_BYTES = 64 * 1024
MAX_EXPLAIN_BYTES = 4 * 1024 * 1024


class Tools:
    """The tools of one server, for the project at ``project`` (where `outlive mcp` started)."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.tokens = GateTokens()

    def _session(self) -> Session:
        return Session.open(self.project)

    def targets(self) -> S.TargetsOut:
        from outlive.cli.project_cmds import targets_doc
        from outlive.config import load_config

        return cast(S.TargetsOut, targets_doc(load_config(self.project)))

    def profiles(self, name: str | None) -> S.ProfilesOut:
        from outlive.config import load_config
        from outlive.profiles import list_profiles, load_profile
        from outlive.profiles.render import to_json

        dirs = load_config(self.project).profile_dirs
        profs = [load_profile(guard.name(name, "profile"), dirs)] if name else list_profiles(dirs)
        clocks = [
            {
                "profile": p.name,
                "name": c.name,
                "what_happens": c.what_happens,
                "duration_s": c.duration_s,
                "gotchas": list(c.gotchas),
            }
            for p in profs
            for c in p.clocks_first()
        ]
        return cast(
            S.ProfilesOut, {"danger_clocks": clocks, "profiles": [to_json(p) for p in profs]}
        )

    def up(self, target: str, torch: bool) -> S.UpOut:
        from outlive.diagnose.runner import run_audit

        with self._session() as session:
            report = run_audit(session, guard.name(target, "target"), probe_torch=torch)
        return report

    def run(self, target: str, command: list[str], name: str | None, on_step: Progress) -> S.RunOut:
        from outlive.lifecycle.runs import launch

        guard.name(target, "target")
        if name is not None:
            guard.name(name, "run name")
        argv = guard.command(command)
        with self._session() as session:
            session.target(target)  # an unknown target is refused before anything moves
            on_step(0, 2, f"pushing the project to {target} and launching")
            launched = launch(session, target, argv, name)
        on_step(2, 2, f"launched {launched.name!r} as {launched.run_id}")
        return {
            "run_id": launched.run_id,
            "name": launched.name,
            "target": launched.target,
            "warnings": list(launched.warnings),  # launched anyway, as `run --json` says
        }

    def status(self, runs: list[str]) -> S.StatusOut:
        from outlive.lifecycle.runs import status

        refs = [guard.name(r, "run") for r in runs]
        with self._session() as session:
            result = status(session, refs)
        return cast(S.StatusOut, {"runs": [r.to_json() for r in result]})

    def logs(self, run: str, lines: int) -> S.LogsOut:
        from outlive.lifecycle.runs import tail

        if not 1 <= lines <= MAX_LOG_LINES:
            raise UsageError(f"lines must be between 1 and {MAX_LOG_LINES}, not {lines}")
        with self._session() as session:
            data = tail(session, guard.name(run, "run"), lines)
        truncated = len(data) > MAX_LOG_BYTES
        text = data[-MAX_LOG_BYTES:].decode("utf-8", errors="replace")
        return {"run": run, "lines": lines, "text": text, "truncated": truncated}

    def explain(self, run: str | None, file: str | None, text: str | None) -> S.ExplainOut:
        from typing import BinaryIO

        from outlive.gotchas import explain_file, explain_stream, explain_text

        given = [x for x in (run, file, text) if x is not None]
        if len(given) != 1:
            raise UsageError("give exactly one of run, file (inside the project) or text")
        if text is not None:
            if len(text.encode()) > MAX_EXPLAIN_BYTES:
                raise UsageError(f"text is over {MAX_EXPLAIN_BYTES >> 20} MiB; pass a file instead")
            matches = explain_text(text)
        elif file is not None:
            path = guard.project_path(self.project, file, "file")
            if not path.is_file():
                raise UsageError(
                    f"{file!r} is not a file in the project; give run= for a run's log"
                )
            matches = explain_file(os.fspath(path))
        else:
            from outlive.lifecycle.runs import RemoteLog

            with self._session() as session:
                log = RemoteLog(session, guard.name(cast(str, run), "run"))
                matches = explain_stream(cast(BinaryIO, log), platform=log.target.profile)
        return cast(S.ExplainOut, {"matches": [m.as_dict() for m in matches]})

    def doctor(self, run: str) -> S.DoctorOut:
        from outlive.diagnose.runner import run_doctor

        with self._session() as session:
            return cast(S.DoctorOut, run_doctor(session, guard.name(run, "run")))

    def pull(
        self, run: str, to: str | None, outputs: list[str], timeout_s: float,
        on_progress: Progress, on_note: Note,
    ) -> S.PullOut:  # fmt: skip
        from outlive.lifecycle.pull import PullOptions, pull

        dest = guard.project_path(self.project, to, "to") if to is not None else None
        for out in outputs:
            guard.project_path(self.project, out, "output")  # relative, no '..' (the box's workdir)
        opts = PullOptions(dest=dest, outputs=tuple(outputs), attempt_timeout_s=timeout_s)
        with self._session() as session:
            result = pull(
                session, guard.name(run, "run"), opts, on_progress=on_progress, on_note=on_note
            )
        return cast(S.PullOut, result)

    def verify(self, directory: str) -> S.VerifyOut:
        from outlive.verify import verify_dir

        path = guard.project_path(self.project, directory, "dir")
        if not path.is_dir():
            raise UsageError(f"{directory!r} is not a directory in the project (made by pull)")
        return cast(S.VerifyOut, verify_dir(path).as_json())

    def cloud_audit(self) -> S.CloudAuditOut:
        """``outlive cloud audit --json``: what bills with nothing of this project's behind it."""
        from outlive.cloud.audit import report
        from outlive.cloud.inventory import project_rows
        from outlive.config import load_config

        return cast(S.CloudAuditOut, report(project_rows(load_config(self.project))))

    def sweep_status(self, sweep: str | None, by: str | None, highest: bool) -> S.SweepStatusOut:
        """``outlive sweep status [SWEEP] [--by M] [--highest] --json``."""
        from outlive.sweep import registry
        from outlive.sweep.report import status_document

        ref = None if sweep is None else guard.name(sweep, "sweep")
        if by is not None:
            guard.name(by, "metric")
        with self._session() as session:
            if ref is not None and ref not in {r.name for r in registry.sweeps(session.store)}:
                path = guard.project_path(self.project, ref, "sweep")  # its file, in the project
                ref = str(path) if path.is_file() else ref
            return cast(S.SweepStatusOut, status_document(session, ref, by, highest))

    def down(self, target: str, token: str | None, execute: bool) -> S.DownOut:
        """The gate, two steps: a look that may issue a token, then the token's use (and, with
        ``execute``, the meter-stop verb on the target's own resource)."""
        from outlive.mcp_server.down_tool import down

        with self._session() as session:
            return down(self.tokens, session, target, token, execute)
