"""Slurm: the client renders the batch script (:mod:`outlive.backends.slurm_script`) and the
agent on the login host (or here, without ``host``) submits it with ``sbatch``; the job step is
the agent's supervisor. Probe, cancel and tail are the agent's, which reads ``squeue``/``sacct``
next to the run's records. Arrays fan a list of commands out as one job array, each cell its own
run with its own run dir, log and durable path, optionally after other runs (``afterok``).

Without ``host`` the agent's ``launch`` runs in this process (:mod:`outlive.backends.slurm_here`):
the same code from the same bundle, minus one interpreter start before ``sbatch``."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from outlive import wire
from outlive._shapes import replace
from outlive.backends import slurm_here, slurm_script
from outlive.backends.base import AgentBackend, ArrayPlan, LaunchReply
from outlive.config import SlurmOptions
from outlive.errors import ConfigError, UsageError
from outlive.run_status import RunStatus

_DEPENDENCY_JOB = re.compile(r"^[0-9]+(_[0-9]+)?$")


class SlurmBackend(AgentBackend):
    name = "slurm"

    @property
    def options(self) -> SlurmOptions:
        options = self.target.options
        if not isinstance(options, SlurmOptions):  # a config cache from another version
            raise ConfigError(
                f"target {self.target.name!r} has no Slurm settings; check its profile"
            )
        return options

    def box_backend(self, detach: str | None) -> str:
        return wire.BACKEND_SLURM  # sbatch replaces setsid/tmux: the job step is the supervisor

    def launch(self, request: wire.LaunchRequest) -> LaunchReply:
        save_s = self.measured_save_s(request.name)
        spec = slurm_script.spec_for(self.options, request.run_id, request.name, save_s)
        request = self._with_script(request, slurm_script.render(spec))
        return LaunchReply.from_json(slurm_here.call_launch(self.agent, request.to_json()))

    def launch_array(self, request: wire.LaunchRequest, plan: ArrayPlan) -> list[LaunchReply]:
        """Submit ``plan`` as one job array (cell i is run ``<run_id>-<i>``)."""
        save_s = max((s for s in (self.measured_save_s(n) for n in plan.names) if s), default=None)
        spec = slurm_script.spec_for(self.options, request.run_id, request.name, save_s)
        spec = dataclasses.replace(
            spec,
            array_size=len(plan.commands),
            array_throttle=plan.throttle,
            dependency=_dependency(plan.after) if plan.after else None,
        )
        request = self._with_script(request, slurm_script.render(spec))
        request.cells = [
            {"name": n, "command": list(c)} for n, c in zip(plan.names, plan.commands, strict=True)
        ]
        reply = slurm_here.call_launch(self.agent, request.to_json())
        missing = {"missing_programs": reply.get("missing_programs") or []}  # said once
        return [
            LaunchReply.from_json({**c, **missing} if i == 0 else c)
            for i, c in enumerate(reply["cells"])
        ]

    def measured_save_s(self, name: str) -> float | None:
        """The longest TERM → exit (the save on a warning) measured on earlier runs of this name
        on this target, as their last status recorded it; None before any was measured."""
        seen: list[float] = []
        for rec in self.records():
            if rec.target != self.target.name or rec.name != name or not rec.status:
                continue
            save_s = (rec.status.slurm or {}).get("save_s")
            if isinstance(save_s, (int, float)) and save_s > 0:
                seen.append(float(save_s))
        return max(seen) if seen else None

    @staticmethod
    def _with_script(request: wire.LaunchRequest, script: str) -> wire.LaunchRequest:
        return replace(request, backend=wire.BACKEND_SLURM, sbatch_script=script)


def _dependency(after: Iterable[RunStatus]) -> str:
    """``afterok:J1:J2`` from the Slurm job ids of the runs ``after`` (as just looked at)."""
    jobs = []
    for st in after:
        job = (st.slurm or {}).get("job_id")
        if not job or not _DEPENDENCY_JOB.match(str(job)):
            raise UsageError(
                f"run {st.run_id} has no Slurm job id (state {st.state}); a dependency "
                "can only wait for Slurm runs on the same cluster"
            )
        jobs.append(str(job))
    return "afterok:" + ":".join(jobs)
