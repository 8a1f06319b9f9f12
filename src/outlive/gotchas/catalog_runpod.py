"""Gotchas pinned to RunPod pods: container disk, volume disk, Network Volume, stop versus
terminate (RP1-RP13). Billing figures are as the seed profile verified them (2026-06).
"""

from __future__ import annotations

from outlive.gotchas._common import (
    DETECTS,
    DOCUMENTS,
    EXPLAIN,
    PREVENTS,
    REFERENCE,
    explain_proof,
)
from outlive.gotchas.model import RUNPOD, Gotcha, cmd, log

__all__ = ["ENTRIES", "_DOWN_GATE"]


_DOWN_GATE = "outlive down shows what a stop keeps billing before any teardown"

ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="RP1",
        title="A stopped pod restarts with zero GPUs",
        symptom="After a stop, the pod comes back without a GPU and cannot do compute work.",
        cause=(
            "Stopping keeps the pod tied to the physical machine it ran on; while it was stopped, "
            "another customer took that machine's GPU."
        ),
        fix=(
            "Put anything durable on a Network Volume, prefer terminate over stop, and start "
            "again on whichever host has capacity; use a zero-GPU restart only to recover data."
        ),
        platforms=(RUNPOD,),
        specificity=5,
        patterns=(cmd(r"^No devices were found$"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("RP1"),),
        planned="outlive up checks that a GPU is attached before launching",
        related=("RP4", "U31"),
    ),
    Gotcha(
        id="RP2",
        title="The container disk is wiped when a pod stops",
        symptom="Code, the conda/pip environment or checkpoints are gone after a stop.",
        cause=(
            "A stop clears `/`; data under `/workspace` (volume disk) or on a Network Volume stays."
        ),
        fix="Install environments and write all state under `/workspace` or the Network Volume.",
        platforms=(RUNPOD,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="the runpod profile points every path at /workspace or the Network Volume",
    ),
    Gotcha(
        id="RP3",
        title="Terminate deletes the volume disk for good",
        symptom="One `remove pod` and every checkpoint is gone.",
        cause=(
            "Terminate deletes the container together with its volume disk; data survives only on "
            "a Network Volume."
        ),
        fix=(
            "Copy what you need onto a Network Volume or down to your machine, verify it by "
            "loading, and only then terminate."
        ),
        platforms=(RUNPOD,),
        handling=PREVENTS,
        handled_by=(
            "outlive down --execute: terminate is called only after the gate passed (every "
            "result pulled and verified) and the target's name was typed, on that pod alone; "
            "through MCP, down with execute only on a second call with the first call's "
            "one-time token, voided by any change on the box"
        ),
        proofs=(
            "tests/integration/mcp/test_mcp_down_execute.py::test_execute_terminates_exactly_the_targets_pod_only_after_gate_and_token",
            "tests/integration/cloud/test_cloud_cmds.py::test_down_execute_refused_by_the_gate_touches_nothing",
            "tests/integration/cloud/test_cloud_cmds.py::test_down_execute_without_the_typed_name_touches_nothing[None]",
            "tests/integration/cloud/test_cloud_cmds.py::test_down_execute_terminates_exactly_its_target",
        ),
    ),
    Gotcha(
        id="RP4",
        title="Stopped pod storage costs twice as much",
        symptom="A pod stopped to save money keeps charging, faster than expected.",
        cause=(
            "A stopped volume disk bills $0.20/GB a month, double the running rate, and never "
            "drops to zero."
        ),
        fix="For idle gaps, terminate and keep state on a Network Volume instead of stopping.",
        platforms=(RUNPOD,),
        handling=DETECTS,
        handled_by=(
            "outlive cloud audit / cloud ls / down: a stopped pod's volume disk is priced at 2× "
            "and listed as still billing"
        ),
        proofs=(
            "tests/integration/cloud/test_cloud_cmds.py::test_audit_finds_every_seeded_orphan_and_nothing_else",
            "tests/integration/cloud/test_cloud_cmds.py::test_down_on_a_pod_the_platform_stopped_says_what_still_bills",
            "tests/integration/cloud/test_runpod_fake.py::test_stop_keeps_the_volume_billing_at_twice_the_rate_and_terminate_deletes_it",
        ),
        related=("RP1",),
    ),
    Gotcha(
        id="RP5",
        title="RunPod's HTTP proxy cuts requests at 100 s (Cloudflare 524)",
        symptom="Long, streaming or large requests through `*.proxy.runpod.net` return 524.",
        cause="Cloudflare in front of the proxy closes any request not answered within 100 s.",
        fix=(
            "Use direct TCP (ask for a port above 70000 to get a symmetric mapping) for "
            "websocket connections, long polling and large transfers; keep the proxy for short UI "
            "requests."
        ),
        platforms=(RUNPOD,),
        specificity=7,
        patterns=(
            cmd(r"524: A timeout occurred", 8),
            cmd(r"proxy\.runpod\.net\S*.{0,120}\b524\b"),
            log(r"\b524 Server Error: .{0,200}proxy\.runpod\.net"),
        ),
        handling=DETECTS,
        handled_by="outlive explain; outlive tunnel forwards ports over SSH, not the proxy",
        proofs=(
            explain_proof("RP5"),
            "tests/integration/ssh/test_secret_and_tunnel.py::test_tunnel_forwards_a_local_port_to_a_service_on_the_box",
        ),
    ),
    Gotcha(
        id="RP6",
        title="Proxied SSH cannot copy files, and TCP ports change on reset",
        symptom=(
            "Uploads and downloads fail over `ssh.runpod.io`, or a hard-coded external SSH port "
            "stops working after a restart."
        ),
        cause=(
            "Basic SSH through RunPod's proxy supports no scp, sftp or rsync; external port "
            "numbers change with every reset, and on Community Cloud the public IP may too."
        ),
        fix=(
            "Use full SSH over direct TCP (public IP, port 22 exposed, key on the account) and "
            "read the current external port after each start instead of hard-coding it; Secure "
            "Cloud addresses are steadier."
        ),
        platforms=(RUNPOD,),
        specificity=6,
        patterns=(
            cmd(r"subsystem request failed on channel \d+"),
            cmd(r"protocol version mismatch -- is your shell clean\?"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("RP6"),),
        related=("RP13",),
    ),
    Gotcha(
        id="RP7",
        title="A Network Volume is locked to one datacenter and cannot be detached",
        symptom=(
            "GPU availability is unexpectedly narrow, or a Network Volume turns out to be stuck to "
            "its pod."
        ),
        cause=(
            "Attaching a Network Volume ties every later deployment to its datacenter, and it "
            "must be attached when the pod is created and stays attached."
        ),
        fix=(
            "Pick the datacenter deliberately up front; move data between datacenters through "
            "a bridge pod with rsync or the S3-compatible API."
        ),
        platforms=(RUNPOD,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="RP8",
        title="A low balance stops pods, then deletes them without backups",
        symptom=(
            "Pods disappear with their data once the account balance ran out, or an idle pod kept "
            "charging every day."
        ),
        cause=(
            "When the balance cannot cover the runtime, RunPod stops all pods while storage "
            "keeps billing; a depleted balance, or 30 days unused, gets pods deleted, and no "
            "backups exist."
        ),
        fix=(
            "Turn on automatic payment, or terminate after moving state to a Network Volume; treat "
            "the Network Volume or a local pull as the only safety net."
        ),
        platforms=(RUNPOD,),
        handling=DETECTS,
        handled_by=(
            "outlive cloud audit: pods stopped by a low balance show up with their volume disks "
            "billing at 2×"
        ),
        proofs=(
            "tests/integration/cloud/test_cloud_cmds.py::test_after_a_low_balance_auto_stop_audit_lists_the_volumes_billing_at_twice_the_rate",
        ),
        planned="outlive pull: verified local copies before walking away",
    ),
    Gotcha(
        id="RP9",
        title="The image needs a newer CUDA than the host's driver supports",
        symptom=(
            "An image that works elsewhere fails on RunPod with `CUDA failure 804: forward "
            "compatibility was attempted on non supported HW`, `cuda>=12.x, please update your "
            "driver` or `OCI runtime create failed`."
        ),
        cause=(
            "The machine assigned has an NVIDIA driver too old for the image's CUDA (for "
            "example driver 525 under a CUDA 12.1 image)."
        ),
        fix=(
            "Use the deploy dialog's CUDA Version filter to require a driver that satisfies the "
            "image, or choose an image that matches the available driver."
        ),
        platforms=(RUNPOD,),
        specificity=9,
        patterns=(
            log(r"forward compatibility was attempted on non supported HW"),
            cmd(r"unsatisfied condition: cuda>=[\d.]+, please update your driver"),
            cmd(r"OCI runtime create failed", 4),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("RP9"),),
        planned="outlive up compares the driver's CUDA with the torch build",
        related=("U28",),
    ),
    Gotcha(
        id="RP10",
        title="ENTRYPOINT in a custom image overrides the template's start command",
        symptom=(
            "A pod built from your own image runs, but `/start.sh`, sshd or the handler never "
            "start, so SSH stays unreachable."
        ),
        cause=(
            "The template's container start command only replaces `CMD`; an `ENTRYPOINT` in "
            "the image cannot be overridden by it."
        ),
        fix='Use `CMD ["/start.sh"]` instead of `ENTRYPOINT` so the template override works.',
        platforms=(RUNPOD,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="RP11",
        title="The ~5 GB container disk fills while /workspace has room",
        symptom=(
            "`No space left on device` in the middle of a pip install or download, though "
            "`/workspace` has free space."
        ),
        cause=(
            "By default pip's wheel cache, the Hugging Face cache, apt and conda all write under "
            "`/`, the small overlay disk "
            "(about 5 GB unless raised), not to `/workspace`."
        ),
        fix=(
            "Raise the container disk at creation and move caches to the volume "
            "(`HF_HOME=/workspace/hf`, `PIP_CACHE_DIR=/workspace/.cache/pip`, conda envs under "
            "`/workspace`); `df -h` shows the `overlay` row separately."
        ),
        platforms=(RUNPOD,),
        specificity=7,
        patterns=(
            log(r"Could not install packages due to an OSError: \[Errno 28\] No space left"),
        ),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proofs=(explain_proof("RP11"),),
        planned="the runpod profile sets HF_HOME on the volume; outlive up checks / and /workspace",
        related=("U7",),
    ),
    Gotcha(
        id="RP12",
        title="Pod environment variables are missing in a full-SSH session",
        symptom=(
            "`WANDB_API_KEY`, `HF_TOKEN` or template variables are empty over full SSH, though "
            "the web terminal has them."
        ),
        cause=(
            "Variables handed to the container reach its first process only; a login shell "
            "started by sshd begins without them."
        ),
        fix=(
            "Snapshot the environment at boot (`env > /workspace/.env_vars.txt`) and source it "
            "in SSH sessions, or write the variables to `/etc/environment` or `~/.bashrc`."
        ),
        platforms=(RUNPOD,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive run passes the target's env explicitly to every job",
        related=("U35",),
    ),
    Gotcha(
        id="RP13",
        title="runpodctl send/receive is meant for small files",
        symptom="A large dataset moved with `runpodctl send` is slow or fails.",
        cause="Transfers by one-time code are built for occasional small and medium files.",
        fix=(
            "Use rsync over full SSH (RP6) or the Network Volume's S3 API for large data; keep "
            "send/receive for occasional copies to pods without a public IP, where no key is "
            "needed."
        ),
        platforms=(RUNPOD,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("RP6",),
    ),
)
