"""Universal gotchas, part 1: processes and SSH, disk and storage, memory and OOM (U1-U11,
U41). They bite on any rented GPU; only the concrete path or billing verb changes per platform.
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, DOCUMENTS, EXPLAIN, PREVENTS, REFERENCE, explain_proof
from outlive.gotchas.model import ANY, Gotcha, cmd, dmesg, log

__all__ = ["ENTRIES"]


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
        proofs=(explain_proof("U1"),),
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
        handling=DETECTS,
        handled_by="outlive status: vanished diagnosis (boot id, oom_kill counter, hangup)",
        proofs=(
            "tests/unit/agent/test_agent_probe.py::test_probe_after_a_reboot_is_vanished_with_cause_reboot",
            "tests/unit/agent/test_agent_probe.py::test_probe_of_a_vanished_run_whose_cgroup_counter_grew_is_oom",
            "tests/unit/agent/test_agent_probe.py::test_diagnose_names_a_hangup",
            "tests/integration/local/test_local_lifecycle.py::test_sigkill_of_supervisor_and_job_together_is_vanished_killed",
        ),
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
        handling=PREVENTS,
        handled_by=(
            "Checkpointer: free bytes and inodes checked before every save; a failed write "
            "keeps the previous checkpoint and leaves no temp file"
        ),
        proofs=(
            "tests/unit/ckpt/test_ckpt_disk_full.py::test_a_save_that_does_not_fit_raises_disk_full_and_keeps_the_previous_one",
            "tests/unit/ckpt/test_ckpt_disk_full.py::test_enospc_in_the_background_write_is_raised_next_and_leaves_no_tmp",
            explain_proof("U6"),
        ),
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
        handling=PREVENTS,
        handled_by=(
            "Checkpointer checks inodes as well as bytes; outlive up audits df -h and df -i; a "
            "run that ends while its disk is full keeps retrying its exit record, so it reads "
            "its real end once space is freed, never vanished"
        ),
        proofs=(
            "tests/unit/ckpt/test_ckpt_disk_full.py::test_inode_exhaustion_raises_disk_full_naming_inodes",
            "tests/integration/local/test_attack7_full_disk.py::test_a_run_that_ends_on_a_full_disk_is_recorded_once_space_is_freed",
            "tests/integration/local/test_up_doctor_local.py::test_up_fails_when_inodes_run_out_while_bytes_are_free",
            explain_proof("U7"),
        ),
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
        handled_by="outlive explain; outlive status (OOM from the cgroup oom_kill counter)",
        proofs=(
            explain_proof("U9"),
            "tests/integration/local/test_local_cgroups.py::test_status_reports_oom_when_the_cgroup_counter_grew",
        ),
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
        proofs=(explain_proof("U10"),),
        related=("U9", "U11", "GEN7"),
    ),
    Gotcha(
        id="U11",
        title="A zombie holds VRAM that nvidia-smi does not show",
        symptom=(
            "`nvidia-smi` shows no processes and plenty of free memory, but a fresh job "
            "fails with OOM immediately (`69.17 MiB already allocated; 24.56 MiB free` on an "
            "8 GiB card); it tends to happen once a DDP run has crashed or a container was killed."
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
        specificity=8,
        patterns=(
            # torch itself holds under a GiB and under a GiB is free on a GiB-sized card: the
            # rest belongs to someone else
            log(
                r"\(GPU \d+; [\d.]+ GiB total capacity; (?:[\d.]+ [KM]iB|\d+ bytes) already "
                r"allocated; (?:[\d.]+ [KM]iB|\d+ bytes) free;"
            ),
        ),
        handling=DETECTS,
        handled_by="outlive doctor (VRAM holders nvidia-smi does not list); outlive explain",
        proofs=(
            "tests/unit/gotchas/test_beyond_catalog.py::test_u11_an_oom_while_torch_holds_almost_nothing_names_a_hidden_holder",
        ),
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
        handling=PREVENTS,
        handled_by="outlive status: OOM judged by the cgroup oom_kill counter, not host tools",
        proofs=(
            "tests/unit/agent/test_agent_cgroups.py::test_read_oom_kill_reads_the_v2_events_counter_not_oom_or_group_kill",
            "tests/unit/agent/test_agent_probe.py::test_diagnose_says_oom_cannot_be_ruled_out_without_a_counter",
            "tests/integration/local/test_local_cgroups.py::test_status_reports_oom_when_the_cgroup_counter_grew",
        ),
        related=("U3", "U9"),
    ),
)
