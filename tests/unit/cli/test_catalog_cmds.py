"""`explain`, `gotcha` and `profiles` through the real CLI: the JSON contract and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

OUTLIVE = str(Path(sys.executable).with_name("outlive"))

TORCH_DISK_FULL = """\
Epoch 3:  41%|████      | 410/1000 [02:11<03:09,  3.11it/s, loss=0.412]\r
Traceback (most recent call last):
  File "train.py", line 88, in <module>
    torch.save(state, "ckpt/latest.pt")
  File "/usr/lib/python3/dist-packages/torch/serialization.py", line 651, in save
    with _open_zipfile_writer(f) as opened_zipfile:
RuntimeError: [enforce fail at inline_container.cc:603] . unexpected pos 1024 vs 998
terminate called after throwing an instance of 'std::ios_base::failure'
  what():  basic_ios::clear: iostream error
"""


def _cli(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [OUTLIVE, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_explain_file_json_reports_u6_first_with_its_line(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("\x1b[32mINFO\x1b[0m starting\n" + TORCH_DISK_FULL)
    out = _cli("explain", str(log), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    matches = json.loads(out.stdout)["matches"]
    assert matches[0]["id"] == "U6"
    assert {"id", "line", "text", "title"} <= set(matches[0])
    assert matches[0]["line"] == 8


def test_explain_shows_the_logs_own_line_as_text_never_markup_or_escapes(tmp_path: Path) -> None:
    """The matched line is the log's: "[enforce fail at ...]" is shown (rich took it for a tag
    and dropped it), "[/INST]" (an LLM's chat template) no longer stops explain with a traceback,
    and a control character the matcher keeps (a C1 CSI, a bidi override) is shown escaped."""
    log = tmp_path / "train.log"
    hostile = TORCH_DISK_FULL.replace("vs 998", "vs 998 [/INST] \x9b2J\u202e")
    log.write_text(hostile, encoding="utf-8")
    out = _cli("explain", str(log), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "[enforce fail at inline_container.cc:603]" in out.stdout
    assert "[/INST] \\x9b2J\\u202e" in out.stdout
    assert "\x9b" not in out.stdout and "\u202e" not in out.stdout


def test_explain_stdin_names_crlf_scripts(tmp_path: Path) -> None:
    out = _cli(
        "explain",
        "-",
        "--json",
        cwd=tmp_path,
        stdin="./run.sh: line 3: $'\\r': command not found\n",
    )
    ids = [m["id"] for m in json.loads(out.stdout)["matches"]]
    assert ids[:2] == ["U26", "GEN4"]


def test_explain_of_a_device_or_a_directory_is_one_sentence_and_never_reads(
    tmp_path: Path,
) -> None:
    """/dev/zero never ends: it is not read but named for what it is (it was looked up as a
    run: "no run '/dev/zero' in this project")."""
    (tmp_path / "outlive.toml").write_text("[project]\nname = 'x'\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    for source, kind in [
        ("/dev/zero", "a character device"),
        ("logs", "a directory"),
        ("dangling", "a link to nothing"),
    ]:
        out = _cli("explain", source, cwd=tmp_path)
        assert out.returncode == 2, (source, out.stderr)
        assert out.stderr.count("\n") == 1 and f"{source} is {kind}, not a log file" in out.stderr


def test_explain_reads_a_pipe_something_writes_and_never_waits_on_one_nothing_writes(
    tmp_path: Path,
) -> None:
    """`outlive explain <(zcat train.log.gz)` reads the pipe to its end; a named pipe that
    nothing writes to is one sentence after a bounded wait, not a wait forever."""
    from outlive.cli.catalog_cmds import _opened_pipe
    from outlive.errors import UsageError

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", 'cat "$1" > "$2"', "sh", "-", str(fifo)],
                              stdin=subprocess.PIPE)  # fmt: skip
    assert writer.stdin is not None
    with writer.stdin:
        writer.stdin.write(TORCH_DISK_FULL.encode())  # waits in the pipe for cat
    out = _cli("explain", str(fifo), "--json", cwd=tmp_path)
    assert writer.wait(timeout=60) == 0
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["matches"][0]["id"] == "U6"
    with pytest.raises(UsageError, match="nothing came from the pipe"):
        _opened_pipe(str(fifo), wait_s=0.2)


def test_explain_of_an_unknown_run_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "outlive.toml").write_text("[project]\nname = 'x'\n")
    out = _cli("explain", "no-such-run", cwd=tmp_path)
    assert out.returncode == 2
    assert "no-such-run" in out.stderr and out.stderr.count("\n") == 1


def test_gotcha_lookup_search_and_bad_id(tmp_path: Path) -> None:
    one = json.loads(_cli("gotcha", "u6", "--json", cwd=tmp_path).stdout)["gotchas"]
    assert [g["id"] for g in one] == ["U6"]
    found = json.loads(_cli("gotcha", "--search", "inode", "--json", cwd=tmp_path).stdout)
    assert "U7" in [g["id"] for g in found["gotchas"]]
    every = json.loads(_cli("gotcha", "--json", cwd=tmp_path).stdout)["gotchas"]
    from outlive.gotchas.catalog import CATALOG

    assert [g["id"] for g in every] == [g.id for g in CATALOG]
    bad = _cli("gotcha", "NOPE", cwd=tmp_path)
    assert bad.returncode == 2 and "NOPE" in bad.stderr


def test_profiles_json_lists_every_profile_and_one_in_full(tmp_path: Path) -> None:
    names = [
        p["name"] for p in json.loads(_cli("profiles", "--json", cwd=tmp_path).stdout)["profiles"]
    ]
    assert {
        "local",
        "generic-ssh",
        "runpod",
        "paperspace-core",
        "paperspace-notebook",
        "slurm",
        "kubernetes",
        "colab",
        "kaggle",
    } <= set(names)
    runpod = json.loads(_cli("profiles", "runpod", "--json", cwd=tmp_path).stdout)
    assert runpod["spot_grace_s"] == 5.0
    human = _cli("profiles", "runpod", cwd=tmp_path).stdout
    assert human.index("Danger clocks") < human.index("Survival matrix") < human.index("Teardown")
    assert _cli("profiles", "nope", cwd=tmp_path).returncode == 2
