"""Issue 12 item 9: bad input is one sentence on stderr, exit 2, never a traceback, through the
real ``outlive`` console script: undecodable bytes in argv or outlive.toml, env keys with ``=``
or NUL, secret names that are paths, infinite or absurd graces, ``sbatch_extra`` options that
abbreviate a reserved one, a target name with a stray space. A sweep then runs hostile names,
arguments and environment values through run / status / logs and counts the cases; and a
supervisor handed an absurd grace does not crash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from local_helpers import DEFAULT_TIMEOUT_S, OUTLIVE, Project, read_json_file, wait_for

BAD = os.fsdecode(b"bad\xffname")  # argv bytes that are not UTF-8 (surrogate-escaped by Python)


def _one_sentence(done: object, *must: str) -> str:
    err = str(getattr(done, "stderr", "")).strip()
    assert "Traceback" not in err, err
    assert err and len(err.splitlines()) == 1, f"not one line: {err!r}"
    for word in must:
        assert word in err, f"{word!r} not in {err!r}"
    return err


ARGV_CASES = {
    "run --name": ("run", "--name", BAD, "--", "true"),
    "run -t": ("run", "-t", BAD, "--", "true"),
    "run command arg": ("run", "--", "echo", BAD),
    "status ref": ("status", "--json", BAD),
    "logs ref": ("logs", BAD),
}


@pytest.mark.parametrize("argv", list(ARGV_CASES.values()), ids=list(ARGV_CASES))
def test_argv_that_is_not_utf8_is_one_sentence_exit_2(project: Project, argv: tuple[str]) -> None:
    done = project.cli(*argv, rc=2)
    _one_sentence(done, "not valid UTF-8", "\\xff")
    assert done.stdout == ""
    assert not (project.dir / ".outlive" / "runs").exists()


NUMBER_CASES = {
    "huge int": ("run", "--array", "99999999999999999999", "--", "true"),
    "huge lines": ("logs", "x", "-n", "1" + "0" * 30),
    "inf interval": ("watch", "x", "--interval-s", "inf"),
    "nan interval": ("watch", "x", "--interval-s", "nan"),
    "overflowing float": ("watch", "x", "--stall-s", "1e400"),
}


@pytest.mark.parametrize("argv", list(NUMBER_CASES.values()), ids=list(NUMBER_CASES))
def test_huge_or_infinite_numbers_on_the_command_line_are_one_sentence(
    project: Project, argv: tuple[str]
) -> None:
    _one_sentence(project.cli(*argv, rc=2), "argument")


@pytest.mark.parametrize("interval", ["-1", "0"])
def test_a_watch_interval_that_is_not_positive_is_one_sentence(
    project: Project, interval: str
) -> None:
    """A negative interval made time.sleep raise after the first look (a traceback); zero
    looked at the box without a pause."""
    run_id, go = project.start_waiting("watched")
    try:
        _one_sentence(project.cli("watch", run_id, "--interval-s", interval, rc=2), "--interval-s")
    finally:
        go.touch()
    project.wait_ended(run_id)


def test_an_outlive_toml_that_is_not_utf8_is_one_sentence(project: Project) -> None:
    (project.dir / "outlive.toml").write_bytes(b'[project]\nname = "caf\xe9"\n')
    done = project.cli("status", "--json", rc=2)
    _one_sentence(done, "outlive.toml", "not valid UTF-8")


TOML_CASES = {
    "env key with =": ('[targets.local]\nenv = {"A=B" = "1"}\n', "'A=B'"),
    "env key with NUL": ('[targets.local]\nenv = {"A\\u0000B" = "1"}\n', "NUL"),
    "env value with NUL": ('[targets.local]\nenv = {A = "x\\u0000y"}\n', "NUL"),
    "empty env key": ('[targets.local]\nenv = {"" = "1"}\n', "env"),
    "secret ../x": ('[targets.local]\nsecrets = ["../x"]\n', "'../x'"),
    "secret a/b": ('[targets.local]\nsecrets = ["a/b"]\n', "'a/b'"),
    "kill_grace_s 1e10": ("[targets.local]\nkill_grace_s = 1e10\n", "kill_grace_s"),
    "kill_grace_s inf": ("[targets.local]\nkill_grace_s = inf\n", "kill_grace_s"),
    "kill_grace_s nan": ("[targets.local]\nkill_grace_s = nan\n", "kill_grace_s"),
    "spot_grace_s -inf": ("[targets.local]\nspot_grace_s = -inf\n", "spot_grace_s"),
    "mtbf_s inf": ("[targets.local]\nmtbf_s = inf\n", "mtbf_s"),
}


@pytest.mark.parametrize("toml,word", list(TOML_CASES.values()), ids=list(TOML_CASES))
def test_a_hostile_outlive_toml_is_one_sentence_exit_2(
    make_project: Callable[..., Project], toml: str, word: str
) -> None:
    p = make_project(toml=toml)
    for argv in (("status", "--json"), ("run", "--", "true")):
        _one_sentence(p.cli(*argv, rc=2), word, "outlive.toml")
    assert not (p.dir / ".outlive" / "runs").exists()


SLURM = '[targets.c]\nprofile = "slurm"\nworkdir = "/w"\nsbatch_extra = [{}]\n'


@pytest.mark.parametrize("line", ["--outp=/tmp/x", "--no-requeu", "-Qo/tmp/x"])
def test_sbatch_extra_may_not_abbreviate_a_reserved_option(
    make_project: Callable[..., Project], line: str
) -> None:
    p = make_project(toml=SLURM.format(json.dumps(line)))
    _one_sentence(p.cli("run", "-t", "c", "--", "true", rc=2), "sbatch_extra", "outlive owns")


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden", "a b", BAD])
def test_secret_push_refuses_a_name_that_is_a_path_before_reading_the_value(
    project: Project, name: str
) -> None:
    done = project.cli("secret", "push", "local", name, "--from-env", "NOT_SET_ANYWHERE", rc=2)
    _one_sentence(done)
    assert "NOT_SET_ANYWHERE" not in done.stderr  # the name is refused first


def test_a_secret_value_over_a_mib_is_refused_before_anything_is_stored(
    project: Project, tmp_path: Path
) -> None:
    """The value was read from stdin to its end (``< /dev/zero`` never ends), then stored."""
    big = tmp_path / "big"
    big.write_bytes(b"x" * (2 << 20))
    with big.open("rb") as stdin:
        done = subprocess.run([OUTLIVE, "secret", "push", "local", "TOK"], cwd=project.dir,
                              env={**project.env, "HOME": str(tmp_path / "home")}, stdin=stdin,
                              capture_output=True, text=True,
                              timeout=DEFAULT_TIMEOUT_S)  # fmt: skip
    assert done.returncode == 2
    _one_sentence(done, "over 1 MiB")
    assert not (tmp_path / "home" / ".outlive" / "secrets" / "TOK").exists()


def test_the_agent_refuses_a_secret_name_that_is_a_path(tmp_path: Path) -> None:
    from outlive.agent.box import verbs

    for name in ("../x", "a/b", "..", "/etc/passwd"):
        reply = verbs.answer("secret_put", {"name": name, "value": "v", "dir": str(tmp_path)})
        assert reply["ok"] is False and "\n" not in reply["error"], reply
    assert list(tmp_path.iterdir()) == []


def test_a_target_name_with_a_trailing_space_is_one_sentence(
    make_project: Callable[..., Project],
) -> None:
    p = make_project(toml='[targets.box]\nhost = "example.invalid"\nworkdir = "/w"\n')
    for argv in (("run", "-t", "box ", "--", "true"), ("up", "box ")):
        err = _one_sentence(p.cli(*argv, rc=2), "unknown target 'box '", "did you mean 'box'?")
        assert "[targets.box ]" not in err


GRACE_JOB = """\
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: (print("got TERM", flush=True), sys.exit(7)))
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


@pytest.mark.parametrize("grace", [1e10, float("inf"), float("nan"), -5.0, "soon"])
def test_the_supervisor_survives_an_absurd_grace_in_the_cancel_record(
    project: Project, grace: object
) -> None:
    project.write("grace_job.py", GRACE_JOB)
    run_id = project.python("grace_job.py", name="grace")
    project.wait_running(run_id)
    run_dir = project.dir / ".outlive" / "runs" / run_id
    wait_for(lambda: "ready" in (run_dir / "stdout.log").read_text(), "the job to be ready")
    # What a cancel with that grace records; json writes inf/nan as Infinity/NaN, read back alike.
    (run_dir / "cancel.json").write_text(json.dumps({"requested_at": 0, "grace_s": grace}))
    launch = read_json_file(run_dir / "launch.json")
    os.kill(int(launch["supervisor_pid"]), signal.SIGTERM)
    st = project.wait_ended(run_id)
    exit_rec = read_json_file(run_dir / "exit.json")
    print(f"grace {grace!r}: state {st['state']}, exit {exit_rec}")
    assert exit_rec["exit_code"] == 7 and exit_rec["forwarded_signals"] == ["SIGTERM"]
    assert "Traceback" not in (run_dir / "stdout.log").read_text()


# -- the sweep ----------------------------------------------------------------------------------

HOSTILE = [
    "semi;colon",
    "$(touch PWNED)",
    "`touch PWNED`",
    "quote'\"mix",
    "new\nline",
    "..",
    "../up",
    "a/b",
    "sp ace ",
    "-dash",
    "*glob?",
    "ünï ✓",
    BAD,
]

ECHO = "import sys, os; print(repr(sys.argv[1:]), repr(os.environ.get('HOSTILE')))"


def test_hostile_sweep_through_run_status_and_logs(make_project: Callable[..., Project]) -> None:
    """Every hostile string as a run name, a job argument, an env value and the project
    directory's name: each either works literally or is one sentence with exit 2 (and nothing
    half-created); nothing is ever run by a shell."""
    cases = 0
    env_values = [h for h in HOSTILE if h != BAD]  # outlive.toml is UTF-8: BAD is its own case
    p = make_project()
    p.write("outlive.toml", f"[targets.local]\nenv = {{HOSTILE = {json.dumps(env_values[0])}}}\n")
    for h in HOSTILE:
        # As a run name.
        ok_job = (sys.executable, "-c", "print('ok')")
        done = p.cli("run", "--json", "--name", h, "--", *ok_job, rc=None)
        cases += 1
        if done.returncode == 0:
            run_id = json.loads(done.stdout)["run_id"]
            st = p.wait_ended(run_id)
            assert st["state"] == "succeeded" and st["name"] == h, st
            by_name = p.cli("status", "--json", h, rc=0)
            assert [r["run_id"] for r in json.loads(by_name.stdout)["runs"]] == [run_id]
            assert p.cli("logs", h, rc=0).stdout == "ok\n"
            cases += 2
        else:
            assert done.returncode == 2, done
            _one_sentence(done)
            for argv in (("status", "--json", h), ("logs", h)):
                _one_sentence(p.cli(*argv, rc=2))
                cases += 1
        # As a job argument.
        done = p.cli("run", "--json", "--", sys.executable, "-c", ECHO, h, rc=None)
        cases += 1
        if h == BAD:
            assert done.returncode == 2
            _one_sentence(done, "not valid UTF-8")
            continue
        assert done.returncode == 0, done
        run_id = json.loads(done.stdout)["run_id"]
        assert p.wait_ended(run_id)["state"] == "succeeded"
        assert p.cli("logs", run_id).stdout == f"{[h]!r} {env_values[0]!r}\n"
        cases += 1
    # As an env value (each through outlive.toml), including newlines and quotes.
    for value in env_values[1:]:
        p.write("outlive.toml", f"[targets.local]\nenv = {{HOSTILE = {json.dumps(value)}}}\n")
        run_id = p.run(sys.executable, "-c", ECHO)
        assert p.wait_ended(run_id)["state"] == "succeeded"
        assert p.cli("logs", run_id).stdout == f"[] {value!r}\n"
        cases += 1
    assert not (p.dir / "PWNED").exists(), "a hostile string was run by a shell"
    # As the project directory's name (a path every record and the registry carry).
    for h in HOSTILE:
        if "/" in h or h in (".", ".."):
            continue
        q = make_project(dirname="dir-" + h)
        done = q.cli("run", "--json", "--name", "n", "--", *ok_job, rc=None)
        cases += 1
        if h == BAD:
            assert done.returncode == 2
            _one_sentence(done, "not valid UTF-8")
            for argv in (("status", "--json"), ("logs", "n")):
                _one_sentence(q.cli(*argv, rc=2), "not valid UTF-8")
                cases += 1
            assert not (q.dir / ".outlive" / "runs").exists(), "a run was half-created"
            continue
        assert done.returncode == 0, done
        run_id = json.loads(done.stdout)["run_id"]
        assert q.wait_ended(run_id)["state"] == "succeeded"
        runs = json.loads(q.cli("status", "--json").stdout)["runs"]
        assert [r["run_id"] for r in runs] == [run_id]
        assert q.cli("logs", "n").stdout == "ok\n"
        cases += 2
        assert not (q.dir / "PWNED").exists() and not (p.dir / "PWNED").exists()
    print(f"hostile sweep: {cases} cases")
    assert cases >= 5 * len(HOSTILE), f"hostile sweep ran {cases} cases"


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "more than 16 MiB"), (b"python \xff\xfe x.py\n", "not UTF-8")],
    ids=["dev-zero", "not-utf8"],
)
def test_a_queue_file_that_never_ends_or_is_not_text_is_one_sentence(
    project: Project, content: bytes | None, says: str
) -> None:
    """A queue of /dev/zero filled memory; one that is not UTF-8 was a traceback."""
    queue = "/dev/zero"
    if content is not None:
        (project.dir / "queue.txt").write_bytes(content)
        queue = "queue.txt"
    _one_sentence(project.cli("run", "--queue", queue, rc=2), says)
    assert not (project.dir / ".outlive" / "runs").exists()
