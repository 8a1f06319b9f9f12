"""Submission on the login host (the agent's launch with backend "slurm") against a stand-in
``sbatch`` that records its argv, and the config side: a Slurm profile makes a Slurm target,
driven by the local agent when no host is set."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from outlive.agent import box
from outlive.agent.box import runs as box_runs
from outlive.agent.box.common import AgentError
from outlive.backends.slurm_script import render, spec_for
from outlive.config import SlurmOptions, load_config
from outlive.session import Session

RUN_ID = "20260101-000000-abcdef"


@pytest.fixture
def fake_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `sbatch` that records its argv in sbatch.argv and prints ``sbatch.out`` (default a
    job id, as --parsable does); exit status from ``sbatch.rc``."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "sbatch"
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$@\" > {tmp_path}/sbatch.argv\n"
        f"if [ -f {tmp_path}/sbatch.out ]; then cat {tmp_path}/sbatch.out;\n"
        "else echo '4242;c1'; fi\n"
        f"[ -f {tmp_path}/sbatch.rc ] && exit $(cat {tmp_path}/sbatch.rc)\n"
        "exit 0\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.delenv("TMPDIR", raising=False)
    return tmp_path


def request(tmp_path: Path, **over: Any) -> dict[str, Any]:
    (tmp_path / "work").mkdir(exist_ok=True)
    req: dict[str, Any] = {
        "run_id": RUN_ID,
        "name": "n 'q'",
        "command": ["python3", "train.py"],
        "workdir": str(tmp_path / "work"),
        "durable": str(tmp_path / "durable"),
        "backend": "slurm",
        "sbatch_script": render(spec_for(SlurmOptions(partition="debug"), RUN_ID, "n 'q'")),
    }
    req.update(over)
    return req


def test_submission_saves_the_script_and_records_the_job(fake_sbatch: Path) -> None:
    req = request(fake_sbatch)
    reply = box_runs.verb_launch(req)
    run_dir = Path(reply["run_dir"])
    assert reply["job_id"] == "4242" and reply["pid"] is None
    script = run_dir / "job.sbatch"
    assert script.read_text() == req["sbatch_script"]
    assert stat.S_IMODE(script.stat().st_mode) == 0o555  # never edited after submission (U2)
    spec = json.loads((run_dir / "run.json").read_text())
    assert spec["backend"] == "slurm" and spec["detach"] == "sbatch"
    assert json.loads((run_dir / "slurm.json").read_text())["job_id"] == "4242"
    argv = (fake_sbatch / "sbatch.argv").read_text().splitlines()
    assert argv == [
        "--parsable",
        f"--chdir={run_dir}",
        str(script),
        sys.executable,
        str(Path(box.__file__).resolve().parent),
        str(run_dir),
    ]
    assert Path(reply["ckpt_dir"]) == fake_sbatch / "durable" / "n 'q'"


def test_a_refused_submission_leaves_no_run_dir(fake_sbatch: Path) -> None:
    (fake_sbatch / "sbatch.out").write_text("")
    (fake_sbatch / "sbatch.rc").write_text("1")
    with pytest.raises(AgentError) as err:
        box_runs.verb_launch(request(fake_sbatch))
    assert err.value.kind == "sbatch_refused"
    assert not (fake_sbatch / "work" / ".outlive" / "runs" / RUN_ID).exists()


def test_run_dirs_under_node_local_tmpdir_are_refused(
    fake_sbatch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(fake_sbatch))
    with pytest.raises(AgentError, match="SLURM5"):
        box_runs.verb_launch(request(fake_sbatch))
    assert not (fake_sbatch / "sbatch.argv").exists()


def test_without_sbatch_nothing_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AgentError) as err:
        box_runs.verb_launch(request(tmp_path))
    assert err.value.kind == "no_sbatch" and "host" in str(err.value)
    assert not (tmp_path / "work" / ".outlive").exists()


@pytest.mark.parametrize("script", [None, "echo hi\n", "#!/bin/bash\n\x00"])
def test_a_launch_without_a_proper_script_is_refused(fake_sbatch: Path, script: str | None) -> None:
    with pytest.raises(AgentError, match="client bug"):
        box_runs.verb_launch(request(fake_sbatch, sbatch_script=script))


def test_a_slurm_profile_makes_a_slurm_target_driven_locally_without_host(tmp_path: Path) -> None:
    (tmp_path / "outlive.toml").write_text(
        '[targets.hpc]\nprofile = "slurm"\nworkdir = "/shared/w"\npartition = "debug"\n'
        'gpus = "a100:1"\ntime = "04:00:00"\n\n'
        '[targets.login]\nprofile = "slurm"\nhost = "login.cluster"\n'
    )
    cfg = load_config(tmp_path)
    hpc, login = cfg.target("hpc"), cfg.target("login")
    assert hpc.kind == login.kind == "slurm" and not hpc.is_local
    assert hpc.options == SlurmOptions(partition="debug", gpus="a100:1", time="04:00:00")
    assert login.placement.workdir == f"$HOME/{tmp_path.name}"
    session = Session(cfg)
    assert session.agent(hpc).local_dir is not None  # the local sbatch, no SSH
    assert session.agent(login).local_dir is None
    assert session.backend(hpc).name == session.backend(login).name == "slurm"


def test_a_queue_file_is_one_command_per_line_as_typed(tmp_path: Path) -> None:
    from outlive.errors import UsageError
    from outlive.lifecycle.runs import read_queue_file

    queue = tmp_path / "queue.txt"
    queue.write_text("# ablation\npython train.py --lr 1e-3\n\n  python train.py --name 'a b'\n")
    assert read_queue_file(queue) == [
        ["python", "train.py", "--lr", "1e-3"],
        ["python", "train.py", "--name", "a b"],
    ]
    queue.write_text("python train.py --name 'unclosed\n")
    with pytest.raises(UsageError, match=r"queue\.txt:1"):
        read_queue_file(queue)
    queue.write_text("# nothing\n")
    with pytest.raises(UsageError, match="no command"):
        read_queue_file(queue)


def _local_slurm_backend(tmp_path: Path) -> Any:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "outlive.toml").write_text(
        f'[targets.hpc]\nprofile = "slurm"\nworkdir = "{tmp_path / "work"}"\n'
        f'durable = "{tmp_path / "durable"}"\npartition = "debug"\n'
    )
    cfg = load_config(proj)
    session = Session(cfg)
    return session, session.backend(cfg.target("hpc"))


def _launch_request(tmp_path: Path) -> Any:
    from outlive import wire

    (tmp_path / "work").mkdir(exist_ok=True)
    return wire.LaunchRequest(
        run_id=RUN_ID,
        name="n",
        command=["python3", "train.py"],
        workdir=str(tmp_path / "work"),
        durable=str(tmp_path / "durable"),
        target="hpc",
    )


def test_a_local_sbatch_is_submitted_from_this_process_with_the_bundle(
    fake_sbatch: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without host, the agent's launch runs in the client's process (no second interpreter
    before sbatch), from the project's bundle: the job step gets the bundle's agent, as before."""
    from outlive.transport.local import LocalTransport

    session, backend = _local_slurm_backend(fake_sbatch)

    def no_agent_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("the local agent was started as a process")

    monkeypatch.setattr(LocalTransport, "run", no_agent_process)
    reply = backend.launch(_launch_request(fake_sbatch))
    assert reply.job_id == "4242"
    run_dir = fake_sbatch / "work" / ".outlive" / "runs" / RUN_ID
    argv = (fake_sbatch / "sbatch.argv").read_text().splitlines()
    bundle = session.agent(session.cfg.target("hpc")).local_dir
    assert argv[3:] == [sys.executable, str(bundle / "box"), str(run_dir)]
    assert (run_dir / "job.sbatch").read_text().startswith("#!/bin/bash\n#")
    assert json.loads((run_dir / "slurm.json").read_text())["job_id"] == "4242"


def test_a_refusal_from_a_local_sbatch_reads_as_the_agents(fake_sbatch: Path) -> None:
    from outlive.errors import BoxError

    (fake_sbatch / "sbatch.out").write_text("sbatch: error: invalid partition\n")
    (fake_sbatch / "sbatch.rc").write_text("1")
    _, backend = _local_slurm_backend(fake_sbatch)
    with pytest.raises(BoxError) as err:
        backend.launch(_launch_request(fake_sbatch))
    assert err.value.kind == "sbatch_refused"
    assert str(err.value).startswith("hpc: sbatch refused the job: sbatch: error: invalid")
    assert not (fake_sbatch / "work" / ".outlive" / "runs" / RUN_ID).exists()
