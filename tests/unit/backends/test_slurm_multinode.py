"""The multi-node environment contract, run for real minus Slurm: the rendered batch script under
bash with stand-ins for ``scontrol``/``srun``/``torchrun`` that behave as on a 2-node allocation
(srun starts the agent's supervisor once per node with its SLURM_NODEID). Every node must get the
same rendezvous, the allocation's first host, and torchrun the job's command unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from outlive.agent import box
from outlive.backends.slurm_script import render, spec_for
from outlive.config import SlurmOptions

JOB_ID = 4711
PORT = 20000 + JOB_ID % 20000

SHIMS = {
    "scontrol": '[ "$1 $2" = "show hostnames" ] && printf "node1\\nnode2\\n"\n',
    # srun: record argv and the rendezvous environment, then run the command once per node.
    "srun": (
        'echo "$@" > "$T/srun.argv"\n'
        'env | grep -E "^(MASTER_|OUTLIVE_NNODES|OUTLIVE_RDZV)" | sort > "$T/srun.env"\n'
        'while [ $# -gt 0 ]; do case "$1" in --*) shift ;; *) break ;; esac; done\n'
        'SLURM_NODEID=0 "$@" & a=$!\n'
        'SLURM_NODEID=1 "$@" & b=$!\n'
        "wait $a; ra=$?; wait $b; rb=$?\n"
        "[ $ra -ne 0 ] && exit $ra; exit $rb\n"
    ),
    # torchrun: record how it was called, then run what follows --no-python, as torchrun does.
    "torchrun": (
        'echo "$SLURM_NODEID $*" >> "$T/torchrun.calls"\n'
        'while [ "$1" != "--no-python" ]; do shift; done; shift\n'
        'exec "$@"\n'
    ),
}

JOB = (
    "import os; e = os.environ; "
    "print('rank-of-node', e['SLURM_NODEID'], e['MASTER_ADDR'], e['MASTER_PORT'], "
    "e['OUTLIVE_RDZV_ENDPOINT'], e['OUTLIVE_CKPT_DIR'])"
)


def test_every_node_gets_the_first_hosts_rendezvous_and_torchrun_runs_the_job(
    tmp_path: Path,
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name, body in SHIMS.items():
        (bindir / name).write_text("#!/bin/sh\n" + body)
        (bindir / name).chmod(0o755)
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    spec = {
        "run_id": "r1",
        "name": "ddp",
        "command": [sys.executable, "-c", JOB],
        "workdir": str(tmp_path),
        "ckpt_dir": str(tmp_path / "durable" / "ddp"),
        "backend": "slurm",
        "env": {},
    }
    (run_dir / "run.json").write_text(json.dumps(spec))
    script = run_dir / "job.sbatch"
    script.write_text(render(spec_for(SlurmOptions(nodes=2, gpus="a100:4", cpus=16), "r1", "ddp")))
    env = dict(
        os.environ,
        PATH=f"{bindir}:{os.environ['PATH']}",
        T=str(tmp_path),
        SLURM_JOB_ID=str(JOB_ID),
        SLURM_JOB_NODELIST="node[1-2]",
        SLURM_JOB_NUM_NODES="2",
        SLURM_CPUS_PER_TASK="16",
    )
    agent = str(Path(box.__file__).resolve().parent)
    done = subprocess.run(
        ["bash", str(script), sys.executable, agent, str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=run_dir,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    srun = (tmp_path / "srun.argv").read_text().split()
    assert srun[:4] == [
        "--nodes=2",
        "--ntasks-per-node=1",
        "--cpus-per-task=16",
        "--gres=gpu:a100:4",
    ]
    assert srun[4:] == [
        sys.executable, "-S", agent, "supervise", str(run_dir),
        "torchrun", "--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=node1:{PORT}", f"--rdzv-id={JOB_ID}", "--no-python",
    ]  # fmt: skip
    assert (tmp_path / "srun.env").read_text().splitlines() == [
        "MASTER_ADDR=node1",
        f"MASTER_PORT={PORT}",
        "OUTLIVE_NNODES=2",
        f"OUTLIVE_RDZV_ENDPOINT=node1:{PORT}",
    ]
    calls = sorted((tmp_path / "torchrun.calls").read_text().splitlines())
    assert [c.split()[0] for c in calls] == ["0", "1"]
    assert all(c.endswith(f"--no-python {sys.executable} -c {JOB}") for c in calls)

    # Node 0 keeps the run's own records; node 1 its own under nodes/1/; both see one rendezvous.
    for rank, d in ((0, run_dir), (1, run_dir / "nodes" / "1")):
        out = (d / "stdout.log").read_text()
        assert f"rank-of-node {rank} node1 {PORT} node1:{PORT} {spec['ckpt_dir']}\n" in out
        assert json.loads((d / "exit.json").read_text())["exit_code"] == 0
        assert json.loads((d / "launch.json").read_text())["node_rank"] == rank
    assert not (run_dir / "nodes" / "0").exists()
