"""`secret push` keeps the value off every command line; `tunnel` forwards a port over SSH."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from test_ssh_runs import wait_for

from outlive.testing import DEADLINE_S, Box, wait_until

OUTLIVE = str(Path(sys.executable).with_name("outlive"))


def _project(tmp_path: Path, box: Box, tag: str, **extra: object) -> Path:
    """A project whose target `box` has this test's own workdir and durable directory."""
    proj = tmp_path / "proj"
    proj.mkdir()
    target = dict(box.target, workdir=str(box.workdir / tag), durable=str(box.durable / tag))
    lines = ["[targets.box]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    (proj / "outlive.toml").write_text("\n".join(lines) + "\n")
    return proj


def _scan_cmdlines(needle: bytes, stop: threading.Event, hits: list[str]) -> None:
    """Read every process's argv (host and box alike: the box's PID namespace is visible)."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if needle in f.read():
                        hits.append(pid)
            except OSError:
                continue


def test_secret_value_never_appears_in_any_cmdline_during_the_push(
    tmp_path: Path, box: Box, tag: str
) -> None:
    proj = _project(tmp_path, box, tag, secrets=["MY_TOKEN"])
    value = f"tok-{os.getpid()}-s3cr3t-{time.time_ns()}"
    stop, hits = threading.Event(), []  # type: ignore[var-annotated]
    scanner = threading.Thread(target=_scan_cmdlines, args=(value.encode(), stop, hits))
    scanner.start()
    try:
        for _ in range(3):  # several pushes so the scan overlaps every phase of one
            out = subprocess.run(
                [OUTLIVE, "secret", "push", "box", "MY_TOKEN", "--json"],
                cwd=proj,
                input=value,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert out.returncode == 0, out.stderr
            assert value not in out.stdout and value not in out.stderr
    finally:
        stop.set()
        scanner.join()
    assert hits == []
    stored = Path(json.loads(out.stdout)["path"])
    assert stored.read_text() == value
    assert stored.stat().st_mode & 0o777 == 0o600

    # The job gets it in its environment, read from the file on the box (not from an argv).
    run = subprocess.run(
        [
            OUTLIVE,
            "run",
            "-t",
            "box",
            "--json",
            "--",
            "sh",
            "-c",
            'test "$MY_TOKEN" = "$(cat "$OUTLIVE_SECRETS_DIR/MY_TOKEN")" && echo same',
        ],
        cwd=proj,
        capture_output=True,
        text=True,
        check=True,
    )
    run_id = json.loads(run.stdout)["run_id"]
    st = wait_for(proj, run_id, lambda s: s["state"] not in ("pending", "running"), "the end")
    assert st["state"] == "succeeded"
    logs = subprocess.run([OUTLIVE, "logs", run_id], cwd=proj, capture_output=True, text=True)
    assert logs.stdout.strip() == "same"


def test_secret_push_refuses_the_durable_path_without_leaking_the_value(
    tmp_path: Path, box: Box, tag: str
) -> None:
    from outlive.config import load_config
    from outlive.errors import BoxError
    from outlive.session import Session

    proj = _project(tmp_path, box, tag)
    cfg = load_config(proj)
    target = cfg.target("box")
    value = "never-shown-" + str(time.time_ns())
    try:
        Session(cfg).agent(target).call(
            "secret_put",
            {
                "name": "X",
                "value": value,
                "dir": f"{target.placement.durable}/secrets",
                "refuse_under": [target.placement.durable],
            },
        )
        raise AssertionError("a secret under the durable path was accepted")
    except BoxError as exc:
        assert "shared or durable" in str(exc)
        assert value not in str(exc)
    assert not Path(target.placement.durable, "secrets", "X").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_tunnel_forwards_a_local_port_to_a_service_on_the_box(
    tmp_path: Path, box: Box, tag: str
) -> None:
    proj = _project(tmp_path, box, tag)
    (box.workdir / "tunnel-index.html").write_text("hello through the tunnel\n")
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            f"ob-{box.name}",
            sys.executable,
            "-m",
            "http.server",
            "8765",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(box.workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    local = _free_port()
    tunnel = subprocess.Popen(
        [OUTLIVE, "tunnel", "box", f"8765:{local}"],
        cwd=proj,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def fetch() -> bytes:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{local}/tunnel-index.html", timeout=DEADLINE_S
                ) as resp:
                    return bytes(resp.read())
            except OSError:  # the tunnel or the server is not up yet
                return b""

        body = wait_until(fetch, "the page through the tunnel", interval_s=0.2)
        assert body == b"hello through the tunnel\n"
    finally:
        tunnel.terminate()
        tunnel.wait(timeout=DEADLINE_S)
        server.terminate()
        server.wait(timeout=DEADLINE_S)
