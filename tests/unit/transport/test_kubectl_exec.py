"""The ``kubectl exec`` transport against a kubectl that plays exec's contract on this machine
(everything after ``--`` runs as one argv, stdin and stdout passed through): arguments and rsync
paths with quotes, ``$()``, spaces and newlines arrive as one literal each."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from outlive.backends.k8s_api import Kubectl
from outlive.transport.files import RsyncOptions
from outlive.transport.kubectl import KubectlExecTransport

# Checks the flags outlive gives, then runs what follows `--` as a pod would: no shell between.
FAKE_KUBECTL = """#!/bin/sh
[ "$1" = --context=ctx ] && [ "$2" = --namespace=ns ] && [ "$3" = exec ] || exit 64
while [ "$1" != "--" ]; do printf '%s\\n' "$1" >> "$KUBECTL_SEEN"; shift; done
shift
exec "$@"
"""


@pytest.fixture
def transport(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KubectlExecTransport:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("KUBECTL_SEEN", str(tmp_path / "seen"))
    return KubectlExecTransport("k8s", Kubectl("ctx", "ns").argv, lambda: ("pod-1", "reader"))


def test_run_passes_each_argument_and_stdin_literally(
    transport: KubectlExecTransport, tmp_path: Path
) -> None:
    hostile = 'it\'s $(touch pwned) "a b"\nline'
    done = transport.run(["sh", "-c", 'printf %s "$1"; cat', "sh", hostile], stdin=b"\0in")
    assert (done.returncode, done.stdout) == (0, hostile.encode() + b"\0in")
    assert (tmp_path / "seen").read_text().split("\n")[-4:-1] == ["-c", "reader", "pod-1"]
    assert not (tmp_path / "pwned").exists()


def test_rsync_over_exec_moves_hostile_names_bit_identical(
    transport: KubectlExecTransport, tmp_path: Path
) -> None:
    src = tmp_path / "pod side" / "it's $(touch pwned)"
    src.mkdir(parents=True)
    payload = {"a\nb": os.urandom(70000), "-dash": b"x", "q'\"uote": os.urandom(3)}
    for name, data in payload.items():
        (src / name).write_bytes(data)
    here = tmp_path / "here side"
    argv = transport.rsync_argv("from_target", f"{here}/", f"{src}/", RsyncOptions(make_dest=True))
    done = subprocess.run(argv, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert {p.name: p.read_bytes() for p in here.iterdir()} == payload
    assert not (tmp_path / "pwned").exists()
