"""A newcomer's path, as the README tells it: build the wheel, install it into a fresh virtual
environment outside this repository, and use `outlive` in a project of one's own — init, a run
of the README's `train.py`, status until it succeeds, pull and verify."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _uv() -> str:
    uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(uv).exists():
        pytest.skip("uv is not installed here (scripts/test.sh installs it)")
    return uv


def _sh(argv: list[str], cwd: Path, env: dict[str, str], timeout_s: float = 300) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, f"{argv[:3]} exited {done.returncode}:\n{done.stderr[-2000:]}"
    return done.stdout


@pytest.mark.slow
def test_a_built_wheel_installs_into_a_fresh_venv_and_runs_a_project_of_ones_own(
    tmp_path: Path,
) -> None:
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTLIVE_", "VIRTUAL_ENV"))}
    env["UV_NO_PROGRESS"] = "1"
    dist = tmp_path / "dist"
    _sh([uv, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], tmp_path, env)
    wheel = next(dist.glob("outlive-*.whl"))
    venv = tmp_path / "venv"
    _sh([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], tmp_path, env)
    _sh([uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), str(wheel)],
        tmp_path, env)  # fmt: skip
    outlive = str(venv / "bin" / "outlive")
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"

    proj = tmp_path / "my-project"
    proj.mkdir()
    subprocess.run(["git", "init", "-q", str(proj)], check=True)
    readme = (ROOT / "README.md").read_text()
    (proj / "train.py").write_text(re.findall(r"```python\n(.*?)```", readme, flags=re.S)[0])
    _sh([outlive, "init"], proj, env)
    assert (proj / "outlive.toml").is_file()
    targets = json.loads(_sh([outlive, "targets", "--json"], proj, env))
    assert [t["name"] for t in targets["targets"]] == ["local"]

    launched = json.loads(
        _sh([outlive, "run", "--name", "mine", "--json", "--", "python", "train.py"], proj, env)
    )
    deadline = time.monotonic() + 120
    state = "?"
    while time.monotonic() < deadline:
        look = json.loads(_sh([outlive, "status", "--json"], proj, env))
        state = look["runs"][0]["state"]
        if state in ("succeeded", "failed", "vanished", "cancelled"):
            break
        time.sleep(0.2)
    assert state == "succeeded", _sh([outlive, "logs", launched["run_id"]], proj, env)
    pulled = json.loads(_sh([outlive, "pull", "mine", "--json"], proj, env))
    assert pulled["ok"] is True
    _sh([outlive, "verify", pulled["dest"]], proj, env)
    # The installed package is the wheel's, not this checkout's.
    where = _sh([str(venv / "bin" / "python"), "-c", "import outlive; print(outlive.__file__)"],
                proj, env)  # fmt: skip
    assert str(venv) in where and str(ROOT) not in where
    _the_dashboard_serves_its_files_from_the_wheel(outlive, proj, env)


def _the_dashboard_serves_its_files_from_the_wheel(
    outlive: str, proj: Path, env: dict[str, str]
) -> None:
    """`outlive ui` from the wheel: the pages and the chart library are package data."""
    import urllib.request

    ui = subprocess.Popen(
        [outlive, "ui", "--json", "--no-browser"],
        cwd=proj, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert ui.stdout is not None
        url = json.loads(ui.stdout.readline())["url"]
        base, token = url.split("/?token=")
        for path in ("/", "/run/x", "/static/uPlot.iife.min.js", "/static/uPlot.LICENSE"):
            req = urllib.request.Request(base + path, headers={"Cookie": f"outlive_ui={token}"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                body = resp.read()
            assert resp.status == 200 and body, path
        assert b"MIT" in body
    finally:
        ui.terminate()
        ui.wait(timeout=30)
        if ui.stdout is not None:
            ui.stdout.close()
