"""Universal gotchas, part A: process and SSH, disk, memory, transfers, monitoring (U1-U20, U39,
U41, U43). They bite on any rented GPU; only the concrete path or billing verb changes per platform.
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, DOCUMENTS, EXPLAIN, REFERENCE, explain_proof
from outlive.gotchas.model import ANY, Gotcha, cmd, dmesg, log

__all__ = ["ENTRIES", "SCP_DROPPED"]

# A single scp connection died mid-transfer; shared with GEN3.
SCP_DROPPED = (
    log(r"Read from remote host \S+: Connection reset by peer", 5),
    log(r"^lost connection$", 4),
)

ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="U1",
        title="Killing the job over SSH also kills the SSH session (exit 255)",
        symptom=(
            "`ssh host 'pkill -9 -f train'` comes back with `Connection reset by peer` or "
            "`Connection to host closed by remote host`, and ssh exits with status 255."
        ),
        cause=(
            "The killed process tree owned the session's terminal, so tearing it down closes the "
            "PTY chain and the client sees end-of-file. The kill itself normally did its job."
        ),
        fix=(
            "Expect exit 255 after a remote kill and do not retry it in a panic. Reconnect in a "
            "separate call and look at the process table (`pgrep -af train`) to confirm the state."
        ),
        platforms=(ANY,),
        specificity=3,
        patterns=(
            cmd(r"client_loop: send disconnect: Connection reset by peer"),
            cmd(r"Connection to \S+ closed by remote host\."),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proof=explain_proof("U1"),
        planned="outlive cancel signals the job through the agent, in its own round trip",
        related=("U4",),
    ),
    Gotcha(
        id="U2",
        title="Overwriting a script that bash is still executing re-runs parts of it",
        symptom=(
            "A queue or launcher script was replaced mid-run: the running job keeps the old logic, "
            "or a job that had already finished begins again at epoch 1, opens a duplicate tracker "
            "run, and the queue stops advancing. Related: a variable set without `export` before "
            "`tmux`/`nohup` is empty inside the detached job."
        ),
        cause=(
            "bash reads a script lazily, by byte offset. After the file is swapped underneath "
            "it, bash resumes at its old offset inside different content, lands in the middle of "
            "a command and executes a block again. Unexported shell variables never reach the "
            "detached process's environment."
        ),
        fix=(
            "Never overwrite a script that a live process is reading (check `pgrep -af` first). "
            "Give hot changes a new file name and use it only for launches that start later; "
            "restart the detach session to pick up a new version. Adding lines at the end of a "
            "queue file is fine; editing its structure is not. Export variables, or inline them in "
            "the launched command."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive run writes an immutable copy of command, env and wrapper per run",
    ),
    Gotcha(
        id="U3",
        title="A vanished process is not necessarily an OOM kill: check four causes",
        symptom=(
            "The log of a detached run stops growing (often right after start-up) with no "
            "traceback, and the process is gone. The reflex verdict is 'out of memory'."
        ),
        cause=(
            "Four causes look alike: a reboot of the machine (clean `dmesg`, idle GPU, low "
            "`uptime` - the one most often missed), a kernel OOM kill (U9), a hangup from a "
            "dropped SSH session that was not detached, or an over-broad `pkill`."
        ),
        fix=(
            "Diagnose from cheap to conclusive before changing anything: OOM lines in `dmesg` "
            "and the cgroup `oom_kill` counter, uptime or boot id, free VRAM, cgroup headroom. "
            "Do not shrink the batch for an OOM that never happened. A dropped monitoring "
            "connection is not a dead run: check the process and the newest checkpoint directly."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive status: vanished diagnosis from boot id and the cgroup oom_kill counter",
        related=("U9", "U41", "GEN6"),
    ),
    Gotcha(
        id="U4",
        title="Kill and relaunch in one SSH command: the relaunch never runs",
        symptom=(
            "`ssh host 'pkill -f X; start X'` stops X, returns 255, and X is not started again."
        ),
        cause=(
            "The kill drops the SSH session (U1) partway through the command line, so nothing "
            "after it executes."
        ),
        fix=(
            "Use two calls: the first one kills, the second starts the job again and kills "
            "nothing. Keep a `pgrep -f` pattern from matching its own command line by assembling "
            "it from two variables."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive cancel and outlive run are separate agent round trips",
        related=("U1",),
    ),
    Gotcha(
        id="U5",
        title="A hook that scans commands cannot see the env activation inside a script",
        symptom=(
            "A guard hook that forbids training in conda `base` blocks "
            "`ssh host 'nohup bash job.sh'` although the script activates the right env; heredocs "
            "that inline `python -m pkg.train` trip it as well."
        ),
        cause=(
            "The hook only reads the command string. Activation hidden in a copied script is "
            "invisible to it, so it assumes the base environment."
        ),
        fix=(
            "Keep the heavy invocation inside the copied file and put a visible "
            "`source .../conda.sh; conda activate ENV;` in the launch command itself. Never "
            "bypass the guard; where the rental's base env really is the project env, exempt "
            "that case explicitly instead of cloning the env."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="U6",
        title="A full disk during torch.save shows up as an iostream error",
        symptom=(
            "Training exits with status 1 mid-run. The traceback from `torch.serialization` ends "
            "in `basic_ios::clear: iostream error`, `PytorchStreamWriter failed writing file` or "
            "`[enforce fail at inline_container.cc] unexpected pos N vs M`; a half-written "
            "`*.tmp` checkpoint is left behind and `df` shows the mount at 100%."
        ),
        cause=(
            "torch.save streams a zip archive into a temporary file and renames it at the end. "
            "When the filesystem or its quota fills during that write, the C++ writer fails with "
            "these stream errors instead of a plain ENOSPC."
        ),
        fix=(
            "Budget disk before launching: checkpoint size x number of runs, plus one in-flight "
            "`latest`, plus tracker caches. Keep best + latest only and move finished checkpoints "
            "to durable storage during the run. To recover, delete stale `*.tmp` files and the "
            "rolling `latest` (best survives), then resume."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(
            log(r"basic_ios::clear: iostream error"),
            log(r"enforce fail at inline_container\.cc:\d+\] \. unexpected pos \d+ vs \d+"),
            log(r"PytorchStreamWriter failed writing file"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proof=explain_proof("U6"),
        planned="Checkpointer checks free bytes and inodes before every save (prevents)",
        related=("U7", "K8S5"),
    ),
    Gotcha(
        id="U7",
        title="Storage fails on inodes, or on the path nobody watches",
        symptom=(
            "`cp` or `mkdir` fails with `No space left on device` while `df -h` shows a third "
            "used, because `df -i` reads 100%. Or the data mount fills though the run directory "
            "looks small."
        ),
        cause=(
            "A filesystem can run out of inodes long before bytes; per-sample evaluation output "
            "(files per sample x samples x conditions) is the usual trigger. The real byte hog is "
            "often a cache symlinked onto the data disk, such as `~/.cache/huggingface`."
        ),
        fix=(
            "Check `df -i` next to `df -h` before and during runs, and measure the actual mount "
            "with `du` (sort the HF model caches by size). Delete by value: keep small metric "
            "files, drop reproducible checkpoints and caches, and confirm the exact paths with "
            "the user first. Cap or shard per-sample outputs (U25). Inode caps are a platform "
            "fact: some enforce about 200K, most quota bytes only."
        ),
        platforms=(ANY,),
        specificity=4,
        patterns=(
            log(r"No space left on device"),
            log(r"Disk quota exceeded"),
            # a df row with nothing left (snap loop devices are full by design)
            cmd(r"^\S+\s+\S+\s+\S+\s+0\s+100% /(?!snap/)", 6),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proof=explain_proof("U7"),
        planned="outlive up and the Checkpointer check inodes as well as bytes",
        related=("U6", "U25", "U33"),
    ),
    Gotcha(
        id="U8",
        title="Hot data read from a network or HDD volume starves the GPU",
        symptom="Training is I/O-bound on a networked, shared or spinning volume; the GPU waits.",
        cause=(
            "Random reads from a networked or spinning-disk volume are much slower than from "
            "NVMe attached to the instance - up to roughly 35x."
        ),
        fix=(
            "When the job starts, copy the working set from the durable tier to local NVMe "
            "scratch, train on the copy, and write checkpoints back to durable storage. Which path "
            "is local NVMe is a profile fact."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U24", "U25"),
    ),
    Gotcha(
        id="U9",
        title="DataLoader workers copy a big in-RAM object until the cgroup OOM-kills",
        symptom=(
            "The job dies early with a bare `Killed`, exit status 137 or "
            "`DataLoader worker (pid N) is killed by signal: Killed`, without a Python "
            "traceback; with fewer workers the crash disappears."
        ),
        cause=(
            "Every forked worker ends up holding its own copy of large objects owned by the "
            "dataset (a 16384 x 16384 float32 matrix is about 1 GB), so memory grows roughly "
            "(workers + 1)-fold and crosses the container's `memory.max`. The kernel kills the "
            "process with no Python-level error."
        ),
        fix=(
            "Size `num_workers` from `memory.max` and what each worker actually keeps resident, "
            "not from the CPU count. Share one copy (memmap or a module-level singleton) or build "
            "the object lazily; a smaller matrix shrinks quadratically. Confirm with `Killed "
            "process` in `dmesg` or the cgroup `oom_kill` counter, and a run with `num_workers=0`."
        ),
        platforms=(ANY,),
        specificity=5,
        patterns=(
            log(r"DataLoader worker \(pid \d+\) is killed by signal: Killed", 8),
            log(r"DataLoader worker \(pid\(s\) [\d, ]+\) exited unexpectedly", 5),
            log(r"line \d+: +\d+ Killed +\S", 5),
            log(r"^Killed$", 3),
            log(r"failed \(exitcode: -9\)", 4),
            log(r"exited with code 137\b", 4),
            dmesg(r"Memory cgroup out of memory: Killed process \d+", 8),
            dmesg(r"Out of memory: Killed process \d+", 7),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proof=explain_proof("U9"),
        planned="outlive status reads the cgroup oom_kill counter to name an OOM",
        related=("U3", "U10", "U41", "SLURM4"),
    ),
    Gotcha(
        id="U10",
        title="CUDA out of memory is VRAM, not host RAM",
        symptom=(
            "`torch.OutOfMemoryError: CUDA out of memory` when a second train or eval starts "
            "next to a running one, or when a large model runs on its own."
        ),
        cause=(
            "What runs out is the card's memory: every job on the GPU allocates from it and "
            "fragmentation wastes part of it. Host RAM (U9) has nothing to do with it."
        ),
        fix=(
            "Read free VRAM first (`nvidia-smi --query-gpu=memory.free --format=csv`), size the "
            "batch to fit next to any other job, and set "
            "`PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True` to reduce fragmentation. If the "
            "GPU looks empty yet OOMs, look for a hidden holder (U11)."
        ),
        platforms=(ANY,),
        specificity=6,
        patterns=(
            log(r"CUDA out of memory\. Tried to allocate"),
            log(r"torch\.(?:cuda\.)?OutOfMemoryError"),
            log(r"CUDA error: out of memory"),
            log(r"CUBLAS_STATUS_ALLOC_FAILED", 5),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proof=explain_proof("U10"),
        related=("U9", "U11", "GEN7"),
    ),
    Gotcha(
        id="U11",
        title="A zombie holds VRAM that nvidia-smi does not show",
        symptom=(
            "`nvidia-smi` shows no processes and plenty of free memory, but a fresh job "
            "fails with OOM immediately; it tends to happen once a DDP run has crashed or a "
            "container was killed."
        ),
        cause=(
            "Something that should be gone - a defunct or orphaned process, or what is left of a "
            "killed container - still owns a CUDA context. `nvidia-smi` cannot attribute it, so "
            "the card appears free while its memory is taken."
        ),
        fix=(
            "Find the real holders through the device nodes (`fuser -v /dev/nvidia*` or "
            "`lsof /dev/nvidia*`) and end them after checking what they are; restart the "
            "container if the holder lives in a dead one. Flag processes with persistent VRAM and "
            "near-zero utilisation."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive up / doctor list VRAM holders from /dev/nvidia* (reaping stays manual)",
        related=("U10", "GEN7"),
    ),
    Gotcha(
        id="U41",
        title="Host tools describe the whole shared machine, not your container",
        symptom=(
            "`uptime` shows a load average in the hundreds and `free`/`top` look maxed, so the "
            "run seems overloaded or OOM-killed - yet its checkpoint mtime and log keep advancing."
        ),
        cause=(
            "On a multi-tenant rental, `uptime`, `top`, `free` and `vmstat` report the physical "
            "host shared with other tenants. A neighbour can push the load average near 490 "
            "while your own processes sit idle."
        ),
        fix=(
            "Judge the container from cgroup files: `memory.current` against `memory.max`, the "
            "`oom_kill` counter in `memory.events` (if it did not grow, you were not OOM-killed), "
            "and `cpu.stat`/`cpu.pressure`. High host load with a roomy cgroup is a noisy "
            "neighbour, not a bug to fix in your code."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive status / doctor use cgroup readings and the oom_kill counter",
        related=("U3", "U9"),
    ),
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
        proof=explain_proof("U12"),
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
        proof=explain_proof("U13"),
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
        handled_by=EXPLAIN,
        proof=explain_proof("U39"),
        planned="outlive tunnel forwards the TensorBoard port",
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
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="the outlive supervisor sets PYTHONUNBUFFERED=1 for every job",
    ),
)
