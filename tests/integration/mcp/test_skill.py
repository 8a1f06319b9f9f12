"""The agent skill's commands, every fenced bash block in order, run as written against the
real sshd testbed box (target `gpu`), like the README and guides are run in tests/unit/docs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from outlive.testing import Box

SKILL = Path(__file__).resolve().parents[3] / "skills" / "outlive" / "SKILL.md"

# A job that checkpoints with nothing but the standard library: the box's python3 is not ours.
TRAIN = """\
import json, os
ckpt = os.environ["OUTLIVE_CKPT_DIR"]
os.makedirs(ckpt, exist_ok=True)
done = sorted(f for f in os.listdir(ckpt) if f.startswith("step-"))
step = int(done[-1][5:10]) if done else 0
while step < 20:
    step += 1
    if step % 5 == 0:
        tmp = os.path.join(ckpt, ".tmp")
        with open(tmp, "w") as f:
            json.dump({"step": step}, f)
        os.replace(tmp, os.path.join(ckpt, "step-%05d.json" % step))
print("done at step", step)
"""


def bash_blocks(path: Path) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S)


def test_the_skill_has_front_matter_and_only_outlive_commands() -> None:
    text = SKILL.read_text()
    assert text.startswith("---\nname: outlive\ndescription: ")
    lines = [ln for b in bash_blocks(SKILL) for ln in b.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("outlive ") for ln in lines), lines
    loop = [ln.split()[1] for ln in lines]
    assert loop.index("up") < loop.index("run") < loop.index("watch") < loop.index("pull")
    assert loop[-1] == "down"


def test_the_skill_runs_as_written_against_the_box(tmp_path: Path, box: Box) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    tag = f"skill-{time.time_ns()}"
    target = dict(box.target, workdir=str(box.workdir / tag), durable=str(box.durable / tag))
    lines = ["[targets.gpu]"] + [f"{k} = {json.dumps(v)}" for k, v in target.items()]
    (project / "outlive.toml").write_text("\n".join(lines) + "\n")
    (project / "train.py").write_text(TRAIN)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTLIVE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["OUTLIVE_NO_DAEMON"] = "1"
    for block in bash_blocks(SKILL):
        done = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + block],
            cwd=project, env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert done.returncode == 0, f"{block}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    pulled = list((project / ".outlive" / "pulled" / "exp1").rglob("PULL_VERIFIED.json"))
    assert len(pulled) == 1
    assert (pulled[0].parent / "ckpt" / "step-00020.json").is_file()
