"""Universal gotchas, part 2: moving data on and off the box, and watching runs (U12-U20,
U39, U43).
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, DOCUMENTS, EXPLAIN, PREVENTS, REFERENCE, explain_proof
from outlive.gotchas.model import ANY, Gotcha, cmd, log

__all__ = ["ENTRIES", "SCP_DROPPED"]


# A single scp connection died mid-transfer; shared with GEN3.
SCP_DROPPED = (
    log(r"Read from remote host \S+: Connection reset by peer", 5),
    log(r"^lost connection$", 4),
)

ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="U12",
        title="A big scp drops mid-transfer and cannot resume",
        symptom=(
            "Half an hour into `scp -r` of a large tree the connection dies with "
            "`Read from remote host ...: Connection reset by peer`; a few directories arrived, "
            "the rest did not, and scp starts over from nothing."
        ),
        cause="Everything travels over a single SSH connection, so one network blip ends it all.",
        fix=(
            "Transfer per directory, each in its own connection, so a failure costs one piece and "
            "a re-run skips finished ones. Prefer `rsync -avz --partial --append-verify` and retry "
            "big pulls in a loop with a timeout; test speed over the same route the real "
            "transfer takes."
        ),
        platforms=(ANY,),
        specificity=5,
        patterns=(
            *SCP_DROPPED,
            cmd(r"rsync: connection unexpectedly closed"),
            cmd(r"rsync error: error in rsync protocol data stream \(code 12\)"),
            cmd(r"rsync error: timeout in data send/receive \(code 30\)"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U12"),),
        planned="outlive pull: resumable per-directory rsync, then verify by hash",
        related=("GEN3", "U15"),
    ),
    Gotcha(
        id="U13",
        title="scp into a directory that a sibling command had not created yet",
        symptom=(
            'A background `scp big.tar host:/root/x/` fails at once with `dest open "/root/x/": '
            "Failure` because the command that should have created the directory ran later or "
            "not at all."
        ),
        cause="Parallel or sibling commands were assumed to run in order; the target was missing.",
        fix=(
            "Make each transfer self-contained: `ssh host 'mkdir -p /root/x' && scp ...` inside "
            "its own retry loop. Never rely on another command having created the destination."
        ),
        platforms=(ANY,),
        specificity=7,
        patterns=(cmd(r'dest open "[^"]*": (?:Failure|No such file or directory)'),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U13"),),
        planned="outlive push / pull create their destination directories themselves",
    ),
    Gotcha(
        id="U14",
        title="Egress fees quietly add about 20% to the bill",
        symptom=(
            "The invoice runs about 20% above the GPU hours; a large model or dataset fetched "
            "every day from a big cloud's bucket dominates (140 GB a day from S3 is roughly $378 a "
            "month)."
        ),
        cause=(
            "Hyperscaler egress is metered (about $0.09/GB on AWS, $0.08 on GCP, $0.087 on "
            "Azure) while most GPU clouds charge nothing; even inside one provider, traffic "
            "across availability zones costs about $0.01/GB each way."
        ),
        fix=(
            "Keep storage and compute with the same provider and in the same zone, download a "
            "dataset a single time onto durable storage next to the GPU rather than re-reading "
            "it from a bucket every epoch, and prefer a zero-egress GPU cloud for "
            "transfer-heavy work."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U15",),
    ),
    Gotcha(
        id="U15",
        title="Uncompressed payloads make transfers slow and expensive",
        symptom="Checkpoint and dataset transfers crawl and, on metered egress, cost money.",
        cause="Raw tensors and JSON go over the wire as they are.",
        fix=(
            "Compress with zstd or gzip first: checkpoints and datasets shrink 30-60%, JSON "
            "60-80%. Store weights in fp16/int8 where the task allows, and ship tar shards as one "
            "compressed stream."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U12", "U14", "U25"),
    ),
    Gotcha(
        id="U16",
        title="Stale background waiters pile up after each restart",
        symptom=(
            "Eight or more wait loops have been 'running' for 500-740 minutes, each one "
            "SSH-polling about every 20 s - though the experiment finished hours earlier and the "
            "GPU sits idle."
        ),
        cause=(
            "Each kill-and-restart armed a new `until ssh grep MARKER` waiter without stopping "
            "the old one, whose marker lives in a superseded log and never appears. Background "
            "waiters have no time cap, so they loop forever."
        ),
        fix=(
            "Keep one waiter per live run and stop the old one before superseding a run. For "
            "multi-hour waits use a persistent monitor with a stall detector, and after any "
            "session resume check the box itself rather than trusting a monitor that might no "
            "longer exist."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive status / watch: one stateless round trip per look, no armed waiters",
        related=("U17",),
    ),
    Gotcha(
        id="U17",
        title="A monitor never returns because an unquoted | made grep read stdin",
        symptom=(
            "A background SSH monitor never finishes and never notifies; the job it watches "
            "completed and wrote its results long ago."
        ),
        cause=(
            "Some sub-command blocks forever. Classically `grep -hE a|b|c` without quotes: the "
            "shell builds a pipeline whose first grep has no file argument and waits on stdin, "
            "so ssh and the local wrapper never exit."
        ),
        fix=(
            "Quote every regex and always give grep a file. Bound SSH with `ConnectTimeout=15`, "
            "`ServerAliveInterval=10`, `ServerAliveCountMax=3`. Poll with short connections in a "
            "bounded local loop, and confirm completion from the artifacts, not a notification."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U16", "U18", "GEN8"),
    ),
    Gotcha(
        id="U18",
        title="'I will check periodically' needs an armed trigger; make the box finish on its own",
        symptom=(
            "A promise to watch a multi-hour remote run is followed by a day of silence; a cloud "
            "scheduler told to SSH in and check cannot reach the box."
        ),
        cause=(
            "Between turns nothing re-invokes the assistant, and a cloud scheduler runs in a "
            "sandbox that has neither your SSH key nor your network - and the key must never be "
            "handed to it."
        ),
        fix=(
            "Chain train -> eval -> marker file under one detached `nohup ... </dev/null` so the "
            "remote side completes by itself; detect completion by a log marker, not `pgrep` "
            "(which matches its own command line). Treat local polling as best effort and say so."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="the outlive supervisor writes an exit record when the job ends",
        related=("U17",),
    ),
    Gotcha(
        id="U19",
        title="Deleted tracker runs come back in an export",
        symptom=(
            "`run.delete()` returns, but listing runs right after still shows them and a history "
            "export minutes later downloads them again."
        ),
        cause="Deletion is asynchronous on the tracker's server; listings stay stale for minutes.",
        fix=(
            "Delete, then re-check on a later tick (a second delete pass is harmless). Delete on "
            "the tracker first and export locally afterwards, then remove any runs that came back."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="U20",
        title="Metrics kept only on the box die with it",
        symptom="TensorBoard event files on a rented box vanish at teardown, with every curve.",
        cause=(
            "The box's local disk does not outlive terminate/destroy; the history lived only there."
        ),
        fix=(
            "Log to a hosted tracker (wandb online, trackio with a space) so metrics survive "
            "teardown, and use its alerts for monitoring rather than tailing logs over SSH."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive pull includes the run's log and progress files in the verified pull",
        related=("U39",),
    ),
    Gotcha(
        id="U39",
        title="The monitoring panel is empty although training is fine",
        symptom=(
            "The platform's TensorBoard tile is blank or `INACTIVE` (`No dashboards are active "
            "for the current data set`), or a background watcher went quiet, while the loss "
            "advances and event files exist."
        ),
        cause=(
            "Three non-training failures: the panel reads a fixed logdir or port your logger "
            "does not write to; the TensorBoard server or watcher ran in the foreground and died "
            "with the session; or the port was never tunnelled or declared."
        ),
        fix=(
            "Write logs where the panel looks, or symlink its fixed directory to yours (no "
            "retraining needed); run TensorBoard and watchers under the detach primitive; expose "
            "the port the platform's way (`ssh -L 6006:localhost:6006`, RunPod's HTTP proxy). "
            "First confirm the event files are non-empty and the server answers locally."
        ),
        platforms=(ANY,),
        specificity=6,
        patterns=(cmd(r"No dashboards are active for the current data set"),),
        handling=DETECTS,
        handled_by="outlive explain; outlive tunnel forwards the TensorBoard port",
        proofs=(
            explain_proof("U39"),
            "tests/integration/ssh/test_secret_and_tunnel.py::test_tunnel_forwards_a_local_port_to_a_service_on_the_box",
        ),
        related=("U20",),
    ),
    Gotcha(
        id="U43",
        title="Output of a detached run stalls because stdout is block-buffered",
        symptom=(
            "A `nohup`/`tmux` run prints a few lines and then nothing for minutes, so it looks "
            "hung - yet checkpoint mtimes, TensorBoard scalars and `nvidia-smi` show progress."
        ),
        cause=(
            "Python and libc stdio buffer line by line on a terminal but in 4-8 KB blocks when "
            "stdout is a file or pipe, which is precisely how a detached job runs; nothing "
            "reaches the log until a block fills."
        ),
        fix=(
            "Run unbuffered (`python -u` or `PYTHONUNBUFFERED=1`; `stdbuf -oL` for shell "
            "pipelines) and judge liveness from artifacts - checkpoint mtime, scalars, GPU "
            "activity - not from log cadence. Attach py-spy if it really seems hung."
        ),
        platforms=(ANY,),
        handling=PREVENTS,
        handled_by="outlive run: the supervisor gives every job PYTHONUNBUFFERED=1",
        proofs=(
            "tests/integration/local/test_local_lifecycle.py::test_job_gets_the_outlive_env_devnull_stdin_its_own_group_and_a_new_session",
        ),
    ),
)
