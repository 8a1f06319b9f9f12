"""The bundle as it lands on a box: the ``box/`` package, ``outlive/wire.py`` and the job library,
run the two ways a box runs it (the client's BOOT with ``-S``, and ``python -S <bundle>/box``
from the Slurm batch step and tmux), with a probe that loads only the modules it needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from outlive.agent import bundle
from outlive.agent.client import BOOT


def _materialized(tmp_path: Path) -> Path:
    root = bundle.materialize(tmp_path / "lib")
    assert root.name == bundle.bundle_hash()
    return root


def test_the_bundle_ships_the_agent_package_wire_and_the_job_library() -> None:
    names = {rel for rel, _ in bundle.bundle_files()}
    agent = {p.name for p in (Path(bundle.__file__).parent / "box").glob("*.py")}
    assert {f"box/{n}" for n in agent} <= names
    assert {"outlive/wire.py", "outlive/__init__.py", "outlive/ckpt/core.py"} <= names
    assert not any(n.startswith("outlive/agent") for n in names)


def test_boot_runs_the_materialized_bundle_without_site_packages(tmp_path: Path) -> None:
    root = _materialized(tmp_path)
    probe = (
        BOOT.replace("sys.exit(main(sys.argv))", "")
        + "rc = main(sys.argv); sys.stdout.flush(); "
        + "sys.stderr.write(json.dumps(sorted(m for m in sys.modules if m.startswith('box'))))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", "import json; " + probe, str(root), "probe"],
        input=json.dumps({"run_dirs": [str(tmp_path / "none")]}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    reply = json.loads(done.stdout)
    assert reply["ok"] is True and reply["result"]["runs"][0]["state"] == "unknown"
    loaded = set(json.loads(done.stderr))
    assert {"box.main", "box.runs", "box.backends"} <= loaded
    # The probe path never pays for the audit, manifest, Slurm or launch code.
    assert not loaded & {"box.audit", "box.gpu_facts", "box.manifests", "box.slurm", "box.deploy"}


def test_the_package_directory_runs_as_the_agent_for_the_batch_step(tmp_path: Path) -> None:
    root = _materialized(tmp_path)
    done = subprocess.run(
        [sys.executable, "-S", str(root / "box"), "expand"],
        input=json.dumps({"paths": ["/a/../b"]}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    assert json.loads(done.stdout)["result"] == {"paths": ["/b"]}
