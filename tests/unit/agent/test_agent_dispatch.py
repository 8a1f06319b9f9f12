"""The box-side dispatch table: a run's run.json names its backend, and probe, cancel, tail and
supervise go where it says. Runs written by the previous agent (no ``backend`` key) still route;
a run naming a backend this agent does not know is an error for that run only."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from outlive import wire
from outlive.agent import box
from outlive.agent.box import backends, process_launch, runs, verbs
from outlive.agent.box.common import AgentError
from outlive.agent.box.supervisor import Supervisor

BOX = Path(box.__file__).parent


def _run_dir(root: Path, name: str, spec: dict[str, object], exit_code: int | None = 0) -> str:
    """A finished run's records as an agent wrote them (``spec`` is its run.json)."""
    d = root / name
    d.mkdir()
    base = {"run_id": name, "name": name, "command": ["x"], "ckpt_dir": "/ck"}
    (d / "run.json").write_text(json.dumps({**base, **spec}))
    (d / "launch.json").write_text(json.dumps({"pid": None, "started_at": 1.0, "boot_id": "b"}))
    if exit_code is not None:
        (d / "exit.json").write_text(json.dumps({"exit_code": exit_code, "ended_at": 2.0}))
    (d / "stdout.log").write_bytes(b"one\ntwo\n")
    return str(d)


def test_the_tables_name_the_verbs_and_backends_of_the_wire_module() -> None:
    assert tuple(verbs.VERBS) == wire.VERBS
    assert set(backends.TABLE) == set(wire.BACKENDS)
    for key in wire.BACKENDS:
        entry = backends.entry(key)
        for fn in ("launch", "probe", "cancel", "ended", "supervisor"):
            assert callable(getattr(entry, fn)), (key, fn)


@pytest.mark.parametrize(
    ("spec", "backend"),
    [
        ({}, "setsid"),  # the oldest runs: neither key
        ({"detach": "setsid"}, "setsid"),
        ({"detach": "tmux"}, "tmux"),  # the previous agent's tmux run
        ({"backend": "slurm", "detach": "sbatch"}, "slurm"),  # the previous agent's Slurm run
        ({"backend": "tmux", "detach": "tmux"}, "tmux"),  # this agent's
    ],
)
def test_the_backend_of_a_run_comes_from_its_run_json(spec: dict[str, str], backend: str) -> None:
    assert backends.backend_of(spec) == backend


def test_an_old_style_run_json_is_probed_cancelled_and_tailed_as_a_process_run(
    tmp_path: Path,
) -> None:
    old = _run_dir(tmp_path, "old", {"detach": "setsid"})
    older = _run_dir(tmp_path, "older", {}, exit_code=3)
    got = runs.verb_probe({"run_dirs": [old, older]})["runs"]
    assert [st["state"] for st in got] == ["succeeded", "failed"]
    assert got[1]["exit_code"] == 3 and "error" not in got[1]
    assert runs.verb_cancel({"run_dir": old})["note"] == "the run is not running"
    tail = runs.verb_tail({"run_dir": older, "lines": 1})
    assert tail["ended"] is True and base64.b64decode(tail["data_b64"]) == b"two\n"


def test_an_old_style_tmux_run_gets_the_tmux_supervisor(tmp_path: Path) -> None:
    tmux = _run_dir(tmp_path, "t", {"detach": "tmux"})
    plain = _run_dir(tmp_path, "p", {})
    assert type(backends.supervisor_for(tmux, [])) is process_launch.TmuxSupervisor
    assert type(backends.supervisor_for(plain, [])) is Supervisor


def test_an_unknown_backend_is_an_error_for_that_run_not_for_the_probe(tmp_path: Path) -> None:
    alien = _run_dir(tmp_path, "alien", {"backend": "kubernetes"}, exit_code=None)
    fine = _run_dir(tmp_path, "fine", {"backend": "setsid"})
    got = runs.verb_probe({"run_dirs": [alien, fine]})["runs"]
    assert got[0]["state"] == "unknown" and got[0]["run_dir"] == alien
    assert "'kubernetes'" in got[0]["error"] and "setsid" in got[0]["error"]
    assert got[1]["state"] == "succeeded"
    with pytest.raises(AgentError, match="unknown backend 'kubernetes'"):
        runs.verb_cancel({"run_dir": alien})
    tail = runs.verb_tail({"run_dir": alien, "offset": 0})
    assert tail["ended"] is False and base64.b64decode(tail["data_b64"]) == b"one\ntwo\n"


def test_an_unknown_backend_in_a_launch_request_creates_nothing(tmp_path: Path) -> None:
    req = {"run_id": "r-1", "name": "n", "command": ["true"], "workdir": str(tmp_path)}
    with pytest.raises(AgentError, match="unknown backend 'pbs'"):
        runs.verb_launch({**req, "backend": "pbs"})
    assert list(tmp_path.iterdir()) == []


def _launch(workdir: Path, **over: object) -> dict[str, object]:
    req = {"run_id": "r-" + str(len(over)), "name": "n", "command": ["true"]}
    req.update(workdir=str(workdir), created_at=time.time(), **over)
    done = subprocess.run(
        [sys.executable, str(BOX), "launch"],
        input=json.dumps(req),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    reply: dict[str, object] = json.loads(done.stdout)
    assert reply["ok"] is True, reply
    return reply["result"]  # type: ignore[return-value]


@pytest.mark.parametrize(
    "shape",
    [{"detach": "setsid"}, {"backend": "setsid"}, {}],
    ids=["current-client-detach", "backend", "neither"],
)
def test_launch_accepts_both_request_shapes_and_records_the_backend(
    tmp_path: Path, shape: dict[str, str]
) -> None:
    result = _launch(tmp_path, **shape)
    spec = json.loads((Path(str(result["run_dir"])) / "run.json").read_text())
    assert spec["backend"] == "setsid"
    assert runs.probe_one(str(result["run_dir"]), None, time.time())["state"] in (
        "running",
        "succeeded",
    )


def test_supervising_a_run_of_an_unknown_backend_says_so_and_starts_nothing(
    tmp_path: Path,
) -> None:
    alien = _run_dir(tmp_path, "alien", {"backend": "kubernetes"}, exit_code=None)
    done = subprocess.run(
        [sys.executable, str(BOX), "supervise", alien],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "unknown backend 'kubernetes'" in done.stderr
    assert not (Path(alien) / "exit.json").exists()
