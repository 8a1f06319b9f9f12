"""Fault campaign: break launch, push, pull, cancel and down at random moments; nothing is lost.

    python bench/faults.py [--quick] [--faults N] [--seed S] [--box NAME] [--daemon]

With ``--daemon`` every launch goes through the warm local daemon (started first with one
`status`), over its open agent channel, so the client SIGKILLed mid-launch, the link cut and the
concurrent launches hit that path; the target then lists no secrets (a target with secrets is
always launched by the CLI itself), though the secret is still pushed and looked for.

On the testbed box (a real sshd in its own network and PID namespaces) every round injects one
fault at a random moment — the client SIGKILLed mid-launch, the link cut, the box rebooted, the
supervisor SIGKILLed, two launches of one name at once, a corrupt registry, a full local disk
under `pull --to`, a full box disk under `pull`, a byte flipped in a pulled copy, a file added on
the box after a pull, a cancel or a push over a cut link — and then checks, through the CLI as a
user would, what must always hold:

- **runs_lost**: a job alive on the box that the registry (after a `status`) does not know;
- **duplicate_live_runs**: two live jobs of one run name on one target;
- **gate_wrongly_passed**: `down --confirm` exiting 0 while a result is unpulled or damaged;
- **tracebacks**: any "Traceback" on any command's stderr;
- **secrets_leaked**: the pushed secret's value in any output, process list, log or registry.

The last line is the JSON result; `figures` counts the faults injected per kind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import OUTLIVE, result_line

JOB = (
    "import os, sys, time\n"
    "d = os.environ['OUTLIVE_CKPT_DIR']\n"
    "open(os.path.join(d, 'weights.bin'), 'wb').write(os.urandom(65536))\n"
    "print('step 1', flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
)
KINDS = (
    "client_sigkill_launch",
    "link_cut_launch",
    "box_reboot",
    "supervisor_sigkill",
    "concurrent_same_name",
    "registry_corrupt",
    "local_disk_full",
    "box_disk_full",
    "gate_flipped_byte",
    "gate_file_added_after_pull",
    "cancel_link_cut",
    "push_link_cut",
)
LOOK_DEADLINE_S = 60.0


class Campaign:
    def __init__(
        self, box: Any, proj: Path, workdir: Path, secret: str, seed: int, daemon: bool = False
    ) -> None:
        self.daemon = daemon  # launches through the warm local daemon
        self.box, self.proj, self.workdir, self.secret = box, proj, workdir, secret
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.violations: Counter[str] = Counter()
        self.notes: list[str] = []
        self.seen_text: list[str] = []  # every stdout/stderr, searched for the secret at the end
        self.round_s: list[float] = []

    # -- running outlive -----------------------------------------------------------------------

    def cli(self, *args: str, timeout_s: float = 120.0, stdin: str | None = None) -> Any:
        done = subprocess.run(
            [OUTLIVE, *args],
            cwd=self.proj,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, "OUTLIVE_NO_DAEMON": "1"},
        )
        self._saw(args, done.stdout, done.stderr)
        return done

    def _saw(self, args: tuple[str, ...], out: str, err: str) -> None:
        self.seen_text += [out, err]
        if "Traceback" in err:
            self.violations["tracebacks"] += 1
            self.notes.append(
                f"traceback from {' '.join(args[:3])}: {err.strip().splitlines()[-1]}"
            )

    def launch_argv(self, name: str, sleep_s: float) -> list[str]:
        # the name is the job's last argument: its command line says which run it is
        return [
            OUTLIVE,
            "run",
            "-t",
            "box",
            "--name",
            name,
            "--",
            "python3",
            "-c",
            JOB,
            str(sleep_s),
            name,
        ]

    def start_launch(self, name: str, sleep_s: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.launch_argv(name, sleep_s),
            cwd=self.proj,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ) if self.daemon else {**os.environ, "OUTLIVE_NO_DAEMON": "1"},
        )

    def warm_daemon(self) -> bool:
        """Start the local daemon with one look; whether it answers (then launches go to it)."""
        subprocess.run([OUTLIVE, "status"], cwd=self.proj, capture_output=True, timeout=120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = subprocess.run(
                [OUTLIVE, "daemon", "status", "--json"], cwd=self.proj, capture_output=True
            )
            if json.loads(done.stdout or "{}").get("daemons"):
                return True
            time.sleep(0.1)
        return False

    def finish(self, proc: subprocess.Popen[str], what: str) -> int:
        out, err = proc.communicate(timeout=120)
        self._saw((what,), out, err)
        return proc.returncode

    # -- what is true on the box -----------------------------------------------------------------

    def live_jobs(self, name: str) -> int:
        """Jobs of run ``name`` alive on the box (its PID namespace), by their command line."""
        return sum(1 for cmd in self.box.procs().values() if JOB[:20] in cmd and name in cmd)

    def look(self) -> list[dict[str, Any]]:
        """`status --json` once the box answers (a look during a cut is stale, by design)."""
        deadline = time.monotonic() + LOOK_DEADLINE_S
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            done = self.cli("status", "--json")
            if done.returncode in (0, 1) and done.stdout.strip():
                runs = json.loads(done.stdout)["runs"]
                if not any(r.get("stale") for r in runs):
                    return runs
            time.sleep(0.5)
        return runs

    def check_runs(self, name: str, *, sleeping: bool) -> None:
        """No job alive that the registry does not know; at most one live job per name."""
        if self.box.is_cut():
            self.box.restore()
        runs = self.look()
        known_live = sum(
            1 for r in runs if r["name"] == name and r["state"] in ("running", "pending")
        )
        live = self.live_jobs(name) if sleeping else 0
        if live > known_live:
            self.violations["runs_lost"] += live - known_live
            self.notes.append(f"{name}: {live} live job(s), the registry knows {known_live}")
        if live > 1:
            self.violations["duplicate_live_runs"] += live - 1
            self.notes.append(f"{name}: {live} live jobs of one name")

    def cleanup(self, name: str) -> None:
        self.cli("cancel", name)
        for pid, cmd in self.box.procs().items():
            if JOB[:20] in cmd and name in cmd:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)

    def wait_state(self, name: str, states: tuple[str, ...], timeout_s: float = 60.0) -> str:
        deadline = time.monotonic() + timeout_s
        state = "?"
        while time.monotonic() < deadline:
            runs = [r for r in self.look() if r["name"] == name]
            state = runs[-1]["state"] if runs else "?"
            if state in states:
                return state
            time.sleep(0.3)
        return state

    def gate_must_refuse(self, why: str) -> None:
        done = self.cli("down", "box", "--confirm", "box", "--json", timeout_s=300)
        if done.returncode == 0:
            self.violations["gate_wrongly_passed"] += 1
            self.notes.append(f"down passed although {why}")

    # -- the faults ------------------------------------------------------------------------------

    def client_sigkill_launch(self, name: str) -> None:
        proc = self.start_launch(name, 30)
        time.sleep(self.rng.uniform(0.0, 0.6))
        proc.kill()
        proc.communicate()
        time.sleep(1.0)  # a supervisor forked just before the kill reports its job started
        self.check_runs(name, sleeping=True)
        self.cleanup(name)

    def link_cut_launch(self, name: str) -> None:
        proc = self.start_launch(name, 30)
        time.sleep(self.rng.uniform(0.0, 0.4))
        self.box.cut()
        time.sleep(self.rng.uniform(0.5, 2.0))
        self.box.restore()
        self.finish(proc, "run during a cut")
        self.check_runs(name, sleeping=True)
        self.cleanup(name)

    def box_reboot(self, name: str) -> None:
        self.finish(self.start_launch(name, 30), "run")
        time.sleep(self.rng.uniform(0.0, 1.0))
        self.box.reboot()
        state = self.wait_state(name, ("vanished", "failed", "succeeded", "cancelled"))
        if state != "vanished":
            self.notes.append(f"{name}: after a reboot the run is {state}, not vanished")
        self.check_runs(name, sleeping=True)
        self.cleanup(name)

    def supervisor_sigkill(self, name: str) -> None:
        self.finish(self.start_launch(name, 30), "run")
        time.sleep(self.rng.uniform(0.2, 1.0))
        run_dir = self._run_dir_of(name)
        with contextlib.suppress(OSError, ValueError):
            launch = json.loads(Path(run_dir, "launch.json").read_text())
            self.box.ssh("kill", "-9", str(int(launch["supervisor_pid"])))
        self.check_runs(name, sleeping=True)
        done = self.cli("cancel", name)
        if done.returncode not in (0, 1):
            self.notes.append(f"{name}: cancel after the supervisor died exited {done.returncode}")
        self.cleanup(name)

    def _run_dir_of(self, name: str) -> str:
        runs = [r for r in self.look() if r["name"] == name]
        return str(runs[-1]["run_dir"]) if runs else ""

    def concurrent_same_name(self, name: str) -> None:
        procs = [self.start_launch(name, 30) for _ in range(self.rng.choice((2, 3)))]
        for proc in procs:
            self.finish(proc, "concurrent run")
        time.sleep(1.0)
        self.check_runs(name, sleeping=True)
        self.cleanup(name)

    def registry_corrupt(self, name: str) -> None:
        db = self.proj / ".outlive" / "registry.db"
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        kept = {f: f.read_bytes() for f in files if f.exists()}  # the registry, WAL included
        for f in files[1:]:
            f.unlink(missing_ok=True)
        db.parent.mkdir(parents=True, exist_ok=True)
        db.write_bytes(os.urandom(4096))
        try:
            done = self.cli(*self.launch_argv(name, 30)[1:])
            time.sleep(0.5)
            live = self.live_jobs(name)
            if done.returncode == 0 or live:
                self.notes.append(f"{name}: run with a corrupt registry exited {done.returncode}")
                self.violations["runs_lost"] += live  # nobody can know a run launched now
        finally:
            for f in files:
                if f in kept:
                    f.write_bytes(kept[f])
                else:
                    f.unlink(missing_ok=True)
        self.cleanup(name)

    def _short_run(self, name: str) -> bool:
        self.finish(self.start_launch(name, 0), "run")
        return self.wait_state(name, ("succeeded",)) == "succeeded"

    def local_disk_full(self, name: str) -> None:
        if not self._short_run(name):
            return
        mnt = Path(tempfile.mkdtemp(prefix="outlive-fault-tmpfs-"))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], check=True)
        try:
            done = self.cli("pull", name, "--to", str(mnt / "dest"), "--retries", "1")
            if done.returncode == 0:
                self.notes.append(f"{name}: pull into a full disk exited 0")
        finally:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
            shutil.rmtree(mnt, ignore_errors=True)

    def box_disk_full(self, name: str) -> None:
        if not self._short_run(name):
            return
        # The run dir's manifest store becomes a full filesystem, mounted inside the box's own
        # mount namespace (where its agent runs).
        mnt = str(Path(self._run_dir_of(name)) / "manifests")
        fill = f"mkdir -p {mnt} && mount -t tmpfs -o size=8k tmpfs {mnt} && "
        fill += f"(dd if=/dev/zero of={mnt}/filler bs=4k count=4 2>/dev/null; true)"
        if self.box.ssh(fill).returncode != 0:
            self.notes.append(f"{name}: could not fill the box's disk")
            return
        try:
            done = self.cli("pull", name, "--retries", "1")
            if done.returncode != 0:
                self.notes.append(f"{name}: pull with a full box disk exited {done.returncode}")
        finally:
            self.box.ssh("umount", "-l", mnt)

    @contextlib.contextmanager
    def own_project(self, name: str) -> Iterator[None]:
        """A project of its own for a gate round: `down` then judges this one run only."""
        main = self.proj
        self.proj = Path(tempfile.mkdtemp(prefix="outlive-faults-gate-"))
        text = (main / "outlive.toml").read_text()
        sub = self.workdir.name
        (self.proj / "outlive.toml").write_text(text.replace(f"/{sub}", f"/{sub}-gate/{name}"))
        try:
            yield
        finally:
            self.proj = main

    def gate_flipped_byte(self, name: str) -> None:
        with self.own_project(name):
            self._gate_flipped_byte(name)

    def _gate_flipped_byte(self, name: str) -> None:
        if not self._short_run(name):
            return
        dest = self.proj / "pulled" / name
        if self.cli("pull", name, "--to", str(dest)).returncode != 0:
            return
        pulled = [p for p in dest.rglob("weights.bin")]
        for p in pulled:
            data = bytearray(p.read_bytes())
            data[self.rng.randrange(len(data))] ^= 0xFF
            st = p.stat()
            p.write_bytes(bytes(data))
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, same mtime
        if pulled:
            self.gate_must_refuse("a pulled checkpoint has a flipped byte")

    def gate_file_added_after_pull(self, name: str) -> None:
        with self.own_project(name):
            self._gate_file_added_after_pull(name)

    def _gate_file_added_after_pull(self, name: str) -> None:
        if not self._short_run(name):
            return
        if self.cli("pull", name).returncode != 0:
            return
        runs = [r for r in self.look() if r["name"] == name]
        if runs:
            Path(runs[-1]["ckpt_dir"], "late.bin").write_bytes(os.urandom(1024))
            self.gate_must_refuse("a file appeared on the box after the pull")

    def cancel_link_cut(self, name: str) -> None:
        """The link drops for a few seconds around a cancel (a cancel over a link that stays
        down ends only when ssh's keep-alives give up, ~1 min: not a round worth repeating)."""
        self.finish(self.start_launch(name, 30), "run")
        proc = subprocess.Popen(
            [OUTLIVE, "cancel", name], cwd=self.proj, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env={**os.environ, "OUTLIVE_NO_DAEMON": "1"},
        )  # fmt: skip
        time.sleep(self.rng.uniform(0.0, 0.3))
        self.box.cut()
        try:
            time.sleep(self.rng.uniform(1.0, 3.0))
        finally:
            self.box.restore()
        self.finish(proc, "cancel during a cut")
        self.check_runs(name, sleeping=True)
        self.cleanup(name)

    def push_link_cut(self, name: str) -> None:
        (self.proj / f"blob-{name}.bin").write_bytes(os.urandom(2 << 20))  # something to send
        proc = subprocess.Popen(
            [OUTLIVE, "push", "box"], cwd=self.proj, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(self.rng.uniform(0.0, 0.5))
        self.box.cut()
        time.sleep(self.rng.uniform(0.5, 1.5))
        self.box.restore()
        self.finish(proc, "push during a cut")
        done = self.cli("push", "box", "--json")
        if done.returncode != 0 or not json.loads(done.stdout or "{}").get("verified"):
            self.notes.append(f"{name}: the push after a cut did not verify")
        (self.proj / f"blob-{name}.bin").unlink()

    # -- the end ---------------------------------------------------------------------------------

    def secrets_leaked(self) -> int:
        """Count the places the secret's value shows up: outputs, logs, registry, process list."""
        places = [t for t in self.seen_text if self.secret in t]
        ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
        if self.secret in ps:
            places.append("ps")
        for root in (self.proj, self.workdir):
            for path in root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    with contextlib.suppress(OSError):
                        if self.secret.encode() in path.read_bytes():
                            places.append(str(path))
        for p in places[:5]:
            self.notes.append(f"secret found in {p[:120]}")
        return len(places)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one fault of each kind (a few minutes)")
    ap.add_argument("--faults", type=int, default=None, help="faults to inject (default 204)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--box", default="faultbox", help="testbed box name")
    ap.add_argument("--kinds", default=",".join(KINDS), help="comma-separated fault kinds")
    ap.add_argument("--daemon", action="store_true", help="launch through the warm local daemon")
    args = ap.parse_args()
    kinds = tuple(k for k in args.kinds.split(",") if k in KINDS) or KINDS
    total = args.faults or (len(kinds) if args.quick else 17 * len(kinds))
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)

    from outlive.testing import Box

    box = Box.up(args.box)
    sub = f"faults-{seed}-{int(time.time())}"  # a campaign of its own: no runs of earlier ones
    workdir = box.workdir / sub
    proj = Path(tempfile.mkdtemp(prefix="outlive-faults-"))
    target = dict(box.target, workdir=str(workdir), durable=str(box.durable / sub))
    lines = ["[targets.box]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    if not args.daemon:
        lines.append('secrets = ["FAULT_TOKEN"]')
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    secret = "s3cr3t-" + os.urandom(12).hex()
    camp = Campaign(box, proj, workdir, secret, seed, daemon=args.daemon)
    if args.daemon and not camp.warm_daemon():
        print("the local daemon did not start; see `outlive daemon status`", file=sys.stderr)
        return 2
    stored = camp.cli("secret", "push", "box", "FAULT_TOKEN", stdin=secret + "\n")
    if stored.returncode != 0:
        print(f"could not store the secret: {stored.stderr.strip()}", file=sys.stderr)
        return 2
    order = [kinds[i % len(kinds)] for i in range(total)]
    camp.rng.shuffle(order)
    t0 = time.monotonic()
    for i, kind in enumerate(order):
        name = f"f{i:03d}-{kind}"
        camp.injected[kind] += 1
        try:
            getattr(camp, kind)(name)
        except Exception as exc:  # a harness failure is reported, not a product verdict
            camp.notes.append(f"{name}: harness error {type(exc).__name__}: {exc}")
            box.heal()
        took_s = time.monotonic() - t0 - sum(camp.round_s)
        camp.round_s.append(took_s)
        print(f"[{i + 1}/{total}] {kind} ({took_s:.1f} s): {dict(camp.violations)}", flush=True)
    leaked = camp.secrets_leaked()
    elapsed_s = time.monotonic() - t0
    for note in camp.notes[-40:]:
        print(f"  note: {note}")
    figures: dict[str, float] = {
        f"injected_{k}": float(v) for k, v in sorted(camp.injected.items())
    }
    figures.update(
        faults=float(total),
        seed=float(seed),
        elapsed_s=round(elapsed_s, 1),
        runs_lost=float(camp.violations["runs_lost"]),
        duplicate_live_runs=float(camp.violations["duplicate_live_runs"]),
        gate_wrongly_passed=float(camp.violations["gate_wrongly_passed"]),
        tracebacks=float(camp.violations["tracebacks"]),
        secrets_leaked=float(leaked),
        via_daemon=float(args.daemon),
    )
    goals = {
        "runs_lost_zero": camp.violations["runs_lost"] == 0,
        "duplicate_live_runs_zero": camp.violations["duplicate_live_runs"] == 0,
        "gate_wrongly_passed_zero": camp.violations["gate_wrongly_passed"] == 0,
        "tracebacks_zero": camp.violations["tracebacks"] == 0,
        "secrets_leaked_zero": leaked == 0,
    }
    print(result_line("faults", figures, {}, goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
