"""Gotchas of the backends that replace the box's shell: Slurm (SLURM1-5), Kubernetes
(K8S1-6) and Colab/Kaggle notebooks (NB1-5).
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, DOCUMENTS, EXPLAIN, PREVENTS, REFERENCE, explain_proof
from outlive.gotchas.model import COLAB, KAGGLE, KUBERNETES, SLURM, Gotcha, cmd, log

__all__ = ["ENTRIES"]


SLURM_ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="SLURM1",
        title="Saving from inside a signal handler can corrupt the checkpoint",
        symptom=(
            "`--requeue` mostly works, then a corrupt checkpoint appears and the requeued job "
            "cannot load it (`PytorchStreamReader failed reading zip archive`)."
        ),
        cause=(
            "A Python signal handler can run after any bytecode, even in the middle of the "
            "backward pass, so saving from the handler races with training "
            "(Lightning issue #21406)."
        ),
        fix=(
            "Let the handler only set a flag; poll that flag from the training loop, save at the "
            "end of a step, then `scontrol requeue $SLURM_JOB_ID` or exit for `--requeue`."
        ),
        platforms=(SLURM,),
        specificity=6,
        patterns=(
            log(
                r"PytorchStreamReader failed reading zip archive: failed finding central directory"
            ),
        ),
        handling=PREVENTS,
        handled_by="Checkpointer: a signal only sets a flag, the loop saves; outlive explain",
        proofs=(
            "tests/integration/local/test_local_signals.py::test_cancel_preempts_the_checkpointer_and_the_relaunch_resumes_bit_for_bit",
            explain_proof("SLURM1"),
        ),
        planned="the slurm backend requeues with --signal and --requeue",
        related=("SLURM2", "U6"),
    ),
    Gotcha(
        id="SLURM2",
        title="The warning signal comes too late and SIGKILL lands mid-write",
        symptom=(
            "The warning trap (`--signal=...@360`) runs, yet the job is cancelled at its time "
            "limit with the checkpoint only partly on disk."
        ),
        cause=(
            "The warning can arrive as much as 60 s before or after the requested time, and at "
            "the limit only "
            "`KillWait` (30 s by default) separates SIGTERM from SIGKILL."
        ),
        fix=(
            "Ask for a warning early enough that a complete checkpoint finishes before the limit "
            "despite that 60 s jitter, also checkpoint periodically, and write atomically (temp "
            "file, fsync, rename) so a truncated file is never loaded."
        ),
        platforms=(SLURM,),
        specificity=8,
        patterns=(
            # slurmstepd's wording; releases before the node name was added omit `ON <node>`
            log(r"\*\*\* (?:JOB|STEP) \S+ (?:ON \S+ )?CANCELLED AT \S+ DUE TO TIME LIMIT"),
            log(r"\*\*\* (?:JOB|STEP) \S+ (?:ON \S+ )?CANCELLED AT \S+ DUE TO PREEMPTION", 7),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("SLURM2"),),
        planned="Checkpointer cadence from the profile's grace and MTBF; atomic writes",
        related=("SLURM1", "U6"),
    ),
    Gotcha(
        id="SLURM3",
        title="Since Slurm 22.05 a nested srun ignores the job's --cpus-per-task",
        symptom=("A nested `srun` hangs, sees a single CPU, or starves the DataLoader of threads."),
        cause=(
            "From 22.05 on, srun no longer reads `SLURM_CPUS_PER_TASK`, and a job step gets the "
            "allocation's GPUs only when it requests them."
        ),
        fix=(
            "Call `srun -c $SLURM_CPUS_PER_TASK ...` or export "
            "`SRUN_CPUS_PER_TASK=$SLURM_CPUS_PER_TASK`, and pass `--gpus-per-task`/`--gres` to "
            "the srun as well."
        ),
        platforms=(SLURM,),
        specificity=6,
        patterns=(log(r"step creation temporarily disabled, retrying"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("SLURM3"),),
        planned="the slurm backend writes the srun flags into the generated sbatch script",
    ),
    Gotcha(
        id="SLURM4",
        title="Slurm reports an OOM as a job state, with no traceback",
        symptom=(
            "The job ends with nothing in the log; `sacct` says `OUT_OF_MEMORY`, or the output "
            "contains `slurmstepd: error: Detected 1 oom-kill event(s)`."
        ),
        cause=(
            "Slurm's cgroup enforces a hard memory limit derived from `--mem`; going over it is "
            "a kernel OOM kill of host RAM (U9), unrelated to VRAM (U10)."
        ),
        fix=(
            "Read `sacct -o MaxRSS,ReqMem` and raise `--mem`/`--mem-per-cpu` to about 1.2x "
            "MaxRSS; a host-memory OOM is no reason to make the batch smaller."
        ),
        platforms=(SLURM,),
        specificity=9,
        patterns=(
            log(r"Detected \d+ oom[-_]kill event"),
            cmd(r"\bOUT_OF_ME(?:MORY|\+)", 8),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("SLURM4"),),
        planned="outlive status reads sacct for Slurm runs",
        related=("U9", "U10"),
    ),
    Gotcha(
        id="SLURM5",
        title="Checkpoints in $TMPDIR evaporate when the job ends",
        symptom="After a requeue, or in an array task, the checkpoint directory is empty.",
        cause=(
            "`$TMPDIR` lives on the node and is cleared when the job finishes; a requeue, "
            "possibly on another node, only finds what is on the shared parallel filesystem."
        ),
        fix=(
            "Use `$TMPDIR` for fast scratch data only and put checkpoints in "
            "`/scratch/$USER`; never point the durable directory at node-local storage."
        ),
        platforms=(SLURM,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="the slurm profile sets DURABLE_DIR on the shared filesystem",
    ),
)

KUBERNETES_ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="K8S1",
        title="Pod stuck Pending with Insufficient nvidia.com/gpu",
        symptom=(
            "`kubectl get pods` shows `Pending`; events say "
            "`0/N nodes are available: N Insufficient nvidia.com/gpu`."
        ),
        cause=(
            "Rarely missing hardware: with the NVIDIA device-plugin DaemonSet down, nodes report "
            "zero allocatable GPUs; or a taint keeps the pod away from the GPU nodes."
        ),
        fix=(
            "Check `kubectl describe node` for `nvidia.com/gpu` under Allocatable; if it is 0, "
            "look at the device-plugin DaemonSet and its logs; add a toleration for tainted GPU "
            "nodes."
        ),
        platforms=(KUBERNETES,),
        specificity=9,
        patterns=(cmd(r"Insufficient nvidia\.com/gpu"),),
        handling=DETECTS,
        handled_by=(
            "kubernetes backend: GPUs in limits with requests equal; status keeps the run pending "
            "with the scheduler's words, the K8S1 diagnosis and the fix; outlive explain"
        ),
        proofs=(
            "tests/integration/k8s/test_k8s_runs.py::test_an_unschedulable_gpu_request_stays_pending_with_k8s1",
            "tests/unit/backends/test_k8s_manifest.py::test_gpus_in_limits_with_requests_equal_and_shm_a_sized_memory_volume",
            explain_proof("K8S1"),
        ),
    ),
    Gotcha(
        id="K8S2",
        title="A Job rejects restartPolicy: Always",
        symptom=(
            "`kubectl apply` refuses the Job: its pod template may only use `Never` or `OnFailure`."
        ),
        cause="Jobs accept only those two values; `Always` belongs to Deployments.",
        fix=(
            "Use `OnFailure` (restarts the container in place, keeping mounted checkpoints "
            "warm) or `Never` (a new pod for every attempt, with separate logs)."
        ),
        platforms=(KUBERNETES,),
        specificity=9,
        patterns=(cmd(r"spec\.template\.spec\.restartPolicy: (?:Unsupported|Required) value"),),
        handling=PREVENTS,
        handled_by=(
            "kubernetes backend: every Job is rendered with restartPolicy: Never (a new pod per "
            "attempt, which podFailurePolicy needs); outlive explain"
        ),
        proofs=(
            "tests/unit/backends/test_k8s_manifest.py::test_pod_failure_policy_ignores_preemption_and_requeue_and_fails_crashes_at_once",
            "tests/integration/k8s/test_k8s_runs.py::test_the_real_server_accepts_the_rendered_objects",
            explain_proof("K8S2"),
        ),
    ),
    Gotcha(
        id="K8S3",
        title="ImagePullBackOff after pushing to a registry",
        symptom=(
            "The pod does not start; its events list `ErrImagePull` or `Back-off pulling image`."
        ),
        cause=(
            "A private registry without `imagePullSecrets`, a wrong tag or digest, or a huge "
            "layer that times out."
        ),
        fix=(
            "Read the exact error with `kubectl describe pod`, attach `imagePullSecrets`, pin a "
            "real `@sha256:` digest, and warm big images onto the nodes in advance."
        ),
        platforms=(KUBERNETES,),
        specificity=8,
        patterns=(
            cmd(r"\bImagePullBackOff\b"),
            cmd(r"\bErrImagePull\b"),
            cmd(r"Back-off pulling image"),
        ),
        handling=DETECTS,
        handled_by=(
            "kubernetes backend: image_pull_secret becomes imagePullSecrets; status keeps the run "
            "pending with the pull error and the K8S3 diagnosis; outlive explain"
        ),
        proofs=(
            "tests/unit/backends/test_k8s_state.py::test_an_image_that_cannot_be_pulled_keeps_the_run_pending_with_k8s3",
            explain_proof("K8S3"),
        ),
        related=("U30",),
    ),
    Gotcha(
        id="K8S4",
        title="Multi-Attach error: a ReadWriteOnce volume is still held by another node",
        symptom=(
            "After a node failure the new pod hangs in `ContainerCreating` with "
            "`Multi-Attach error ... Volume is already exclusively attached to one node`."
        ),
        cause=(
            "A ReadWriteOnce claim can be mounted by a single node only; the old attachment has "
            "not been released, and pods on two different nodes cannot use it at once."
        ),
        fix=(
            "Use ReadWriteMany storage (NFS, EFS, CephFS) for shared checkpoints or keep "
            "co-dependent pods on one node with affinity; to unstick a failover, force the detach "
            "from the cloud provider's console or remove the leftover VolumeAttachment."
        ),
        platforms=(KUBERNETES,),
        specificity=9,
        patterns=(
            cmd(r"Multi-Attach error for volume"),
            cmd(r"Volume is already exclusively attached to one node"),
        ),
        handling=DETECTS,
        handled_by=(
            "kubernetes backend: one pod per run (nodes > 1, which needs a ReadWriteMany claim, "
            "is refused), and on servers >= 1.31 podReplacementPolicy: Failed starts a new pod "
            "only once the old one let go of the claim; outlive explain"
        ),
        proofs=(
            "tests/unit/backends/test_k8s_manifest.py::test_multi_node_is_refused_in_one_sentence",
            "tests/unit/backends/test_k8s_manifest.py::test_the_claim_outlive_creates_is_read_write_once_for_one_node",
            explain_proof("K8S4"),
        ),
    ),
    Gotcha(
        id="K8S5",
        title="Pod evicted mid-training for ephemeral-storage pressure",
        symptom=(
            "A long run dies with `Evicted` and `The node was low on resource: ephemeral-storage`."
        ),
        cause=(
            "Kubernetes counts container logs, the container's writable layer and `emptyDir` "
            "volumes as ephemeral storage; checkpoints or caches written outside the volume claim "
            "use up the node's disk, and the kubelet responds by evicting the pod. It is the "
            "Kubernetes face of U6/U7."
        ),
        fix=(
            "Write everything large to the PersistentVolumeClaim, set "
            "`resources.limits.ephemeral-storage`, rotate logs and give `emptyDir` a `sizeLimit`."
        ),
        platforms=(KUBERNETES,),
        specificity=9,
        patterns=(cmd(r"low on resource: \[?ephemeral-storage"),),
        handling=PREVENTS,
        handled_by=(
            "kubernetes backend: workdir and durable must lie on the claim (refused otherwise), "
            "/dev/shm gets a sizeLimit; status names an ephemeral-storage eviction (K8S5); "
            "outlive explain"
        ),
        proofs=(
            "tests/unit/backends/test_k8s_state.py::test_a_workdir_outside_the_claim_is_refused_naming_k8s5",
            "tests/unit/backends/test_k8s_state.py::test_an_eviction_for_ephemeral_storage_is_killed_with_k8s5",
            "tests/unit/backends/test_k8s_manifest.py::test_no_claim_is_refused_naming_k8s5",
            explain_proof("K8S5"),
        ),
        related=("U6", "U7"),
    ),
    Gotcha(
        id="K8S6",
        title="A pod trains on the CPU because no GPU was attached",
        symptom=(
            "The pod completes with normal-looking curves about 100x too slowly; "
            "`kubectl exec` cannot even find `nvidia-smi`."
        ),
        cause=(
            "The GPU limit was left out, or the node has the driver but the container lacks the "
            "NVIDIA runtime and its library path (U31 through Kubernetes)."
        ),
        fix=(
            "Run `kubectl exec <pod> -- nvidia-smi` before trusting a run, set "
            "`resources.limits.nvidia.com/gpu`, and make the NVIDIA container runtime the "
            "default."
        ),
        platforms=(KUBERNETES,),
        specificity=8,
        patterns=(cmd(r'exec: "nvidia-smi": executable file not found in \$PATH'),),
        handling=DETECTS,
        handled_by=(
            "kubernetes backend: gpus becomes whole nvidia.com/gpu limits (a share is refused); "
            "outlive explain"
        ),
        proofs=(
            "tests/unit/backends/test_k8s_manifest.py::test_gpus_in_limits_with_requests_equal_and_shm_a_sized_memory_volume",
            explain_proof("K8S6"),
        ),
        related=("U31",),
    ),
)

NOTEBOOK_ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="NB1",
        title="Drive's lazy sync loses the checkpoint the log called saved",
        symptom=(
            "The log says a checkpoint was saved to `/content/drive/...`; an hour later the "
            "runtime disconnects and the file in Drive is empty or missing."
        ),
        cause=(
            "A mounted Drive buffers writes and uploads them in the background - large files can "
            "take around 30 minutes - and a disconnect before the flush drops them."
        ),
        fix=(
            "Call `drive.flush_and_unmount()` (or fsync) after each checkpoint, keep each "
            "checkpoint modest in size, and count one as durable only once it is listed in Drive."
        ),
        platforms=(COLAB,),
        handling=PREVENTS,
        handled_by=(
            "outlive notebook colab: each committed checkpoint is fsynced and re-listed on Drive "
            "before the cell calls it flushed; before the session cap the job saves and stops, "
            "then drive.flush_and_unmount()"
        ),
        proofs=(
            "tests/integration/notebook/test_colab_notebook.py::test_colab_notebook_killed_mid_run_resumes_bit_identical",
        ),
        related=("U33",),
    ),
    Gotcha(
        id="NB2",
        title="One failing cell discards a Kaggle commit's whole output",
        symptom=(
            "'Save & Run All' stays `committing...` or fails, and nothing from `/kaggle/working` "
            "is kept."
        ),
        cause=(
            "Committing executes every cell again, in order, on a new machine; one failing cell, "
            "hidden interactive state or a flaky cell aborts it and drops its output."
        ),
        fix=(
            "Run All interactively on a clean kernel before committing, wrap long stages so that "
            "an error near the end still leaves partial results in `/kaggle/working`, and rely on "
            "files there rather than in-memory state."
        ),
        platforms=(KAGGLE,),
        handling=PREVENTS,
        handled_by=(
            "run -t kaggle: the pushed script always ends well once outlive runs (the job's own "
            "end goes to outlive-chain.json), so a failed job still keeps /kaggle/working; a "
            "version that ends in ERROR shows Kaggle's failure message as the diagnosis"
        ),
        proofs=(
            "tests/integration/kaggle/test_kaggle_cli.py::test_kaggle_run_chains_versions_then_pulls_verified_bit_identical_through_the_cli",
            "tests/integration/kaggle/test_kaggle_fake.py::test_kaggle_fake_error_carries_the_failure_message",
        ),
    ),
    Gotcha(
        id="NB3",
        title="A Kaggle commit runs without the GPU or the internet",
        symptom="A committed run is glacial (CPU) or cannot pip install or download.",
        cause=(
            "Accelerator and internet are notebook settings that the commit inherits; internet "
            "also needs a phone-verified account."
        ),
        fix=(
            "Set Accelerator to GPU and Internet to On before committing, and assert "
            "`torch.cuda.is_available()` near the top so a commit that landed on a CPU stops at "
            "once rather than burning the 9 h session."
        ),
        platforms=(KAGGLE,),
        handling=PREVENTS,
        handled_by=(
            "run -t kaggle: enable_gpu / machine_shape and enable_internet are always written "
            "into kernel-metadata.json from the target; a version that asked for a GPU and sees "
            "none stops in seconds with that message"
        ),
        proofs=(
            "tests/integration/kaggle/test_kaggle_chain.py::test_kaggle_version_asking_for_a_gpu_it_lacks_fails_fast_with_message",
            "tests/integration/kaggle/test_kaggle_cli.py::test_kaggle_run_chains_versions_then_pulls_verified_bit_identical_through_the_cli",
        ),
        related=("U31",),
    ),
    Gotcha(
        id="NB4",
        title="/content and /kaggle/temp are scratch",
        symptom="Results written to `/content/...` or `/kaggle/temp` are gone after a disconnect.",
        cause=(
            "Only Drive (Colab) and `/kaggle/working` (a commit's output, up to 20 GB) outlive "
            "the session."
        ),
        fix=(
            "Point the durable directory at the surviving path and never let a final artifact "
            "exist only on scratch."
        ),
        platforms=(COLAB, KAGGLE),
        handling=PREVENTS,
        handled_by=(
            "outlive notebook colab: the code, the run records and the checkpoints live on Drive "
            "(<Drive>/<project>/), nothing on /content, and where Drive is not mounted the "
            "setup cell stops instead of making the directory on the VM's disk; run -t kaggle: "
            "they live in /kaggle/working/<project>, the output each version keeps"
        ),
        proofs=(
            "tests/integration/notebook/test_colab_notebook.py::test_colab_notebook_killed_mid_run_resumes_bit_identical",
            "tests/integration/notebook/test_colab_notebook.py::test_a_drive_that_is_not_there_stops_the_setup_and_makes_nothing",
            "tests/integration/kaggle/test_kaggle_cli.py::test_kaggle_run_chains_versions_then_pulls_verified_bit_identical_through_the_cli",
        ),
    ),
    Gotcha(
        id="NB5",
        title="Free Colab disconnects mid-epoch with no warning",
        symptom="The session simply ends: no SIGTERM and no grace period to react to.",
        cause=(
            "A notebook eviction sends no signal, unlike Slurm or Kubernetes; free Colab also "
            "has a ~90 min idle timeout, a ~12 h lifetime and no background execution."
        ),
        fix=(
            "Save to Drive every N steps (flushed, NB1), make the first cell resume from "
            "the latest checkpoint, and chain runs across sessions within the session limit."
        ),
        platforms=(COLAB,),
        handling=PREVENTS,
        handled_by=(
            "outlive notebook colab: running the notebook again resumes from the last flushed "
            "checkpoint (a new attempt of the same run) and does nothing once the run has ended; "
            "the danger clocks are printed in the first cell"
        ),
        proofs=(
            "tests/integration/notebook/test_colab_notebook.py::test_colab_notebook_killed_mid_run_resumes_bit_identical",
        ),
        related=("NB1",),
    ),
)

ENTRIES: tuple[Gotcha, ...] = SLURM_ENTRIES + KUBERNETES_ENTRIES + NOTEBOOK_ENTRIES
