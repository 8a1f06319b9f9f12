"""Beyond the seeds, part 2: drivers, numerics, notebooks and ports (X9-X16). Each entry was
written from public failure logs; ``sources`` names them and the fixtures under
``tests/unit/gotchas/fixtures/public`` keep an excerpt of each.
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, EXPLAIN, beyond_proof
from outlive.gotchas.model import ANY, Gotcha, log

__all__ = ["ENTRIES"]

ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="X9",
        title="NVML driver/library version mismatch: the driver was upgraded under you",
        symptom=(
            "`nvidia-smi` prints `Failed to initialize NVML: Driver/library version mismatch` and "
            "new CUDA processes find no GPU, while jobs started earlier keep running."
        ),
        cause=(
            "The user-space driver libraries were upgraded (often by unattended-upgrades) but the "
            "kernel module still loaded is the old one; they refuse to talk until the module is "
            "reloaded."
        ),
        fix=(
            "On a box you own: reboot, or unload and reload the `nvidia*` modules when nothing "
            "uses the GPU, and hold the driver packages (`apt-mark hold`). On a rental: you "
            "cannot fix the host, so move to another box and report it."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(log(r"Failed to initialize NVML: Driver/library version mismatch"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x9_nvml_driver_library_mismatch"),),
        planned="outlive up fails the GPU check with this cause instead of 'no GPU'",
        related=("U28", "U31"),
        sources=(
            "https://github.com/mozilla/translations/issues/1167",
            "https://github.com/lyulyul/shine-cluster/issues/30",
        ),
    ),
    Gotcha(
        id="X10",
        title="CUDA device-side assert: a label or index is out of range",
        symptom=(
            "`RuntimeError: CUDA error: device-side assert triggered` (older: `cuda runtime error "
            "(59)`), often after lines such as ``Assertion `t >= 0 && t < n_classes` failed`` "
            "or `index out of bounds`; the traceback points at an unrelated later line."
        ),
        cause=(
            "A kernel checked an index and found it outside its tensor: a class label at or "
            "above `num_classes` (or -1, or 1-based labels), a token id beyond the embedding "
            "size; CUDA reports it asynchronously and the context is then unusable."
        ),
        fix=(
            "Rerun with `CUDA_LAUNCH_BLOCKING=1` (or on the CPU) to get the real line, then check "
            "`labels.min() >= 0 and labels.max() < num_classes` and the vocabulary size against "
            "the data; restart the process, since the CUDA context cannot recover."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(
            log(r"Assertion `[^`]*` failed", 7),
            log(r"CUDA error: device-side assert triggered"),
            log(r"cuda runtime error \(59\) : device-side assert triggered"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x10_device_side_assert"),),
        related=("X12",),
        sources=(
            "https://github.com/layumi/Person_reID_baseline_pytorch/issues/372",
            "https://github.com/xhw205/GPLinker_torch/issues/14",
            "https://github.com/zhanghang1989/PyTorch-Encoding/issues/23",
        ),
    ),
    Gotcha(
        id="X11",
        title="A DataLoader worker segfaulted: the crash is in native code, not your Python",
        symptom=(
            "`DataLoader worker (pid N) is killed by signal: Segmentation fault` or `ERROR: "
            "Unexpected segmentation fault encountered in worker`; details are lost."
        ),
        cause=(
            "A C extension used inside the worker crashed: an image or video decoder, OpenCV "
            "with threads after fork, an h5py or lmdb handle opened before the fork, or "
            "mismatched native libraries."
        ),
        fix=(
            "Rerun with `num_workers=0` to get the real traceback (`PYTHONFAULTHANDLER=1` prints "
            "the native stack), open file handles lazily in each worker, call "
            "`cv2.setNumThreads(0)`, and try the `spawn` start method."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(
            log(r"DataLoader worker \(pid \d+\) is killed by signal: Segmentation fault"),
            log(r"Unexpected segmentation fault encountered in worker"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x11_dataloader_worker_segfault"),),
        related=("U9", "X3"),
        sources=(
            "https://github.com/STVIR/pysot/issues/140",
            "https://github.com/MhLiao/DB/issues/94",
        ),
    ),
    Gotcha(
        id="X12",
        title="The loss went NaN or inf: the run diverged and every later step is wasted",
        symptom=(
            "`FloatingPointError: Loss became infinite or NaN at iteration=N`, or the logged "
            "metrics turn into `loss: nan, grad_norm: nan` (mmengine) or `{'loss': 0.0, "
            "'grad_norm': nan, ...}` (transformers) and stay there."
        ),
        cause=(
            "Training diverged: a learning rate too high for the batch size, fp16 overflow, a bad "
            "sample (empty target, log of zero) or a missing warm-up; once a weight is NaN every "
            "following step is NaN too."
        ),
        fix=(
            "Stop the run instead of paying for more NaN steps, resume from the last checkpoint "
            "before the NaN with a lower learning rate, warm-up and gradient clipping, prefer "
            "bf16 over fp16, and use `torch.autograd.detect_anomaly()` on a short rerun to find "
            "the operation."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(
            log(r"Loss became infinite or NaN at iteration=\d+", 9),
            log(r"\{'loss': (?:nan|0\.0), 'grad_norm': nan\b", 7, "'grad_norm': nan"),
            log(r"[ ,\t]loss: nan, grad_norm: nan\b", 7, "loss: nan, grad_norm: nan"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x12_loss_nan_divergence"),),
        planned="outlive status warns when a progress metric becomes NaN or inf",
        related=("X13",),
        sources=(
            "https://github.com/gist-ailab/uoais/issues/16",
            "https://github.com/AnswerDotAI/ModernBERT/issues/233",
            "https://github.com/liyih/RCTrans/issues/6",
        ),
    ),
    Gotcha(
        id="X13",
        title="fp16 loss scale hit its minimum: the loss stopped moving, then the run exits",
        symptom=(
            "Steps keep being skipped for overflow and the loss stays flat, until DeepSpeed "
            "stops with `Current loss scale already at minimum - cannot decrease scale anymore. "
            "Exiting run.`"
        ),
        cause=(
            "Every step overflows in fp16, so the dynamic loss scaler halves the scale until "
            "it reaches `min_loss_scale`: the weights no longer change (a stall) and the run "
            "ends; models pre-trained in bf16 often overflow in fp16."
        ),
        fix=(
            "Train in bf16 where the GPU supports it (`--bf16`, DeepSpeed `bf16.enabled`), "
            "otherwise lower the learning rate, clip gradients and check the data for extreme "
            "values; resume from the last checkpoint taken before the scale collapsed."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(log(r"Current loss scale already at minimum - cannot decrease scale anymore"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x13_fp16_loss_scale_collapse"),),
        planned="outlive status warns when the progress loss stops changing over many steps",
        related=("X12",),
        sources=(
            "https://github.com/ymcui/Chinese-LLaMA-Alpaca/issues/534",
            "https://github.com/yangjianxin1/Firefly/issues/68",
        ),
    ),
    Gotcha(
        id="X14",
        title="The notebook kernel died and restarted: everything in memory is gone",
        symptom=(
            "Colab shows `Your session crashed` (often `after using all available RAM`), Kaggle "
            "`Your notebook tried to allocate more memory than is available. It has restarted.`, "
            "Jupyter `The kernel appears to have died`; the runtime log has `KernelRestarter: "
            "restarting kernel (1/5)`. Variables, the model and unsaved results are lost."
        ),
        cause=(
            "The kernel process died, almost always killed for host memory (a dataset loaded "
            "whole, a big allocation logged by `tcmalloc: large alloc`), and Jupyter restarted "
            "it with an empty state."
        ),
        fix=(
            "Load data lazily or in shards, free what you no longer need, and run the training "
            "as a supervised process writing checkpoints to Drive (`outlive notebook colab`) so "
            "a restart resumes instead of starting over; a bigger runtime only raises the "
            "ceiling."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(
            log(r"KernelRestarter: restarting kernel \(\d+/\d+\)"),
            log(r"WARNING:root:kernel [0-9a-f-]+ restarted"),
            log(r"Your session crashed(?:\.| after using all available RAM)"),
            log(r"Your notebook tried to allocate more memory than is available", 9),
            log(r"The kernel appears to have died\. It will restart automatically"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x14_notebook_kernel_restarted"),),
        related=("NB1", "NB5", "U9"),
        sources=(
            "https://github.com/googlecolab/colabtools/issues/513",
            "https://github.com/googlecolab/colabtools/issues/2538",
            "https://github.com/googlecolab/colabtools/issues/5110",
            "https://github.com/buxiangzhiren/DDCap/issues/39",
            "https://github.com/ypwhs/DogBreed_gluon/issues/3",
        ),
    ),
    Gotcha(
        id="X15",
        title="The rendezvous port is taken: another torchrun is still on 29500",
        symptom=(
            "`The server socket has failed to listen on any local network address`, naming "
            "port 29500 and `EADDRINUSE` / `Address already in use`, right at launch."
        ),
        cause=(
            "A second distributed job on the same host uses the default `MASTER_PORT` 29500, or "
            "a crashed earlier run left a process that still holds it."
        ),
        fix=(
            "Give each job its own port (`torchrun --master_port $((29500 + RANDOM % 1000))` or "
            "`--rdzv-endpoint localhost:0` for standalone runs); find the holder with "
            "`ss -ltnp 'sport = :29500'` and stop it if it is an orphan of yours."
        ),
        platforms=(ANY,),
        specificity=9,
        patterns=(log(r"The server socket has failed to listen on any local network address"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x15_rendezvous_port_in_use"),),
        related=("GEN7", "U16"),
        sources=(
            "https://github.com/showlab/Tune-A-Video/issues/90",
            "https://github.com/om-ai-lab/VLM-R1/issues/289",
        ),
    ),
    Gotcha(
        id="X16",
        title="CUDA devices busy or unavailable: exclusive mode, or another tenant has the GPU",
        symptom=(
            "`CUDA error: CUDA-capable device(s) is/are busy or unavailable` (older: `all "
            "CUDA-capable devices are busy or unavailable`) at the first `.cuda()`, although "
            "`torch.cuda.is_available()` is True."
        ),
        cause=(
            "The GPU is in `Exclusive_Process` compute mode and another process already holds "
            "it, or the device is being reset or is unhealthy; schedulers often set exclusive "
            "mode so that jobs do not share cards."
        ),
        fix=(
            "Check `nvidia-smi --query-gpu=compute_mode --format=csv` and the processes on the "
            "card; point `CUDA_VISIBLE_DEVICES` at a free GPU, end your own leftover process "
            "(U11), or ask for another box when the device is unhealthy."
        ),
        platforms=(ANY,),
        specificity=8,
        patterns=(
            log(r"CUDA-capable device\(s\) is/are busy or unavailable"),
            log(r"all CUDA-capable devices are busy or unavailable"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(beyond_proof("x16_cuda_devices_busy"),),
        related=("GEN7", "U11"),
        sources=(
            "https://github.com/pytorch/pytorch/issues/100691",
            "https://github.com/pytorch/pytorch/issues/2704",
        ),
    ),
)
