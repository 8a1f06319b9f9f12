"""Gotchas pinned to the two cloud rentals with a console: Paperspace (PS1-PS13) and RunPod
(RP1-RP13). Billing figures are as the seed profiles verified them (2026-06).
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, DOCUMENTS, EXPLAIN, REFERENCE, explain_proof
from outlive.gotchas.model import PAPERSPACE, RUNPOD, Gotcha, cmd, log

__all__ = ["ENTRIES"]

_DOWN_GATE = "outlive down shows what a stop keeps billing before any teardown"

PAPERSPACE_ENTRIES: tuple[Gotcha, ...] = (
    Gotcha(
        id="PS1",
        title="A stopped Paperspace machine keeps billing",
        symptom="The GPU meter stopped, but the bill keeps rising while the machine is off.",
        cause=(
            "Shutting down stops only compute. Attached storage, public IPs, other add-ons and "
            "snapshots are billed hourly until each one is destroyed or released."
        ),
        fix=(
            "The charges only end when each piece is removed on its own: destroy the machine, "
            "release its static IP, delete its storage and every snapshot. Look for leftovers "
            "after each stop."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned=_DOWN_GATE,
        related=("PS9",),
    ),
    Gotcha(
        id="PS2",
        title="A long run ends at a round wall-clock hour: the auto-shutdown timer",
        symptom=(
            "The run disappears exactly 6 or 12 hours in (or when the set window ends), no "
            "traceback."
        ),
        cause=(
            "Auto-shutdown, not a crash: free notebooks stop at 6 h (fixed), paid notebooks "
            "default to 12 h, Core machines allow 1 hour to 1 week. On Linux Core machines the "
            "timer runs on wall-clock time, and an open SSH or tmux session does not postpone it."
        ),
        fix=(
            "Save checkpoints before the timer fires - to `/storage` on notebooks, to the block "
            "disk on Core - "
            "set the longest needed timer in the console (the API and CLI cannot change it after "
            "creation), then restart and resume from the latest checkpoint."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive profiles shows the auto-shutdown clock first; Checkpointer resumes",
        related=("U3",),
    ),
    Gotcha(
        id="PS3",
        title="pip installs and files outside /storage vanish after a notebook restart",
        symptom="Packages installed in one session are gone in the next; saved files disappear.",
        cause=(
            "pip writes to `/usr/local/lib`, which is ephemeral workspace; only `/storage` and "
            "`/notebooks` persist across a stop."
        ),
        fix=(
            "Install into a persisted directory (`pip install --target /storage/pyenv` plus "
            "`PYTHONPATH`, or `--user` under a persisted home), write every checkpoint and log "
            "under `/storage`, and check they landed before stopping."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="the paperspace profile points DURABLE_DIR and HF_HOME at /storage",
    ),
    Gotcha(
        id="PS4",
        title="Old Gradient automation 404s, or the wrong SDK gets installed",
        symptom=(
            "A Gradient-era create or stop call returns an error or silently has no effect; `pip "
            "install gradient` (v3+) imports an inference SDK without notebook or machine "
            "commands."
        ),
        cause=(
            "The legacy Gradient REST endpoints were deprecated on 15 July 2024 and gradient-cli "
            "v2 with them; the v3 `gradient` package is DigitalOcean's unrelated AI inference "
            "SDK that happens to share the name."
        ),
        fix=(
            "Use the `pspace` CLI for new work; pin `gradient<3.0` only where legacy scripts must "
            "working, and pin and verify the CLI version in any automation."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="PS5",
        title="Templates and volumes are tied to one datacenter; disk growth is one-way",
        symptom=(
            "A template or volume you saved is not offered when launching in another region, "
            "and a block-storage resize cannot be undone."
        ),
        cause="Storage and templates are region-locked, and growing block storage is irreversible.",
        fix=(
            "Choose the datacenter on purpose, keep storage, compute and template together, and "
            "size block storage with headroom at the start because it cannot shrink."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="PS6",
        title="After each restart the saved SSH host stops answering (dynamic IP)",
        symptom="The saved ssh host stops connecting after the machine is restarted.",
        cause=(
            "A dynamic public IP is given up at power-off; the next start brings a different one."
        ),
        fix=(
            "Attach a static IP for a stable address (it bills until deleted, capped at about "
            "$3 a month), or look the address up again after every start. Static IPs can be "
            "handled through the API, whereas a dynamic IP must be chosen at creation."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("PS1",),
    ),
    Gotcha(
        id="PS7",
        title="Free Gradient notebooks are public",
        symptom="Confidential code in a free notebook is readable by anyone.",
        cause="On the free tier every notebook is public; private ones come with a paid plan.",
        fix=(
            "Keep confidential code and every secret out of free notebooks - treat them as a "
            "public scratchpad - or pay for private notebooks."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U34",),
    ),
    Gotcha(
        id="PS8",
        title="A free notebook stays pending or reports no capacity",
        symptom=(
            "A free GPU notebook waits in 'pending' or fails with 'out of capacity'; a second will "
            "not start."
        ),
        cause=(
            "The free tier allows one running notebook, five projects and 5 GB of `/storage`, "
            "and free machines are shared, so a pending notebook is queued until one frees up."
        ),
        fix=(
            "Expect queueing, stop the other free notebook, or pick a paid machine type, which "
            "does not wait in the free pool."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
    ),
    Gotcha(
        id="PS9",
        title="A leftover snapshot keeps billing after the machine is destroyed",
        symptom="The machine is gone, yet a small monthly charge continues.",
        cause=(
            "Snapshots are separate resources that outlive the machine and cost $0.29/GB a month "
            "until deleted. The default policy stores none, but an enabled policy (daily, up to "
            "10 kept) accumulates quietly."
        ),
        fix=(
            "Delete snapshots as part of teardown and review the snapshot list after every "
            "destroy; the monthly cap bounds the bleed but does not stop it."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned=_DOWN_GATE,
        related=("PS1",),
    ),
    Gotcha(
        id="PS10",
        title="Uploads fail at the 5 GB free /storage allowance",
        symptom="Uploading a multi-GB dataset into `/storage` fails on an unpaid account.",
        cause=(
            "Free accounts get 5 GB of `/storage`; beyond that storage costs $0.29/GB a month, "
            "and paid plans include more (tiers such as 200 GB or 1 TB)."
        ),
        fix=(
            "Stream or stage the dataset instead of uploading it whole, prune hard, move HF and "
            "torch caches off `/storage` if they would overflow it, or upgrade the plan."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U7",),
    ),
    Gotcha(
        id="PS11",
        title="The ML-in-a-Box driver is too old for current PyTorch",
        symptom=(
            "`The NVIDIA driver on your system is too old (found version 110xx)`, or "
            "`no kernel image is available for execution` on a new card."
        ),
        cause=(
            "The template's host driver and CUDA stack lag behind recent PyTorch wheels, and a "
            "renter normally has no way to upgrade the host driver; this is U28 on Paperspace."
        ),
        fix=(
            "Install a torch build that matches the box's CUDA instead of forcing a driver "
            "upgrade, and pick a template whose Ubuntu and driver fit the GPU (22.04 for "
            "H100/A100)."
        ),
        platforms=(PAPERSPACE,),
        specificity=8,
        patterns=(log(r"The NVIDIA driver on your system is too old \(found version \d+\)"),),
        handling=DETECTS,
        handled_by=EXPLAIN,
        proof=explain_proof("PS11"),
        planned="outlive up compares the driver's CUDA with the torch build",
        related=("U28",),
    ),
    Gotcha(
        id="PS12",
        title="A Gradient Deployment image fails to pull or drifts",
        symptom=(
            "A Deployment cannot pull `<user>/img:tag`, or what should be one image changes "
            "behaviour from one deployment to the next."
        ),
        cause="A moving tag resolves to new layers, or private-registry credentials are missing.",
        fix=(
            "Pin the image by `@sha256:` digest and provide registry credentials as a Gradient "
            "secret, never inline."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("U30",),
    ),
    Gotcha(
        id="PS13",
        title="Paperspace debugging checklist",
        symptom="A Paperspace run misbehaves and it is unclear which layer is at fault.",
        cause=(
            "Core machines are plain Linux; notebooks add ephemeral workspace, a 5 GB free "
            "allowance and the auto-shutdown clock, which explain most surprises."
        ),
        fix=(
            "Compare `nvidia-smi` with torch's CUDA (PS11/U28); find what fills `/storage` with "
            "`du -sch .[!.]* * | sort -h` and check `df -i` (U7); confirm a write is under "
            "`/storage` or `/notebooks` (PS3); for a vanished run check dmesg and uptime - a "
            "clean dmesg near the timer's window means auto-shutdown (PS2); watch a download's "
            "size to spot a stall (U12); list machines, IPs, volumes and snapshots before "
            "calling teardown done (PS1/PS9)."
        ),
        platforms=(PAPERSPACE,),
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        related=("PS1", "PS2", "PS3", "PS9", "PS11"),
    ),
)

RUNPOD_ENTRIES: tuple[Gotcha, ...] = (
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
        proof=explain_proof("RP1"),
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
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned="outlive down refuses until pulls are verified (the Iron Law)",
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
        handling=DOCUMENTS,
        handled_by=REFERENCE,
        planned=_DOWN_GATE,
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
        handled_by=EXPLAIN,
        proof=explain_proof("RP5"),
        planned="outlive tunnel forwards ports over SSH instead of the HTTP proxy",
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
        proof=explain_proof("RP6"),
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
        handling=DOCUMENTS,
        handled_by=REFERENCE,
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
        proof=explain_proof("RP9"),
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
        proof=explain_proof("RP11"),
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

ENTRIES: tuple[Gotcha, ...] = PAPERSPACE_ENTRIES + RUNPOD_ENTRIES
