"""``pull`` and ``down`` on a Kubernetes target, through the real CLI: the claim is read with
``kubectl exec`` (the testbed kubelet plays it) in the run's own pod while it runs, else in a
reader pod outlive makes and deletes; the pulled files equal the claim's byte for byte, and the
gate refuses before a verified pull and passes after, printing the delete commands it never runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from k8s_helpers import wait_for
from k8s_project import ENDED, Project, train_cmd

from outlive.testing.k8s import NAMESPACE, K8sCluster

pytestmark = [pytest.mark.root, pytest.mark.slow]
HOSTILE_NAME = 'it\'s $(touch pwned) "run"'


def _tree(root: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every regular file under ROOT."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _readers(k8s: K8sCluster) -> list[str]:
    got = k8s.kubectl("get", "pods,configmaps", "-n", NAMESPACE, "-l", "outlive/reader",
                      "-o", "name")  # fmt: skip
    return got.stdout.split()


def _durable(p: Project, name: str) -> Path:
    return p.claim_workdir / ".outlive" / "durable" / name


def _pull(p: Project, *args: str) -> tuple[int, dict[str, Any], str]:
    done = p.cli("pull", *args, "--json", check=False)
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}, done.stderr


def test_a_finished_run_pulls_bit_identical_and_down_passes_only_after_the_pull(
    project: Callable[..., Project], k8s: K8sCluster
) -> None:
    p = project()
    run_id = p.run(*train_cmd(60, 0.0), name=HOSTILE_NAME)
    assert p.wait(run_id, lambda s: s["state"] in ENDED, "the end")["state"] == "succeeded"

    refused = p.cli("down", "k8s", "--confirm", "k8s", check=False)
    assert refused.returncode == 1
    assert "not covered by a verified pull" in refused.stderr
    assert "deleted reader pod outlive-reader-" in refused.stdout  # made to look, then freed

    rc, report, err = _pull(p, run_id)
    assert rc == 0, err
    assert (report["ok"], report["snapshot"], report["state"]) == (True, False, "succeeded")
    assert "deleted reader pod outlive-reader-" in err and "untouched" in err
    on_claim = _tree(_durable(p, HOSTILE_NAME))
    assert "final.npz" in on_claim
    assert _tree(Path(report["dest"]) / "ckpt") == on_claim
    assert (Path(report["dest"]) / "PULL_VERIFIED.json").is_file()
    assert not (p.dir / "pwned").exists() and not Path("/pwned").exists()

    passed = p.cli("down", "k8s", "--confirm", "k8s", "--json")
    gate = json.loads(passed.stdout)
    assert gate["allowed"] is True
    commands = [step["command"] for step in gate["plan"] if step["command"]]
    base = f"kubectl --context={k8s.name} --namespace=outlive"
    assert commands == [
        f"{base} delete jobs,configmaps,secrets -l outlive/project={p.name} "
        "--cascade=background --wait=false",
        f"{base} delete pvc outlive-ckpt  # destroys the checkpoints: only after a verified pull",
    ]
    assert p.status(run_id)["state"] == "succeeded"  # printed, never run
    assert k8s.kubectl("get", "job", "-n", NAMESPACE, f"outlive-{run_id}").returncode == 0
    wait_for("the reader pods to be gone", lambda: not _readers(k8s))


def test_a_pull_while_the_run_runs_is_a_snapshot_read_in_its_own_pod(
    project: Callable[..., Project],
) -> None:
    p = project()
    write = ("import os, pathlib, time; d = pathlib.Path(os.environ['OUTLIVE_CKPT_DIR']); "
             "d.mkdir(parents=True, exist_ok=True); (d / 'w.bin').write_bytes(os.urandom(300000)); "
             "(d / 'ready').touch(); time.sleep(300)")  # fmt: skip
    run_id = p.run(sys.executable, "-c", write, name="snap")
    ready = _durable(p, "snap") / "ready"
    p.wait(run_id, lambda s: s["state"] == "running" and ready.exists(), "the files")
    try:
        rc, report, err = _pull(p, run_id)
        assert rc == 0, err
        assert (report["ok"], report["snapshot"], report["state"]) == (True, True, "running")
        assert "snapshot" in err
        assert "reader pod" not in err  # read through the run's own pod
        assert _tree(Path(report["dest"]) / "ckpt") == _tree(_durable(p, "snap"))
        refused = p.cli("down", "k8s", "--confirm", "k8s", check=False)
        assert refused.returncode == 1 and "not ended" in refused.stderr
    finally:
        p.cli("cancel", run_id, check=False)


def test_hostile_names_arrive_intact_and_escaping_paths_are_refused(
    project: Callable[..., Project],
) -> None:
    p = project()
    names = ["sp ace", "q'uote\"d", "$(touch pwned)", "new\nline", "ünï-cødé", "-dash"]
    write = (
        "import json, os, pathlib, sys; d = pathlib.Path(os.environ['OUTLIVE_CKPT_DIR']); "
        "d.mkdir(parents=True, exist_ok=True)\n"
        "for i, n in enumerate(json.loads(sys.argv[1])):\n"
        "    (d / n).write_bytes(os.urandom(1000 + i))\n"
        "os.symlink('/etc/hostname', d / 'outside')"
    )
    run_id = p.run(sys.executable, "-c", write, json.dumps(names), name="hostile")
    assert p.wait(run_id, lambda s: s["state"] in ENDED, "the end")["state"] == "succeeded"
    for bad in ("../escape", "/etc"):
        done = p.cli("pull", run_id, "--output", bad, check=False)
        assert done.returncode == 2 and "must be relative to the workdir" in done.stderr
    rc, report, err = _pull(p, run_id)
    assert rc == 0, err
    pulled = _tree(Path(report["dest"]) / "ckpt")
    assert pulled == _tree(_durable(p, "hostile"))
    assert sorted(pulled) == sorted(names)
    assert any("outside" in item for item in report["not_pulled"])
    assert not (p.dir / "pwned").exists()
