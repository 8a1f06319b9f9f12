"""Universal gotchas, part 3: GPU health, data loading, environment and containers, cost,
secrets and the cross-linked ones (U21-U38, U40, U42), and software missing on the box (U44).
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, DOCUMENTS, EXPLAIN, PREVENTS, REFERENCE, explain_proof
from outlive.gotchas.model import ANY, Gotcha, cmd, dmesg, log

__all__ = ["CRLF_SCRIPT", "ENTRIES"]


# bash and env choking on Windows line endings; shared with GEN4. A carriage return inside a
# message is shown to the patterns as the two characters \r (see match.py).
CRLF_SCRIPT = (
    log(r"\$'\\r': command not found", 9),
    log(r"syntax error near unexpected token [`']\$'[^']*\\r''", 9),
    log(r"/bin/(?:ba|da|z)?sh\^M: bad interpreter", 9),
    log(
        r"env: [‘'\"][^‘’'\"]*\\r[’'\"]: No such file or directory", 8, "No such file or directory"
    ),
    log(r"set: -?[\w-]*\\r: invalid option", 8, "invalid option"),
    log(r"cd: \$?'?[^:]*\\r'?: No such file or directory", 7, "No such file or directory"),
    log(r"can't open file '[^']*\\r'", 8, "can't open file"),
    # `cmd \` + CRLF: the backslash escapes the \r, not the newline, so the next line, a flag,
    # runs as a command; the \r is often gone from a pasted log (a space after `\` does the same)
    log(
        r"line \d+: +(?:\$')?--?[A-Za-z][\w-]*(?:=[^:\s']*)?(?:\\r)?'?: command not found",
        6,
        "command not found",
    ),
)

ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="U21",
        title="GPU-Util in nvidia-smi is not a measure of useful work",
        symptom=(
            "The utilisation tile reads 100% while throughput is poor, or a starved job still "
            "shows a busy GPU."
        ),
        cause=(
            "`GPU-Util` only says that at least one kernel ran during the sampling window, so "
            "even a stream of tiny kernels scores 100%."
        ),
        fix=(
            "Read SM clock, memory-bandwidth utilisation and power draw together "
            "(`nvidia-smi dmon -s pucvmet -d 1`) over several seconds. Low clock or power at "
            "'100%' means the GPU is underfed (see U24)."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive doctor samples SM clock and power, not GPU-Util",
        related=("U23", "U24", "U38"),
    ),
    Gotcha(
        id="U22",
        title="Xid 48 or 79 in dmesg: the GPU is broken, rent another box",
        symptom=(
            "Training crashes or the GPU disappears; `dmesg | grep -i xid` shows an Xid error, "
            "`nvidia-smi` may report the device handle as lost."
        ),
        cause=(
            "Xid messages are NVIDIA's hardware-fault reports: Xid 48 is an uncorrectable "
            "double-bit ECC error, Xid 79 means the GPU fell off the bus. No code change fixes "
            "them."
        ),
        fix=(
            "A tenant cannot reseat a card: stop the instance and rent a different machine "
            "instead of debugging code. Include `dmesg | grep -i xid` in the vanished-process "
            "checks (U3) whenever the GPU goes idle unexpectedly."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(
            dmesg(r"NVRM: Xid \([^)]*\): (?:48|79)\b"),
            dmesg(r"GPU has fallen off the bus"),
            log(r"uncorrectable ECC error encountered", 8),
            cmd(
                r"Unable to determine the device handle for GPU ?\S+: "
                r"(?:Unknown Error|GPU is lost)",
                7,
            ),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U22"),),
        planned="outlive up / doctor read Xid lines from dmesg",
        related=("U3",),
    ),
    Gotcha(
        id="U23",
        title="Thermal or power throttling silently costs 25-40%",
        symptom="Unchanged code runs slower than it did the day before; no error, no crash.",
        cause=(
            "The GPU throttles for heat or power (an H100 starts around 83 C; below 75 C is the "
            "goal). On a shared rental, cooling and power headroom are outside your control."
        ),
        fix=(
            "Look for an SM clock below base at high temperature, or an active throttle reason "
            "in `nvidia-smi -q -d PERFORMANCE`. You cannot fix the cooling: flag it and move to "
            "a healthier box instead of hunting a model regression."
        ),
        platforms=(ANY,),
        specificity=7,
        patterns=(cmd(r"^\s*(?:HW|SW)(?: Thermal| Power Brake)? Slowdown\s*: Active\b"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U23"),),
        planned="outlive doctor reports throttle reasons",
        related=("U21",),
    ),
    Gotcha(
        id="U24",
        title="The GPU is waiting for data, not computing",
        symptom=(
            "Utilisation sits between roughly 10% and 70%, steps advance slowly, and profiling "
            "puts the time in data fetching rather than forward/backward."
        ),
        cause=(
            "The input pipeline cannot keep up: too few workers, no prefetching, host-to-device "
            "copies on the critical path."
        ),
        fix=(
            "Tune in order: `num_workers` near cores - 1 (checked against per-worker memory, "
            "U9), `persistent_workers=True`, `pin_memory=True`, `prefetch_factor=2`. Move heavy "
            "per-sample transforms to the GPU; stage data locally (U8) and shard it (U25)."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U8", "U9", "U25", "U38", "U40"),
    ),
    Gotcha(
        id="U25",
        title="Millions of small files: shard them into tar archives",
        symptom=(
            "A dataset of tiny files streams very slowly from shared or object storage; or "
            "per-sample evaluation files exhaust inodes (U7) or an image grid (U37)."
        ),
        cause=(
            "On networked storage the open/stat/close cost of each file dominates, and inode and "
            "metadata costs scale with the number of files, not their size."
        ),
        fix=(
            "Pack samples into tar shards of a few hundred MB (WebDataset style): 3-10x faster "
            "sequential reads, and the only sane way to stream from S3. Cap per-sample outputs "
            "instead of writing one file per sample."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U7", "U8", "U15", "U37"),
    ),
    Gotcha(
        id="U40",
        title="Thread pools sized to the host's cores starve a small CPU slice",
        symptom=(
            "GPU SM activity stays around 5-15% though the data pipeline is not the bottleneck; "
            "`top` shows far more runnable Python threads than the few cores you rent."
        ),
        cause=(
            "The rental gives a cgroup CPU quota (for instance 12 vCPUs carved out of a 64-core "
            "machine), but torch and "
            "OpenMP size their intra-op pools from the physical core count, so ~60 runnable "
            "threads thrash 12 cores and the kernel-launching side cannot keep up."
        ),
        fix=(
            "Cap the pools to the quota before launch (`OMP_NUM_THREADS`, `MKL_NUM_THREADS`, "
            "`torch.set_num_threads`), reading the quota from `cpu.max` (quota / period) rather "
            "than `nproc`, and confirm with `torch.get_num_threads()`."
        ),
        platforms=(ANY,),
        handling=PREVENTS,
        handled_by="outlive run: the supervisor sizes OMP/MKL threads from the cgroup CPU quota",
        proofs=(
            "tests/integration/local/test_local_cgroups.py::test_job_threads_follow_the_cgroup_cpu_quota",
        ),
        related=("U9", "U24"),
    ),
    Gotcha(
        id="U26",
        title="Windows line endings (CRLF) break shell scripts on Linux",
        symptom=(
            "A synced launcher does nothing; run by hand it prints `$'\\r': command not found`, "
            "`syntax error near unexpected token $'do\\r'`, `set: ...: invalid option`, a "
            "`cd` into a path ending in `\\r`, or `line N: --some-flag: command not found` for "
            "the line after a `\\` continuation."
        ),
        cause=(
            "A checkout with `core.autocrlf=true` (or an archive that kept working-tree endings) "
            "gave the `.sh` file CRLF endings, and bash treats each trailing carriage return as "
            "part of the last word. Python files do not care; shell scripts do."
        ),
        fix=(
            "Add `*.sh text eol=lf` to `.gitattributes` so checkouts and archives write LF. To "
            "unblock on the box right away: `sed -i 's/\\r$//' scripts/*.sh`."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=CRLF_SCRIPT,
        handling=PREVENTS,
        handled_by=(
            "outlive run refuses a launch whose own scripts have CRLF endings (shell scripts, "
            "CRLF #! lines) before sending; push warns; explain names it"
        ),
        proofs=(
            "tests/integration/ssh/test_push.py::test_a_run_of_a_crlf_shell_script_is_refused_before_sending_anything",
            "tests/unit/test_crlf.py::test_a_crlf_script_the_run_does_not_use_does_not_block_it",
            explain_proof("U26"),
        ),
        related=("GEN4",),
    ),
    Gotcha(
        id="U27",
        title="Dotted-key overrides fail on null parents; keep variants as overlay files",
        symptom=(
            "`-o evaluation.x.enable=true` crashes with "
            "`KeyError: Override path '...' is not a mapping` because the parent is `null` in "
            "the base YAML; protocol variants that exist only as CLI strings cannot be "
            "reproduced months later."
        ),
        cause=(
            "Override traversal cannot descend through a null parent, and a protocol that lives "
            "only in a command line leaves no reviewable record."
        ),
        fix=(
            "Write each variant as a small overlay config that names its base and pass it with "
            "`-c`. It diffs, reviews, sidesteps null parents, and lets a retry reuse the exact "
            "same file; reconstruct old protocols from the run's manifest of resolved overrides."
        ),
        platforms=(ANY,),
        specificity=7,
        patterns=(log(r"Override path '[^']*' is not a mapping"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U27"),),
    ),
    Gotcha(
        id="U28",
        title="CUDA toolkit, host driver and torch build must agree",
        symptom=(
            "`The detected CUDA version mismatches the version that was used to compile "
            "PyTorch`, `no kernel image is available for execution on the device` at the "
            "first forward pass on a new GPU, or `Torch not compiled with CUDA enabled` from a "
            "CPU-only torch build."
        ),
        cause=(
            "Three layers are versioned separately: the host driver (global, usually not yours "
            "to change on a rental), the per-environment CUDA toolkit, and the torch build. The "
            "toolkit must not exceed what the driver supports, and a project pin such as "
            "`torch<2.9` may swap the one build that ships kernels for a brand-new architecture "
            "(e.g. sm_120) for an older one."
        ),
        fix=(
            "Keep the image's working torch: strip torch/torchvision/torchaudio pins from the "
            "requirements installed on the box. Put the env's toolkit first on "
            "`LD_LIBRARY_PATH` when it must win, smoke-test `torch.cuda.get_device_capability()` "
            "before launching, and record the torch version with the results."
        ),
        platforms=(ANY,),
        specificity=7,
        patterns=(
            log(r"detected CUDA version \([^)]*\) mismatches the version that was used", 8),
            log(r"no kernel image is available for execution on the device"),
            log(r"with CUDA capability sm_\d+ is not compatible with the current PyTorch", 8),
            log(r"CUDA driver version is insufficient for CUDA runtime version", 6),
            # a CPU-only wheel (pip's default index on some platforms) meeting .cuda() calls
            log(r"AssertionError: Torch not compiled with CUDA enabled", 8),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U28"),),
        planned="outlive up compares the driver's CUDA with the torch build",
        related=("PS11", "RP9", "U29"),
    ),
    Gotcha(
        id="U29",
        title="Top-level pins let transitive dependencies drift: install from a lock file",
        symptom="Two installs of the same `requirements.txt` behave or score differently.",
        cause="A hand-written requirements file pins direct dependencies only; the rest floats.",
        fix=(
            "Install from a lock of the full resolved graph (`uv lock`, pip-tools, conda-lock). "
            "Filter the framework pins first (U28), then lock the rest."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U28", "U30"),
    ),
    Gotcha(
        id="U30",
        title="A moving base-image tag makes a Dockerfile unreproducible",
        symptom="Two builds of one unchanged Dockerfile, months apart, do not behave alike.",
        cause="`FROM image:latest` (or any moving tag) resolves to other layers over time.",
        fix="Pin the base image by content digest: `FROM image@sha256:<digest>`.",
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U29", "PS12", "K8S3"),
    ),
    Gotcha(
        id="U31",
        title="A container that runs 100x too slowly never had the GPU attached",
        symptom=(
            "A containerised job completes with normal-looking loss curves, just glacially; "
            "the framework reports no usable GPU."
        ),
        cause=(
            "The container started without `--gpus all`, or the NVIDIA Container Toolkit is "
            "missing or too old, so CUDA quietly fell back to the CPU."
        ),
        fix=(
            "Run with `--gpus all` and NVIDIA Container Toolkit 1.14 or newer, and check "
            "`nvidia-smi` inside the container before training; a clean `docker run` proves "
            "nothing about GPU attachment."
        ),
        platforms=(ANY,),
        specificity=7,
        patterns=(
            cmd(r'could not select device driver "[^"]*" with capabilities: \[\[gpu\]\]', 8),
            log(r"GPU available: False, used: False", 6),
            log(r"Found no NVIDIA driver on your system"),
            cmd(r"NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U31"),),
        planned="outlive up checks that the GPU is visible where the job will run",
        related=("K8S6", "RP1"),
    ),
    Gotcha(
        id="U42",
        title="The code on the box is whatever you last copied, not what you committed",
        symptom=(
            "The box still shows a bug you fixed and committed, or an evaluation runs outdated "
            "code, even though the fix is in your local `git log`."
        ),
        cause=(
            "A rented box usually has no git remote: its tree is whatever was last copied to it, "
            "and only a new sync changes that. An interrupted or mis-targeted sync leaves it "
            "behind."
        ),
        fix=(
            "Verify the deploy instead of assuming it: grep the box for the changed line or "
            "compare file hashes before trusting a run, and make it part of the teardown gate."
        ),
        platforms=(ANY,),
        handling=PREVENTS,
        handled_by="outlive run refuses to launch code that differs from the pushed manifest",
        proofs=(
            "tests/integration/ssh/test_ssh_runs.py::test_launch_is_refused_when_the_box_copy_differs_from_the_local_tree",
        ),
        related=("U29", "U30", "U33"),
    ),
    Gotcha(
        id="U32",
        title="One --epochs flag silently overrides per-task defaults",
        symptom=(
            "A single `--epochs N` is applied to every ablation and one task family "
            "consistently underperforms."
        ),
        cause=(
            "Some task families converge more slowly and set a higher epoch count in their own "
            "config; the blanket command-line value replaces it."
        ),
        fix=(
            "Let each queue entry carry its own epoch count and audit the configs before "
            "deploying (`grep -rE '^\\s*epochs:' configs/`). Treat it as a smoke-test target."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="U33",
        title="A sync step reports success without checking the copy",
        symptom=(
            "Every job's log says its results were synced to durable storage, yet when you come "
            "to download them the durable directory is empty or absent."
        ),
        cause=(
            "The sync does `mkdir -p; cp ... 2>/dev/null` and prints success regardless. When "
            "the durable filesystem is out of inodes (U7) mkdir fails and the green line still "
            "appears."
        ),
        fix=(
            "Gate the success line on the real result (`mkdir -p && cp && test -f`), print a "
            "loud failure otherwise, and until a download is verified treat the data-disk copy "
            "as the source of truth."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive pull / verify: results count only after hashes and a load check",
        related=("U7", "U42"),
    ),
    Gotcha(
        id="U34",
        title="Secrets typed into a command leak into history and logs",
        symptom=(
            "A key pasted into an ssh or scp command ends up in hook logs, session transcripts "
            "and shell history; copying a whole `~/.netrc` drags other machines' credentials along."
        ),
        cause="Anything inside a command string is recorded by history, transcripts and hooks.",
        fix=(
            "Stream exactly the needed credential over stdin into a 0600 file on the box "
            "(`grep -A2 'machine api.wandb.ai' ~/.netrc | ssh host 'umask 077; cat > ~/.netrc'`), "
            "check it by using it rather than echoing it, and never put it on a shared or "
            "durable filesystem."
        ),
        platforms=(ANY,),
        handling=PREVENTS,
        handled_by="outlive secret push: stdin to a 0600 box-local file, never a command line",
        proofs=(
            "tests/integration/ssh/test_secret_and_tunnel.py::test_secret_value_never_appears_in_any_cmdline_during_the_push",
            "tests/integration/ssh/test_secret_and_tunnel.py::test_secret_push_refuses_the_durable_path_without_leaking_the_value",
        ),
        related=("U35", "RP12"),
    ),
    Gotcha(
        id="U35",
        title="wandb offline mode still fails in a wrapper stack when no API key is set",
        symptom=(
            "A run started with `WANDB_MODE=offline` leaves no offline run directory at all; the "
            "log says the tracker was disabled because no API key is configured."
        ),
        cause=(
            "The bare SDK needs no key offline, but project logger wrappers often call "
            "`wandb.login()` or the API before `init` and treat a missing key as fatal, turning "
            "the tracker off entirely instead of offline."
        ),
        fix=(
            "Get the credentials onto the box before launching anything (U34) and log online; "
            "treat a missing `Syncing run` line with a URL as a failure. If the run already ended "
            "untracked, rebuild the metrics from the log. Still running? Relaunch with resume; it "
            "costs at most an epoch."
        ),
        platforms=(ANY,),
        specificity=7,
        patterns=(
            log(r"api_key not configured \(no-tty\)", 8),
            log(r"No API key configured"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U35"),),
        related=("U20", "U34", "RP12"),
    ),
    Gotcha(
        id="U36",
        title="cuDNN autotuning makes runs differ slightly",
        symptom="The same config and seed give slightly different metrics from run to run.",
        cause=(
            "With `cudnn.benchmark=True` the fastest kernel is picked by timing the first "
            "batches, and that choice can differ between runs."
        ),
        fix=(
            "Handled by the determinism guidance of the verifying-dl-experiments skill; decide "
            "there whether to trade speed for determinism."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="U37",
        title="matplotlib refuses images larger than 2^16 pixels per side",
        symptom=(
            "A composite evaluation grid with one row per sample crashes with "
            "`Image size of ... pixels is too large. It must be less than 2^16 in each "
            "direction`, often taking the summary save with it."
        ),
        cause="matplotlib caps each image dimension at 65536 pixels; a row per sample exceeds it.",
        fix=(
            "Cap the number of visualised samples and shard the rest (U25) instead of one row "
            "or file per sample; sizing rules live in the verifying-dl-experiments skill."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(log(r"must be less than 2\^16 in each direction"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("U37"),),
        related=("U25",),
    ),
    Gotcha(
        id="U38",
        title="0% GPU utilisation while training runs: the CPU feeds too slowly",
        symptom=(
            "`nvidia-smi` reads about 0% although steps advance and the model is loaded in VRAM."
        ),
        cause=(
            "An expensive CPU transform applied to every sample, with `num_workers=0`, serialises "
            "data preparation and leaves the GPU idle almost all the time."
        ),
        fix=(
            "Apply the DataLoader knobs of U24 and move the transform onto the GPU; the full "
            "diagnosis belongs to the verifying-dl-experiments skill."
        ),
        platforms=(ANY,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U21", "U24"),
    ),
    Gotcha(
        id="U44",
        title="The job's program or module is not installed on the box (exit 127)",
        symptom=(
            "The run ends `failed` at once with exit code 127: `python: command not found`, "
            "`/usr/bin/env: 'python': No such file or directory`, `could not start 'torchrun'`, "
            "or a Python traceback ending in `ModuleNotFoundError: No module named 'torch'`."
        ),
        cause=(
            "The box's software is not the laptop's: the image has `python3` but no `python`, "
            "or the venv/conda env that holds torch is not on the job's PATH, or it lived on a "
            "disk that a stop or restart wiped (RP2, PS3)."
        ),
        fix=(
            "Call the program the box has (`python3 train.py`), or make the software reach the "
            "box: pick an image that has it, or create a venv on durable storage once "
            "(`python3 -m venv /workspace/venv && /workspace/venv/bin/pip install -r "
            "requirements.txt`) and run `/workspace/venv/bin/python train.py`; check with "
            "`outlive up TARGET` (it probes torch)."
        ),
        platforms=(ANY,),
        specificity=6,
        patterns=(
            log(r"could not start '[^']+': No such file or directory", 8, "could not start"),
            log(r"(?:^|\s|:)[^\s'\\:]+: command not found", 6, ": command not found"),
            log(
                r"env: [‘'\"][^‘’'\"\\]+[’'\"]: No such file or directory",
                7,
                "No such file or directory",
            ),
            log(r"ModuleNotFoundError: No module named '[^']+'", 7, "ModuleNotFoundError"),
        ),
        handling=DETECTS,
        handled_by=(
            "outlive run warns before the job starts when the command's program is not on the "
            "box's PATH (naming what is there); explain and doctor name it from the log"
        ),
        proofs=(
            "tests/integration/local/test_local_software.py::test_run_warns_when_the_program_is_not_on_the_boxs_path",
            "tests/integration/local/test_local_software.py::test_explain_and_doctor_name_a_missing_program_and_the_fix",
            explain_proof("U44"),
        ),
        related=("U26", "RP2", "PS3"),
    ),
)
