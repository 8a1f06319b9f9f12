"""The run lifecycle on any target: launch, status (one probe per target), cancel, log tails.

Functions here return plain data; the CLI only renders it. The box's records (run.json,
launch.json, exit.json) are the truth; the registry caches what the last look saw.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from outlive.agent.client import AgentClient
from outlive.config import Config, Target
from outlive.errors import ConfigError, TransportError, UsageError
from outlive.store import RunRecord, Store

STATES = ("pending", "running", "succeeded", "failed", "vanished", "cancelled", "requeued")
ENDED = frozenset({"succeeded", "failed", "vanished", "cancelled"})
STATUS_KEYS = (
    "run_id",
    "name",
    "target",
    "state",
    "exit_code",
    "signal",
    "pid",
    "supervisor_pid",
    "started_at",
    "ended_at",
    "heartbeat_age_s",
    "progress",
    "diagnosis",
)
_MAX_NAME_BYTES = 200
# A look must be cheap and must not hang on a dead link: past this, the target is unreachable.
LOOK_TIMEOUT_S = 15.0


def agent_for(cfg: Config, target: Target) -> AgentClient:
    if target.is_local or (target.kind == "slurm" and not target.host):  # local sbatch
        return AgentClient.local(cfg.state_dir)
    from outlive.transport.ssh import SshTransport

    return AgentClient.remote(SshTransport(target), python=target.python)


def new_run_id(now: float | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now or time.time()))
    return f"{stamp}-{secrets.token_hex(3)}"


def default_name(command: list[str]) -> str:
    """A name that is the same for the identical command, so a relaunch resumes its checkpoints."""
    args = command[1:]
    if "-m" in args[:-1]:
        script = args[args.index("-m") + 1]
    elif "-c" in args:
        script = "inline"
    else:
        script = next((a for a in args if not a.startswith("-")), command[0])
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(script).stem).strip("-.") or "run"
    digest = hashlib.sha256(json.dumps(command).encode()).hexdigest()[:6]
    return f"{stem[:40]}-{digest}"


def check_name(name: str) -> str:
    """Run names become a directory under the durable path: refuse what cannot be one."""
    if not name or len(name.encode("utf-8")) > _MAX_NAME_BYTES:
        raise UsageError(f"run name must be 1 to {_MAX_NAME_BYTES} bytes; choose another --name")
    bad = [c for c in name if ord(c) < 32 or ord(c) == 127 or c == "/"]
    if bad or name in (".", ".."):
        raise UsageError(
            f"run name {name!r} cannot be used as a directory name (it contains '/', a control "
            "character such as a newline, or is '.' or '..'); choose another --name"
        )
    return name


def launch_request(target: Target, run_id: str, name: str, command: list[str]) -> dict[str, Any]:
    """The agent's `launch` request: the run, and everything the target gives every job."""
    return {
        "run_id": run_id,
        "name": name,
        "command": command,
        "workdir": target.workdir,
        "durable": target.durable,
        "env": target.env,
        "hf_home": target.hf_home,
        "secrets": list(target.secrets),
        "target": target.name,
        "profile": target.profile,
        "kill_grace_s": target.kill_grace_s,
        "spot_grace_s": target.spot_grace_s,
        "mtbf_s": target.mtbf_s,
        "created_at": time.time(),
    }


@dataclass(frozen=True)
class Launched:
    run_id: str
    name: str
    target: str
    run_dir: str
    ckpt_dir: str
    pid: int | None


def launch(
    cfg: Config,
    target_name: str,
    command: list[str],
    name: str | None,
    detach: str | None = None,
) -> Launched:
    """Start ``command`` detached on the target; return once the supervisor runs the job."""
    if not command:
        raise UsageError("no command given; put it after `--`, e.g. outlive run -- python train.py")
    if any("\x00" in a for a in command):
        raise UsageError("the command contains a NUL byte, which no program can receive")
    target = cfg.target(target_name)
    run_name = check_name(name if name is not None else default_name(command))
    agent = agent_for(cfg, target)
    run_id = new_run_id()
    request = launch_request(target, run_id, run_name, command)
    request["detach"] = detach or target.options.get("detach", "setsid")
    if target.kind == "slurm":
        from outlive.backends.slurm_launch import submit

        result = submit(cfg, target, agent, request)
    elif target.is_local:
        result = agent.call("launch", request)
    else:
        from outlive.lifecycle.push import launch_deployed

        result = launch_deployed(cfg, target, agent, request)
    rec = RunRecord(
        run_id=run_id,
        name=run_name,
        target=target.name,
        command=command,
        run_dir=result["run_dir"],
        ckpt_dir=result["ckpt_dir"],
        created_at=request["created_at"],
        state="running",
    )
    Store(cfg.state_dir).add(rec)
    return Launched(run_id, run_name, target.name, rec.run_dir, rec.ckpt_dir, result.get("pid"))


def status(cfg: Config, refs: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The state of the given runs (all known runs if none), one agent probe per target."""
    with Store(cfg.state_dir) as store:
        refs = list(refs)
        records = [store.resolve(r) for r in refs] if refs else store.all()
        by_target: dict[str, list[RunRecord]] = {}
        for rec in records:
            by_target.setdefault(rec.target, []).append(rec)
        results: dict[str, dict[str, Any]] = {}
        if len(by_target) == 1:
            results = _probe_target(cfg, *next(iter(by_target.items())))
        elif by_target:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(8, len(by_target))) as pool:
                for look in pool.map(lambda item: _probe_target(cfg, *item), by_target.items()):
                    results.update(look)
        out = [results[rec.run_id] for rec in records]
        store.update_many([(st["run_id"], st["state"], st) for st in out if not st.get("stale")])
    return out


def _probe_target(
    cfg: Config, target_name: str, records: list[RunRecord]
) -> dict[str, dict[str, Any]]:
    try:
        agent = agent_for(cfg, cfg.target(target_name))
        reply = agent.call(
            "probe", {"run_dirs": [r.run_dir for r in records]}, timeout_s=LOOK_TIMEOUT_S
        )
    except (TransportError, ConfigError) as exc:
        # Unreachable is not dead: report what we last saw, marked stale (GEN8, U3).
        return {r.run_id: _stale(r, str(exc)) for r in records}
    return {rec.run_id: _merge(rec, box) for rec, box in zip(records, reply["runs"], strict=True)}


def _merge(rec: RunRecord, box: dict[str, Any]) -> dict[str, Any]:
    st: dict[str, Any] = {k: box.get(k) for k in STATUS_KEYS}
    st.update(
        run_id=rec.run_id,
        name=rec.name,
        target=rec.target,
        command=rec.command,
        run_dir=rec.run_dir,
        ckpt_dir=rec.ckpt_dir,
        created_at=rec.created_at,
    )
    for extra in ("max_rss_bytes", "warning", "error", "cancel_requested", "restarts", "slurm"):
        if box.get(extra) is not None:
            st[extra] = box[extra]
    if st["state"] not in STATES:
        st["state"] = "vanished"
        st["diagnosis"] = {
            "cause": "unknown",
            "evidence": [box.get("error", "the run's records on the box are unreadable")],
            "gotchas": ["U3"],
        }
    return st


def _stale(rec: RunRecord, error: str) -> dict[str, Any]:
    base = dict(rec.status or {})
    st: dict[str, Any] = {k: base.get(k) for k in STATUS_KEYS}
    st.update(run_id=rec.run_id, name=rec.name, target=rec.target, state=rec.state)
    st.update(command=rec.command, run_dir=rec.run_dir, ckpt_dir=rec.ckpt_dir)
    st.update(created_at=rec.created_at, stale=True, unreachable=error)
    return st


def push_and_verify(cfg: Config, target_name: str) -> dict[str, Any]:
    """``outlive push``: sync, then have the box hash its copy against the local manifest."""
    from outlive.lifecycle.push import push

    target = cfg.target(target_name)
    result = push(cfg, target)
    problems: list[str] = []
    if not target.is_local:
        reply = agent_for(cfg, target).call(
            "verify_deploy", {"workdir": target.workdir, "manifest": result.manifest}
        )
        problems = reply["problems"]
    return {
        "target": target.name,
        "files": result.files,
        "size_bytes": result.size_bytes,
        "method": result.method,
        "verified": not problems,
        "problems": problems,
    }


def secret_push(cfg: Config, target_name: str, name: str, value: str) -> dict[str, Any]:
    """Send a secret on the agent's stdin into a 0600 file on box-local disk (U34). Refused under
    the durable path and under every tier the profile marks shared or surviving destroy."""
    from outlive.profiles import load_profile

    target = cfg.target(target_name)
    refuse = [target.durable]
    profile = load_profile(target.profile, cfg.profile_dirs)
    for tier in profile.storage:
        if (tier.shared is True or tier.survives_destroy is True) and tier.path.startswith(
            ("/", "~", "$")
        ):
            refuse.append(tier.path.replace("{project}", cfg.project_name))
    reply: dict[str, Any] = agent_for(cfg, target).call(
        "secret_put", {"name": name, "value": value, "refuse_under": refuse}
    )
    reply["target"] = target.name
    reply["name"] = name
    return reply


def cancel(cfg: Config, ref: str) -> dict[str, Any]:
    rec = Store(cfg.state_dir).resolve(ref)
    target = cfg.target(rec.target)
    result: dict[str, Any] = agent_for(cfg, target).call(
        "cancel", {"run_dir": rec.run_dir, "grace_s": target.kill_grace_s}
    )
    result.update(run_id=rec.run_id, name=rec.name)
    return result


def tail(cfg: Config, ref: str, lines: int) -> bytes:
    rec = Store(cfg.state_dir).resolve(ref)
    reply = agent_for(cfg, cfg.target(rec.target)).call(
        "tail", {"run_dir": rec.run_dir, "lines": lines}
    )
    return base64.b64decode(reply["data_b64"])


class RemoteLog:
    """A run's whole log as a binary stream (``read(n)``), fetched from its box in chunks by
    offset, so a huge log is never held in memory at once."""

    CHUNK_BYTES = 4 << 20

    def __init__(self, cfg: Config, ref: str) -> None:
        self.record = Store(cfg.state_dir).resolve(ref)
        self.target = cfg.target(self.record.target)
        self._agent = agent_for(cfg, self.target)
        self._offset = 0
        self._buf = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            reply = self._agent.call(
                "tail",
                {
                    "run_dir": self.record.run_dir,
                    "offset": self._offset,
                    "max_bytes": self.CHUNK_BYTES,
                },
            )
            data = base64.b64decode(reply["data_b64"])
            self._offset = reply["offset"]
            self._buf += data
            self._eof = not data
        if n < 0:
            n = len(self._buf)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


def follow(
    cfg: Config, ref: str, lines: int, *, poll_s: float = 0.5, max_backoff_s: float = 10.0
) -> Iterator[bytes | TransportError]:
    """Yield log chunks until the run ends; a connection error is yielded (not raised) and the
    follow resumes from the same byte offset, so no line is lost or repeated."""
    rec = Store(cfg.state_dir).resolve(ref)
    agent = agent_for(cfg, cfg.target(rec.target))
    request: dict[str, Any] = {"run_dir": rec.run_dir, "lines": lines}
    backoff_s = poll_s
    while True:
        try:
            reply = agent.call("tail", request, timeout_s=LOOK_TIMEOUT_S)
        except TransportError as exc:
            yield exc
            time.sleep(backoff_s)
            backoff_s = min(max_backoff_s, backoff_s * 2)
            continue
        backoff_s = poll_s
        data = base64.b64decode(reply["data_b64"])
        if data:
            yield data
        request = {"run_dir": rec.run_dir, "offset": reply["offset"]}
        if reply["ended"] and not data:
            return
        if not data:
            time.sleep(poll_s)
