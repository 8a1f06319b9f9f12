"""Beyond the seeds, part 1: distributed training, shared memory, the model hub and filesystems
(X1-X8). Each entry was written from public failure logs; ``sources`` names them and the
fixtures under ``tests/unit/gotchas/fixtures/public`` keep an excerpt of each.
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, EXPLAIN, beyond_proof
from outlive.gotchas.model import ANY, Gotcha, log

__all__ = ["ENTRIES"]

ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="X1",
        title="NCCL watchdog timeout: one rank stopped joining the collective",
        symptom=(
            "Every rank logs `Watchdog caught collective operation timeout: WorkNCCL(SeqNum=N, "
            "OpType=ALLREDUCE, ...) ran for 600000 milliseconds before timing out`, after minutes "
            "or hours of silence, then the job aborts."
        ),
        cause=(
            "One rank never reached the collective the others are waiting in (it crashed, hung "
            "in data loading or I/O, took another code path, or its network link stalled), so the "
            "rest block until the process-group timeout (10 or 30 min by default) expires."
        ),
        fix=(
            "Find the rank that is behind: its own log ends first, or run with "
            "`TORCH_NCCL_ASYNC_ERROR_HANDLING=1` and `NCCL_DEBUG=INFO` (plus "
            "`TORCH_DISTRIBUTED_DEBUG=DETAIL` for mismatched collectives). Make every rank run "
            "the same collectives (no rank-0-only eval with a barrier inside), pin "
            "`NCCL_SOCKET_IFNAME` to the right interface and try `NCCL_IB_DISABLE=1` or "
            "`NCCL_P2P_DISABLE=1` to rule out the fabric. Raise `init_process_group(timeout=...)` "
            "only for known-long rank-0 work such as checkpointing."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(
            log(r"Watchdog caught collective operation timeout: WorkNCCL\(SeqNum=\d+, OpType=\w+"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x1_nccl_watchdog_timeout"),),
        planned="outlive status flags a run whose ranks stopped logging while one still does",
        related=("U3",),
        sources=(
            "https://github.com/hiyouga/LlamaFactory/issues/7396",
            "https://github.com/OFA-Sys/OFA/issues/271",
            "https://github.com/pytorch/pytorch/issues/118369",
        ),
    ),
    Gotcha(
        id="X2",
        title="NCCL 'unhandled system error': shared memory or the network said no",
        symptom=(
            "`RuntimeError: NCCL error in: .../ProcessGroupNCCL.cpp:N, unhandled system error` or "
            "`NCCL Error 2: unhandled system error` when the process group starts or at the "
            "first collective."
        ),
        cause=(
            "A system call inside NCCL failed: most often a container's small `/dev/shm` (NCCL "
            "puts its intra-node buffers there), a wrong or unreachable network interface, or "
            "an InfiniBand device NCCL cannot open."
        ),
        fix=(
            "Rerun with `NCCL_DEBUG=INFO`: the `NCCL WARN` line names the failing call. Give the "
            "container `--ipc=host` or `--shm-size=16g` (see X3), set `NCCL_SOCKET_IFNAME` to "
            "the interface the nodes share, and `NCCL_IB_DISABLE=1` when there is no working "
            "InfiniBand."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(log(r"NCCL (?:error in: \S+, |Error \d+: )unhandled system error"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x2_nccl_unhandled_system_error"),),
        related=("U41",),
        sources=(
            "https://github.com/WZMIAOMIAO/deep-learning-for-image-processing/issues/545",
            "https://github.com/NVIDIA/nccl/issues/473",
        ),
    ),
    Gotcha(
        id="X3",
        title="DataLoader workers die with a bus error: /dev/shm is too small",
        symptom=(
            "`ERROR: Unexpected bus error encountered in worker. This might be caused by "
            "insufficient shared memory (shm)` and `DataLoader worker (pid N) is killed by "
            "signal: Bus error`, often only with `num_workers > 0` and inside Docker."
        ),
        cause=(
            "Workers hand batches to the main process through shared memory in `/dev/shm`; "
            "Docker gives a container 64 MB there by default, and writing past the end of a "
            "full tmpfs mapping raises SIGBUS rather than an error."
        ),
        fix=(
            "Start the container with `--ipc=host` or `--shm-size=16g` (Kubernetes: mount an "
            "`emptyDir` with `medium: Memory` at `/dev/shm`), or lower `num_workers` and the "
            "batch size; check with `df -h /dev/shm`."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(
            log(r"Unexpected bus error encountered in worker"),
            log(r"DataLoader worker \(pid \d+\) is killed by signal: Bus error"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x3_shm_bus_error"),),
        planned="outlive up reports the size of /dev/shm next to the worker count",
        related=("U9", "U41"),
        sources=(
            "https://github.com/msr-fiddle/pipedream/issues/28",
            "https://github.com/hkchengrex/STCN/issues/132",
        ),
    ),
    Gotcha(
        id="X4",
        title="The Hugging Face Hub answers 429 Too Many Requests",
        symptom=(
            "`429 Client Error: Too Many Requests for url: https://huggingface.co/...` while "
            "loading a model or dataset, typically when many ranks or jobs start together."
        ),
        cause=(
            "The Hub rate-limits requests per IP address (and per token); every rank of every "
            "job resolving files with HEAD/GET requests at startup adds up quickly, and a shared "
            "cluster or rented box may share its IP with strangers."
        ),
        fix=(
            "Download once before launch (`huggingface-cli download` into a shared `HF_HOME`), "
            "then run with `HF_HUB_OFFLINE=1` so ranks read the cache without requests; pass a "
            "token for the higher authenticated limit, and let only rank 0 download."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(
            log(r"429 Client Error: Too Many Requests for (?:url|URL): https://huggingface\.co/"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x4_hub_rate_limit"),),
        related=("X5",),
        sources=(
            "https://github.com/huggingface/transformers/issues/34841",
            "https://github.com/huggingface/transformers/issues/21129",
        ),
    ),
    Gotcha(
        id="X5",
        title="A gated Hugging Face repo refuses the box: 401, no token there",
        symptom=(
            "`GatedRepoError: 401 Client Error` and `Cannot access gated repo for url "
            "https://huggingface.co/...`: the same code works on the laptop."
        ),
        cause=(
            "The model is gated and the box has no Hub token (the laptop's login lives in its "
            "own `~/.cache/huggingface/token`), or the account has not been granted access yet."
        ),
        fix=(
            "Accept the model's terms on its Hub page with the account you use, then give the "
            "box a token without typing it into a command: `outlive secret push TARGET HF_TOKEN` "
            "and read it from the environment. Pre-download to the cache if the run should not "
            "need the network at all."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(
            log(r"Cannot access gated repo for url https://huggingface\.co/"),
            log(r"GatedRepoError: 401 Client Error"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x5_hub_gated_repo"),),
        related=("U34", "X4"),
        sources=(
            "https://github.com/ml-explore/mlx-examples/issues/759",
            "https://github.com/ToTheBeginning/PuLID/issues/97",
        ),
    ),
    Gotcha(
        id="X6",
        title="Too many open files: the descriptor limit, not the disk",
        symptom=(
            "`OSError: [Errno 24] Too many open files`, often from `os.pipe()` when DataLoader "
            "workers start, or from `multiprocessing/resource_sharer.py` while batches move."
        ),
        cause=(
            "Each process may hold `ulimit -n` descriptors (1024 by default on many images); "
            "DataLoader workers passing tensors with the `file_descriptor` sharing strategy, many "
            "open shards and many workers exhaust it."
        ),
        fix=(
            "Raise the soft limit in the launch script (`ulimit -n 65536`, up to the hard "
            "limit), or call `torch.multiprocessing.set_sharing_strategy('file_system')`; close "
            "files in `__getitem__` instead of keeping one handle per sample."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(log(r"\[Errno 24\] Too many open files"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x6_too_many_open_files"),),
        planned="outlive up reports the soft and hard open-file limits the job will get",
        related=("U9",),
        sources=(
            "https://github.com/kuleshov-group/caduceus/issues/58",
            "https://github.com/amdegroot/ssd.pytorch/issues/91",
        ),
    ),
    Gotcha(
        id="X7",
        title="Stale file handle: the NFS copy changed under the job",
        symptom="`OSError: [Errno 116] Stale file handle` (or `Stale NFS file handle`) on a path.",
        cause=(
            "The job holds an NFS handle to a file or directory that another client deleted or "
            "replaced (a re-synced dataset, a checkpoint rotated from another node, an export "
            "that was remounted), so the server no longer knows it."
        ),
        fix=(
            "Do not rewrite files in place that running jobs read: write new names and rename "
            "(U33), stage hot data onto local disk (U8), and retry the open once on ESTALE; a "
            "remount clears a handle stuck on a directory."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(log(r"\[Errno 116\] Stale (?:NFS )?file handle"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x7_stale_nfs_handle"),),
        related=("U8", "U33"),
        sources=(
            "https://github.com/sjl/peat/issues/2",
            "https://github.com/hiyouga/LlamaFactory/issues/3243",
        ),
    ),
    Gotcha(
        id="X8",
        title="Transport endpoint is not connected: the FUSE mount died",
        symptom=(
            "`OSError: [Errno 107] Transport endpoint is not connected` or `ls: cannot access "
            "/mnt/...: Transport endpoint is not connected` on a gcsfuse, s3fs or other FUSE "
            "mount, often after hours of running."
        ),
        cause=(
            "The user-space daemon behind the mount (gcsfuse, s3fs, rclone, blobfuse) exited or "
            "crashed, usually killed for memory or after a network error, leaving a dead mount "
            "point in the table."
        ),
        fix=(
            "Unmount and remount (`fusermount -uz MOUNT && mount MOUNT`), give the daemon memory "
            "and its own restart policy, and do not checkpoint through a FUSE mount: write to "
            "local disk and upload with a checked copy (`outlive pull`, U33)."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(log(r"Transport endpoint is not connected"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x8_fuse_mount_disconnected"),),
        related=("U8", "U33"),
        sources=(
            "https://github.com/GoogleCloudPlatform/gcs-fuse-csi-driver/issues/50",
            "https://github.com/s3fs-fuse/s3fs-fuse/issues/635",
        ),
    ),
)
