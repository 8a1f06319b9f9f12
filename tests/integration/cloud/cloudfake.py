"""Helpers for the cloud tests: the fakes' control verbs and exchange logs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from outlive.store import RunRecord, Store
from outlive.testing import providers


def fake_log(env: dict[str, str], kind: str = "runpod") -> list[dict[str, object]]:
    log = providers.control(env[f"OUTLIVE_{kind.upper()}_FAKE_URL"], "log")
    exchanges: list[dict[str, object]] = log["exchanges"]
    return exchanges


def control(env: dict[str, str], verb: str, body: dict[str, object] | None = None,
            kind: str = "runpod") -> object:  # fmt: skip
    return providers.control(env[f"OUTLIVE_{kind.upper()}_FAKE_URL"], verb, body)


OUTLIVE = str(Path(sys.executable).with_name("outlive"))


def project(
    root: Path, *, target: str, profile: str, cloud_id: str, run_state: str | None = None
) -> Path:
    """A project whose one target (``profile``) is the provider's ``cloud_id``, with one run on
    it in ``run_state`` in the registry (none when None)."""
    root.mkdir()
    (root / "outlive.toml").write_text(
        f'[targets.{target}]\nprofile = "{profile}"\nhost = "127.0.0.1"\nport = 1\n'
        f'cloud_id = "{cloud_id}"\n'
    )
    if run_state is not None:
        (root / ".outlive").mkdir()
        Store(root / ".outlive").add(
            RunRecord(run_id="r1", name="train", target=target, command=["python", "t.py"],
                      run_dir="/w/.outlive/runs/r1", ckpt_dir="/w/durable/train",
                      created_at=time.time(), state=run_state)
        )  # fmt: skip
    return root


def outlive(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTLIVE, *args], cwd=cwd, capture_output=True, text=True, timeout=120,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def doc(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def cloud(proj: Path, verb: str, *, exit_code: int) -> dict[str, Any]:
    proc = outlive(proj, "cloud", verb, "--json")
    assert proc.returncode == exit_code, proc.stderr
    return doc(proc)


def kinds(items: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(i["kind"], i["id"]) for i in items}


def mutations(env: dict[str, str], kind: str = "runpod") -> list[tuple[str, str]]:
    """The calls that change something, in order (everything but GET)."""
    return [(str(x["method"]), str(x["path"])) for x in fake_log(env, kind)
            if x["method"] != "GET"]  # fmt: skip
