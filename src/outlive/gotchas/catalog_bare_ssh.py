"""Gotchas of the bare SSH box, the default profile every other platform is a diff of
(GEN1-GEN8).
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, DOCUMENTS, EXPLAIN, PREVENTS, REFERENCE, explain_proof
from outlive.gotchas.catalog_runtime import CRLF_SCRIPT
from outlive.gotchas.catalog_transfer import SCP_DROPPED
from outlive.gotchas.model import GENERIC_SSH, Gotcha, cmd, log

__all__ = ["ENTRIES"]


ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="GEN1",
        title="A forgotten bare box bills around the clock",
        symptom="A week of charges for an instance whose training finished on the first day.",
        cause=(
            "Nothing ever reclaims a bare box - no idle timer, no automatic release - except you."
        ),
        fix=(
            "Make teardown a tracked final step: after the verified pull, ask the user to stop "
            "or destroy (never act on your own) and set a reminder to re-check."
        ),
        platforms=(GENERIC_SSH,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive down: the teardown gate after verified pulls",
    ),
    Gotcha(
        id="GEN2",
        title="An SSH drop kills a run that was not detached",
        symptom=(
            "A run stops as soon as the laptop goes to sleep or the Wi-Fi hiccups; the ssh "
            "client reports `Broken pipe`, and torchrun logs `Received 1 death signal, shutting "
            "down workers` and `closing signal SIGHUP` (signal 1 is the hang-up)."
        ),
        cause=(
            "The job was started by the login shell, so when the connection goes, SIGHUP ends it."
        ),
        fix=(
            "Start long runs inside tmux, or `nohup ... </dev/null &` plus `disown`, before "
            "they start - not after they are already orphaned; `outlive run` starts the job in "
            "its own session, out of reach of the login's hang-up."
        ),
        platforms=(GENERIC_SSH,),
        specificity=4,
        patterns=(
            cmd(r"packet_write_wait: Connection to \S+ port \d+: Broken pipe"),
            cmd(r"client_loop: send disconnect: Broken pipe"),
            # torchrun's agent got the hang-up and forwards it to every worker
            log(r"Received 1 death signal, shutting down workers", 8),
            log(r"Sending process \d+ closing signal SIGHUP", 8),
            log(r"SignalException: Process \d+ got signal: 1$", 8),
        ),
        handling=PREVENTS,
        handled_by="outlive run: detached supervisor in its own session; outlive explain",
        proofs=(
            "tests/integration/ssh/test_ssh_runs.py::test_job_survives_a_link_cut_and_status_says_unreachable_meanwhile[daemon]",
            "tests/integration/local/test_local_lifecycle.py::test_job_gets_the_outlive_env_devnull_stdin_its_own_group_and_a_new_session",
            explain_proof("GEN2"),
        ),
        related=("U3", "GEN8"),
    ),
    Gotcha(
        id="GEN3",
        title="scp restarts from zero after a reset; rsync does not",
        symptom="A 40 GB re-sync over a flaky link never finishes.",
        cause="scp cannot resume a partial transfer.",
        fix=(
            "Use `rsync -avz --partial` for every code, data and result transfer, and retry "
            "large pulls in a loop with a timeout so each attempt resumes."
        ),
        platforms=(GENERIC_SSH,),
        specificity=5,
        patterns=SCP_DROPPED,
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("GEN3"),),
        planned="outlive push / pull use resumable rsync",
        related=("U12",),
    ),
    Gotcha(
        id="GEN4",
        title="CRLF line endings break shell scripts on the box",
        symptom=(
            "`bash: $'\\r': command not found`, or a shebang interpreter that cannot be found."
        ),
        cause="The script was written on Windows and carries CRLF line endings.",
        fix=(
            "Add `*.sh text eol=lf` to `.gitattributes`; to unblock on the box, "
            "`sed -i 's/\\r$//' run.sh`."
        ),
        platforms=(GENERIC_SSH,),
        specificity=8,
        patterns=CRLF_SCRIPT,
        handling=PREVENTS,
        handled_by=(
            "outlive run refuses a launch of a CRLF shell script before sending; push warns; "
            "explain names it"
        ),
        proofs=(
            "tests/integration/ssh/test_push.py::test_a_run_of_a_crlf_shell_script_is_refused_before_sending_anything",
            explain_proof("GEN4"),
        ),
        related=("U26",),
    ),
    Gotcha(
        id="GEN5",
        title="Heavy checks run on the wrong machine",
        symptom="An OOM or CUDA mismatch shows up only on the box, never locally.",
        cause="Static and import checks ran on the laptop while the real compute is remote.",
        fix=(
            "Run a cheap CPU smoke test locally, then the heavy work on the box; judge bug "
            "versus effect once it runs."
        ),
        platforms=(GENERIC_SSH,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive smoke: 1-2 CPU steps with OUTLIVE_SMOKE=1 before paying for a GPU",
    ),
    Gotcha(
        id="GEN6",
        title="A host reboot ends the run without a trace; tmux does not come back",
        symptom=(
            "A detached job vanished with a clean `dmesg`, an idle GPU and a low `uptime`; "
            "`tmux ls` lists no sessions."
        ),
        cause=(
            "tmux and nohup protect a job from a lost connection, not from the machine "
            "restarting (maintenance, a kernel update, an OOM that took the host down), which "
            "ends every session."
        ),
        fix=(
            "Count reboot among the four vanished-process causes (U3), make resume idempotent "
            "so the same command continues, and for boxes that reboot often add an `@reboot` "
            "cron entry or a systemd unit that relaunches."
        ),
        platforms=(GENERIC_SSH,),
        handling=DETECTS,
        handled_by="outlive status names a reboot from the boot id; the relaunch resumes",
        proofs=(
            "tests/integration/ssh/test_ssh_runs.py::test_reboot_is_diagnosed_and_the_relaunch_resumes_to_the_same_result",
            "tests/unit/agent/test_agent_probe.py::test_probe_after_a_reboot_is_vanished_with_cause_reboot",
        ),
        related=("U3",),
    ),
    Gotcha(
        id="GEN7",
        title="A second run on the same GPU halves throughput or OOMs",
        symptom=(
            "Two jobs started on a GPU that seemed idle both run slowly, or the second one hits "
            "OOM on a card that appeared empty."
        ),
        cause=(
            "A bare box has no scheduler, so processes share a card and contend for VRAM and SMs."
        ),
        fix=(
            "Be the scheduler: serialise runs in a queue or pin each to its own card with "
            "`CUDA_VISIBLE_DEVICES`, and check `nvidia-smi` for existing holders before every "
            "launch (hidden holders: U11)."
        ),
        platforms=(GENERIC_SSH,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive up lists current GPU holders before a launch",
        related=("U10", "U11"),
    ),
    Gotcha(
        id="GEN8",
        title="A dropped monitoring connection is mistaken for a dead run",
        symptom=(
            "The polling SSH connection fails and the run is declared dead, but the job "
            "finished and wrote `best.pth`."
        ),
        cause="A failed poll says nothing about the training process; the two get conflated.",
        fix=(
            "After any poll failure, reconnect and check ground truth - process table, log tail, "
            "checkpoint mtime - before concluding anything; poll with short bounded connections "
            "(U17)."
        ),
        platforms=(GENERIC_SSH,),
        specificity=3,
        patterns=(
            cmd(r"ssh: connect to host \S+ port \d+: Connection timed out"),
            cmd(r"Connection timed out during banner exchange"),
            cmd(r"Timeout, server \S+ not responding\."),
        ),
        handling=PREVENTS,
        handled_by="outlive status: a silent box is stale, its run never dead; outlive explain",
        proofs=(
            "tests/integration/ssh/test_ssh_runs.py::test_job_survives_a_link_cut_and_status_says_unreachable_meanwhile[daemon]",
            explain_proof("GEN8"),
        ),
        related=("U17", "GEN2"),
    ),
)
