"""The Slurm batch script: a pure function of a :class:`BatchSpec`, saved as ``job.sbatch`` in
the run dir and compared with golden files in the tests.

How a Slurm run works (decisions, and why):

- **Target.** A target whose profile is ``slurm`` has ``kind = "slurm"``. With ``host`` set the
  agent runs on that login host over SSH; without it, here, with the local ``sbatch``. The run
  dir (``<workdir>/.outlive/runs/<id>``) and the checkpoints (``<durable>/<name>``) must be on
  the shared filesystem, never node-local ``$TMPDIR`` (SLURM5): the next attempt may run on
  another node.
- **Submission.** The client renders the script; the agent writes the run dir, saves the script
  as ``job.sbatch`` and runs ``sbatch --parsable --chdir=RUN_DIR job.sbatch PY AGENT RUN_DIR``,
  recording the job id in ``slurm.json``. The three arguments are kept by Slurm for every
  requeue, so the script holds no path of the login host and stays comparable with a golden file.
- **Directives.** ``--requeue``, ``--open-mode=append`` and ``--output=stdout.log`` (relative to
  the run dir, so every attempt appends to the log ``logs -f`` follows),
  ``--signal=B:TERM@LEAD`` and the resources. ``sbatch`` parses ``#SBATCH`` lines itself (``"``
  quotes, ``\\`` escapes, an unquoted ``#`` starts a comment), so values there are held to a strict
  character set and the job name is cleaned to ``[A-Za-z0-9._+-]``; the real name lives in
  ``run.json``. Values in the shell body are ``shlex.quote``d.
- **Signals.** ``B:`` signals reach only the batch shell. Its trap passes them on with
  ``scancel --signal=SIG $SLURM_JOB_ID``, which signals the job's steps and not the shell
  (checked on Slurm 22.05: a ``kill -TERM`` on ``srun`` makes srun kill the step instead). The
  step is the supervisor, which forwards the signal to the job's process group, so the
  Checkpointer's flag is set and the job saves at its next safe point (SLURM1). On one node the
  shell signals the supervisor itself (its pid in ``attempts/N.pid`` while it runs the job, used
  only while the step runs): no squeue/scancel round trip between the warning and the save, and
  the sooner the job ends, the sooner Slurm schedules its next attempt.
- **The step.** ``srun --cpus-per-task=$SLURM_CPUS_PER_TASK`` plus the GPUs, both explicit, since a
  step inherits neither (SLURM3); run in the background so the traps fire while it runs.
- **Requeue.** On one node the supervisor requeues the job itself from its step once the
  interrupted attempt's record is written, where squeue says this attempt is RUNNING and
  ``cancel.json`` does not exist (``attempts/N.requeued`` tells the shell, which then exits 0 and
  passes no TERM on): the shell's own requeue came only after the step and srun had ended. Else
  the supervisor exits 75 when the attempt was interrupted (the job exited 75, or
  died after a forwarded signal); the shell then runs ``scontrol requeue $SLURM_JOB_ID`` if the
  job is still RUNNING (a warning, or the job's own wish) and ``cancel.json`` does not exist. A
  job that ``scancel`` or Slurm's own requeue is ending already shows COMPLETING and is left to
  them; if the requeue fails the shell exits 75.
- **Arrays** (``array_size``): ``--array=0-N[%throttle]``; cell i is the run ``<run_id>-i`` with
  its own run dir (``$3-$SLURM_ARRAY_TASK_ID``), log (``--output=<run_id>-%a/stdout.log``,
  relative to the runs dir) and checkpoints; the script names itself ``ARRAY_TASK`` since a
  task's raw id can name the whole array. ``dependency`` (``afterok:J...``) stages pipelines.
- **Multi-node** (``nodes > 1``): ``--ntasks-per-node=1``; the shell exports ``MASTER_ADDR`` (the
  first host of ``scontrol show hostnames``), ``MASTER_PORT`` (20000 + job id % 20000),
  ``OUTLIVE_NNODES`` and ``OUTLIVE_RDZV_ENDPOINT``; srun starts one supervisor per node, which
  runs ``torchrun --nnodes --nproc-per-node=<GPUs per node> --rdzv-backend=c10d
  --rdzv-endpoint=$MASTER_ADDR:$MASTER_PORT --rdzv-id=$job --no-python CMD``. Node 0 keeps the
  run's records, node k its own under ``nodes/<k>/``.
- **LEAD** (SLURM2): the warning may come up to 60 s early or late, and Slurm checks time limits
  about every 30 s. LEAD = 60 + 2 × save_s + 10, where save_s is the longest TERM → exit time
  measured on earlier attempts of the same run name (``DEFAULT_SAVE_S`` until one is measured).
  A LEAD longer than ``--time`` means every attempt gets TERM at Slurm's first check (≤ 30 s in).
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from outlive.config import SlurmOptions
from outlive.errors import ConfigError

__all__ = [
    "DEFAULT_SAVE_S",
    "JITTER_S",
    "REQUEUE_EXIT_CODE",
    "BatchSpec",
    "render",
    "signal_lead_s",
    "spec_for",
    "time_limit_s",
]

REQUEUE_EXIT_CODE = 75  # the Checkpointer's "saved, run me again" (EX_TEMPFAIL)
JITTER_S = 60  # the warning signal may arrive this much early or late (SLURM2)
DEFAULT_SAVE_S = 30.0  # before any save was measured: the profile's KillWait
SAVE_SAFETY = 2.0
LEAD_MARGIN_S = 10
MAX_LEAD_S = 65535  # --signal takes at most 0xffff seconds
LOG_NAME = "stdout.log"

_PLAIN = re.compile(r"^[A-Za-z0-9_.,+-]{1,128}$")  # partition, account, qos
_CONSTRAINT = re.compile(r"^[A-Za-z0-9_.,&|\[\]()*:+-]{1,256}$")
_MEM = re.compile(r"^[0-9]{1,9}[KMGTkmgt]?$")
_GPUS = re.compile(r"^(?:gpu:)?(?:([A-Za-z0-9_.-]{1,64}):)?([0-9]{1,4})$")
_TIME = re.compile(r"^(?:([0-9]{1,4})-)?([0-9]{1,6})(?::([0-9]{1,2}))?(?::([0-9]{1,2}))?$")
_JOB_NAME_BAD = re.compile(r"[^A-Za-z0-9._+-]+")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Extra lines may not move the log, the working directory or turn requeue off: outlive's records
# and `logs -f` depend on those.
_RESERVED = ("--output", "-o", "--error", "-e", "--chdir", "-D", "--open-mode", "--no-requeue")
# sbatch's short options that take no argument, so another may follow in one word ("-Qo FILE").
_SHORT_FLAGS = "HIkOQsvVWh"


@dataclass(frozen=True)
class BatchSpec:
    """Everything the batch script depends on; rendering it is a pure function."""

    run_id: str
    name: str
    signal_lead_s: int
    partition: str | None = None
    gres: str | None = None  # "gpu:2", "gpu:a100:1"
    cpus_per_task: int = 1
    mem: str | None = None
    time: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    extra: tuple[str, ...] = field(default_factory=tuple)
    # Fan-out: one job array of ``array_size`` cells, at most ``array_throttle`` at a time; cell i
    # is the run ``<run_id>-<i>`` with its own run dir, log and durable path.
    array_size: int | None = None
    array_throttle: int | None = None
    dependency: str | None = None  # "afterok:123:456" for staged pipelines
    # Multi-node: one supervisor per node runs torchrun, which starts that node's ranks.
    nodes: int = 1
    rdzv_port_base: int = 20000  # MASTER_PORT = base + job id % 20000 (jobs sharing a host)

    @property
    def job_name(self) -> str:
        """The name Slurm shows: the run name cleaned to a safe label (the name stays data)."""
        cleaned = _JOB_NAME_BAD.sub("_", self.name).strip("_") or "outlive"
        return cleaned[:64]


def signal_lead_s(save_s: float | None) -> int:
    """Seconds before the time limit to send TERM to the batch shell (SLURM2)."""
    measured = DEFAULT_SAVE_S if save_s is None or save_s <= 0 else save_s
    return min(MAX_LEAD_S, JITTER_S + math.ceil(SAVE_SAFETY * measured) + LEAD_MARGIN_S)


def time_limit_s(value: str) -> int | None:
    """Seconds of a Slurm ``--time`` value; None for UNLIMITED / infinite.

    Formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S."""
    if value.strip().lower() in ("unlimited", "infinite"):
        return None
    m = _TIME.match(value.strip())
    if not m:
        raise ConfigError(
            f"time = {value!r} is not a Slurm time limit; use minutes, MM:SS, HH:MM:SS or "
            'D-HH:MM:SS (e.g. time = "04:00:00")'
        )
    days, a, b, c = m.groups()
    parts = [int(a)] + [int(x) for x in (b, c) if x is not None]
    if days is not None:
        hours, minutes, seconds = [*parts, 0, 0][:3]
        return ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return (parts[0] * 60 + parts[1]) * 60 + parts[2]


def gres_of(gpus: str) -> str:
    """``2`` → ``gpu:2``, ``a100:2`` → ``gpu:a100:2`` (``gpu:a100:2`` as given)."""
    m = _GPUS.match(gpus.strip())
    if not m:
        raise ConfigError(
            f'gpus = {gpus!r} is not a GPU request; use a count ("2") or TYPE:COUNT ("a100:2")'
        )
    kind, count = m.groups()
    return f"gpu:{kind}:{count}" if kind else f"gpu:{count}"


def _plain(key: str, value: Any, pattern: re.Pattern[str] = _PLAIN) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not pattern.match(text):
        raise ConfigError(
            f"{key} = {text!r} has characters a #SBATCH line cannot carry safely (spaces, quotes, "
            f"'#', '\\\\' or control characters); use the name the cluster gives it"
        )
    return text


def _extra_line(line: str) -> str:
    text = line.strip()
    if text.startswith("#SBATCH"):
        text = text[len("#SBATCH") :].strip()
    if not text or any(ord(c) < 32 or ord(c) == 127 for c in text) or not text.startswith("-"):
        raise ConfigError(
            f'sbatch_extra line {line!r} must be one sbatch option such as "--exclusive" '
            "(no newlines or control characters)"
        )
    option = re.split(r"[=\s]", text, maxsplit=1)[0]
    if _reaches_reserved(option):
        raise ConfigError(
            f"sbatch_extra line {line!r} sets {option}, which outlive owns: the log, the working "
            "directory and requeue must stay as rendered for status and logs to work"
        )
    return text


def _reaches_reserved(option: str) -> bool:
    """Whether sbatch would read ``option`` as one outlive owns: sbatch (getopt_long) takes any
    unambiguous prefix of a long option ("--outp", "--no-requeu"), and short options cluster
    ("-ofile" is "-o file", "-Qo file" is "-Q -o file")."""
    if option.startswith("--"):
        return len(option) > 2 and any(
            r.startswith(option) for r in _RESERVED if r.startswith("--")
        )
    for c in option[1:]:
        if "-" + c in _RESERVED:
            return True
        if c not in _SHORT_FLAGS:
            return False  # the rest of the word is this option's argument
    return False


def spec_for(
    options: SlurmOptions, run_id: str, name: str, save_s: float | None = None
) -> BatchSpec:
    """A BatchSpec from a target's Slurm options, checked."""
    time = options.time
    if time is not None:
        time_limit_s(str(time))  # validates
        time = _plain("time", time, re.compile(r"^[A-Za-z0-9:-]{1,32}$"))
    mem = options.mem
    if mem is not None and not _MEM.match(str(mem)):
        raise ConfigError(f'mem = {mem!r} is not a Slurm memory size; use e.g. "16G" or "4000M"')
    gpus = options.gpus
    return BatchSpec(
        run_id=run_id,
        name=name,
        signal_lead_s=signal_lead_s(save_s),
        partition=_plain("partition", options.partition),
        gres=gres_of(str(gpus)) if gpus not in (None, "", "0") else None,
        cpus_per_task=int(options.cpus or 1),
        mem=str(mem) if mem is not None else None,
        time=time,
        account=_plain("account", options.account),
        qos=_plain("qos", options.qos),
        constraint=_plain("constraint", options.constraint, _CONSTRAINT),
        extra=tuple(_extra_line(x) for x in options.sbatch_extra),
        nodes=int(options.nodes or 1),
    )


def directives(spec: BatchSpec) -> list[str]:
    """The ``#SBATCH`` lines, outlive's own first and the user's extra lines last."""
    # Relative to --chdir: the run dir (an array: the runs dir), on the shared FS (SLURM5).
    log = f"{spec.run_id}-%a/{LOG_NAME}" if spec.array_size else LOG_NAME
    out = [
        f"--job-name={spec.job_name}",
        f"--output={log}",
        "--open-mode=append",  # every attempt appends: the log of a requeued run stays whole
        "--requeue",
        f"--signal=B:TERM@{spec.signal_lead_s}",  # SLURM2
        f"--nodes={spec.nodes}",
        "--ntasks=1" if spec.nodes == 1 else "--ntasks-per-node=1",
        f"--cpus-per-task={spec.cpus_per_task}",
    ]
    for key, value in (
        ("partition", spec.partition),
        ("time", spec.time),
        ("mem", spec.mem),
        ("gres", spec.gres),
        ("account", spec.account),
        ("qos", spec.qos),
        ("constraint", spec.constraint),
    ):
        if value is not None:
            out.append(f"--{key}={value}")
    if spec.array_size:
        throttle = f"%{spec.array_throttle}" if spec.array_throttle else ""
        out.append(f"--array=0-{spec.array_size - 1}{throttle}")
    if spec.dependency:
        # A dependency that can never be met cancels the job instead of leaving it pending.
        out += [f"--dependency={spec.dependency}", "--kill-on-invalid-dep=yes"]
    out += list(spec.extra)
    return ["#SBATCH " + d for d in out]


_BODY = """\
set -u
# $1 python, $2 outlive's agent (box.py), $3 @ARG3@ on the shared
# filesystem: given by the agent at submit time and kept by Slurm for every requeue.
py=$1 agent=$2 run_dir=@RUN_DIR@
requeue_exit=@REQUEUE_EXIT@
# This job's own id; in an array ARRAY_TASK, since a task's raw id can name the whole array.
job=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID:-}}
job=${job:-$SLURM_JOB_ID}
echo "outlive: job $job attempt $(( ${SLURM_RESTART_COUNT:-0} + 1 )) on $(hostname)" \\
  "at $(date -u +%Y-%m-%dT%H:%M:%SZ)"

# A --signal=B:... warning reaches only this shell (SLURM2). Pass it to the job's steps (not to
# this shell): the supervisor forwards it to the job, whose Checkpointer sets its flag and saves
# at its next safe point (SLURM1). A signal sent to srun itself would make srun kill the step.
# Not when Slurm itself is ending the job (scancel, requeue: COMPLETING), which signals the
# steps on its own and makes scancel retry; bounded and never in the background, since a retry
# that outlived this attempt would hit the next one.
forward() {
  # This attempt's supervisor requeued the job itself: this is Slurm's own TERM of the requeue.
  [ -e "$run_dir/attempts/${SLURM_RESTART_COUNT:-0}.requeued" ] && return
  if to_supervisor "$1"; then
    echo "outlive: the batch shell got SIG$1; passing it to the job's supervisor ($sup)"
    return
  fi
  echo "outlive: the batch shell got SIG$1; passing it to the job's steps"
  case $(squeue -h -t all -j "$job" -o %T 2>/dev/null) in
    COMPLETING) ;;
    *) timeout 3 scancel --signal="$1" "$job" 2>/dev/null ;;
  esac
}
# On one node, straight to this attempt's supervisor (two builtins, no scheduler round trip):
# it writes attempts/N.pid once it runs the job and removes it when the job has ended; the pid
# is used only while the step runs. Otherwise (more nodes, not started yet): scancel above.
to_supervisor() {
  sup=
  [ "${SLURM_JOB_NUM_NODES:-1}" = 1 ] && kill -0 "${step:-}" 2>/dev/null || return 1
  read -r sup 2>/dev/null < "$run_dir/attempts/${SLURM_RESTART_COUNT:-0}.pid" || return 1
  case $sup in '' | *[!0-9]*) return 1 ;; esac
  kill -s "$1" "$sup" 2>/dev/null
}
trap 'forward TERM' TERM
trap 'forward USR1' USR1
trap 'forward USR2' USR2

@MULTINODE@
# A step inherits neither --cpus-per-task (Slurm >= 22.05) nor the GPUs: both given (SLURM3).
@SRUN@ \\
  "$py" -S "$agent" supervise "$run_dir"@LAUNCHER@ &
step=$!
# A trapped signal ends `wait` early: wait again while the step runs, then take its status.
while :; do
  wait "$step"
  rc=$?
  kill -0 "$step" 2>/dev/null || break
done
wait "$step" 2>/dev/null
last=$?
[ "$last" -ne 127 ] && rc=$last

if [ -e "$run_dir/attempts/${SLURM_RESTART_COUNT:-0}.requeued" ]; then
  exit 0  # requeued from the step, as soon as the job had saved (the step's log says so)
fi
if [ "$rc" -eq "$requeue_exit" ] && [ ! -e "$run_dir/cancel.json" ]; then
  # Still RUNNING in this attempt means the job stopped on a warning (or of its own accord):
  # requeue it. A job that scancel or Slurm's own requeue is ending shows COMPLETING, or a later
  # restart count once the next attempt runs: leave it to them.
  state=$(squeue -h -t all -j "$job" -O "State:|,RestartCnt:|" 2>/dev/null)
  if [ -z "$state" ] || [ "$state" = "RUNNING|${SLURM_RESTART_COUNT:-0}|" ]; then
    echo "outlive: the job saved its state and asked to run again; requeueing job $job"
    trap '' TERM  # the requeue ends this attempt with TERM: nothing is left to forward
    scontrol requeue "$job" && exit 0
    echo "outlive: scontrol requeue failed; ending with exit $requeue_exit"
  else
    echo "outlive: the job saved its state; Slurm is ending job $job ($state)"
  fi
fi
exit "$rc"
"""


_MULTINODE = """\
# Multi-node: the rendezvous is the allocation's first host, the same on every node; each node's
# supervisor runs torchrun, which starts that node's ranks (the environment contract, tested).
head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export MASTER_ADDR=$head MASTER_PORT=$(( @PORT_BASE@ + ${SLURM_JOB_ID} % 20000 ))
export OUTLIVE_NNODES=$SLURM_JOB_NUM_NODES OUTLIVE_RDZV_ENDPOINT=$MASTER_ADDR:$MASTER_PORT

"""


def gpus_per_node(spec: BatchSpec) -> int:
    """The GPU count of the gres request (``gpu:a100:2`` → 2), 1 without GPUs."""
    if not spec.gres:
        return 1
    return max(1, int(spec.gres.rsplit(":", 1)[-1]))


def srun_argv(spec: BatchSpec) -> list[str]:
    """The srun options of the step, shell-quoted where a value comes from the user."""
    if spec.nodes == 1:
        argv = ["srun", "--nodes=1", "--ntasks=1"]
    else:
        argv = ["srun", '--nodes="$SLURM_JOB_NUM_NODES"', "--ntasks-per-node=1"]
    argv.append('--cpus-per-task="${SLURM_CPUS_PER_TASK:-1}"')
    if spec.gres:
        argv.append("--gres=" + shlex.quote(spec.gres))
    return argv


def launcher_argv(spec: BatchSpec) -> list[str]:
    """What each node's supervisor puts before the job's command (multi-node: torchrun)."""
    if spec.nodes == 1:
        return []
    return [
        "torchrun",
        '--nnodes="$SLURM_JOB_NUM_NODES"',
        f"--nproc-per-node={gpus_per_node(spec)}",
        "--rdzv-backend=c10d",
        '--rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT"',
        '--rdzv-id="$job"',
        "--no-python",  # the job's command runs as given (python train.py ...), once per rank
    ]


def render(spec: BatchSpec) -> str:
    """The batch script text for ``spec`` (bash; deterministic: equal specs, equal bytes)."""
    if not _RUN_ID.match(spec.run_id):
        raise ConfigError(f"run id {spec.run_id!r} is not a safe identifier; this is a bug")
    head = [
        "#!/bin/bash",
        f"# outlive run {spec.run_id}: rendered by outlive.backends.slurm and saved in the run",
        "# directory as job.sbatch; never edited after submission (U2).",
    ]
    if spec.array_size:
        body = _BODY.replace("@ARG3@", "the cells' run dir prefix (cell i: $3-i)")
        body = body.replace("@RUN_DIR@", "$3-$SLURM_ARRAY_TASK_ID")
    else:
        body = _BODY.replace("@ARG3@", "this run's directory")
        body = body.replace("@RUN_DIR@", "$3")
    body = body.replace("@REQUEUE_EXIT@", str(REQUEUE_EXIT_CODE))
    body = body.replace("@SRUN@", " ".join(srun_argv(spec)))
    launcher = launcher_argv(spec)
    body = body.replace("@LAUNCHER@", "".join(" \\\n    " + a for a in launcher))
    multinode = _MULTINODE.replace("@PORT_BASE@", str(spec.rdzv_port_base))
    body = body.replace("@MULTINODE@\n", multinode if spec.nodes > 1 else "")
    return "\n".join([*head, *directives(spec), ""]) + "\n" + body
