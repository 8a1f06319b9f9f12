"""Gotchas pinned to Paperspace, Gradient notebooks and Core machines (PS1-PS13). Billing
figures are as the seed profile verified them (2026-06).
"""

from __future__ import annotations

from outlive.gotchas._common import DETECTS, DOCUMENTS, EXPLAIN, PREVENTS, REFERENCE, explain_proof
from outlive.gotchas.model import PAPERSPACE, Gotcha, log

__all__ = ["ENTRIES", "_DOWN_GATE"]


_DOWN_GATE = "outlive down shows what a stop keeps billing before any teardown"

ENTRIES: tuple[Gotcha, ...] = (
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
        handling=DETECTS,
        handled_by=(
            "outlive cloud audit / down: a shut-down machine's block storage and an unassigned "
            "static IP are listed as still billing"
        ),
        proofs=(
            "tests/integration/cloud/test_paperspace_fake.py::test_audit_finds_every_seeded_paperspace_orphan_and_nothing_else",
            "tests/integration/cloud/test_paperspace_fake.py::test_down_execute_shuts_down_exactly_its_machine_and_says_what_still_bills",
        ),
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
        handling=PREVENTS,
        handled_by=(
            "outlive notebook gradient: the first cell prints the auto-shutdown clock and the "
            "time left, counted from the notebook's start; the run cell asks the job to save "
            "(TERM) a margin before the timer fires, starts no attempt inside it, and running "
            "the notebook again resumes from that checkpoint on /storage (Core machines: "
            "outlive profiles paperspace-core shows the timer first)"
        ),
        proofs=(
            "tests/integration/notebook/test_gradient_notebook.py::test_gradient_auto_shutdown_saves_before_the_kill_then_resumes",
        ),
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
        handling=PREVENTS,
        handled_by=(
            "outlive notebook gradient: code, records and checkpoints go to "
            "/storage/<project>/<name>, and --requirements into a venv on /storage that is "
            "installed once (the time it took is printed) and reused by every later session"
        ),
        proofs=(
            "tests/integration/notebook/test_gradient_notebook.py::test_gradient_venv_on_storage_is_created_once_and_reused",
            "tests/integration/notebook/test_gradient_notebook.py::test_gradient_notebook_killed_mid_run_resumes_bit_identical",
        ),
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
        handling=DETECTS,
        handled_by="outlive cloud audit: a snapshot whose machine is gone is an orphan",
        proofs=(
            "tests/integration/cloud/test_paperspace_fake.py::test_audit_finds_every_seeded_paperspace_orphan_and_nothing_else",
        ),
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
        proofs=(explain_proof("PS11"),),
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
