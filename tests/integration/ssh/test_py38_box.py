"""The box side really runs on Python 3.8: the agent, the supervisor and the job library."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_ssh_runs import wait_for

from outlive import wire
from outlive.testing import Box

OUTLIVE = str(Path(sys.executable).with_name("outlive"))
PY38 = Path("/root/.pyenv/versions/3.8.18/bin/python3.8")


def test_agent_and_checkpointer_run_on_python_3_8(tmp_path: Path, box: Box, tag: str) -> None:
    if not PY38.exists():
        pytest.skip(f"no Python 3.8 interpreter at {PY38}")
    proj = tmp_path / "p"
    proj.mkdir()
    target = dict(
        box.target,
        workdir=str(box.workdir / f"py38-{tag}"),
        durable=str(box.durable / tag),
        python=str(PY38),
    )
    (proj / "outlive.toml").write_text(
        "[targets.box]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in target.items())
    )
    job = (
        "import sys; from outlive import Checkpointer, progress\n"
        "c = Checkpointer(); c.save({'v': sys.version_info[:2]}, step=7); c.close()\n"
        "progress(7, loss=0.5)\n"
        "print('restored', Checkpointer(handle_signals=False).load_latest().state['v'])\n"
    )
    out = subprocess.run(
        [OUTLIVE, "run", "-t", "box", "--json", "--", str(PY38), "-c", job],
        cwd=proj,
        capture_output=True,
        text=True,
        check=True,
    )
    run_id = json.loads(out.stdout)["run_id"]
    st = wait_for(proj, run_id, lambda s: s["state"] not in ("pending", "running"), "the end")
    logs = subprocess.run([OUTLIVE, "logs", run_id], cwd=proj, capture_output=True, text=True)
    assert st["state"] == "succeeded", logs.stdout
    assert logs.stdout.strip() == "restored (3, 8)"
    assert st["progress"]["step"] == 7

    # Pulled twice over ssh: the 3.8 agent hashes the checkpoints once, keeps their hashes in
    # the run dir's cache, and the second pull reads none of them again.
    time.sleep(wire.RACY_MARGIN_NS / 1e9 + 0.3)  # the checkpoint's last change settles
    docs = []
    for _ in range(2):
        pulled = subprocess.run(
            [OUTLIVE, "pull", run_id, "--json"], cwd=proj, capture_output=True, text=True
        )
        assert pulled.returncode == 0, pulled.stderr
        docs.append(json.loads(pulled.stdout))
    assert docs[0]["hashes_reused"]["box_files"] == 0 and docs[0]["files"] > 0
    assert docs[1]["hashes_reused"]["box_files"] == docs[1]["files"]
    assert docs[1]["manifest_sha256"] == docs[0]["manifest_sha256"] and docs[1]["verify"]["ok"]
