"""An outlive.toml a newcomer's editor or a hostile hand wrote: nesting deep enough to exhaust the
parser's recursion is one sentence, exit 2, directly and through the daemon (whose ``run`` once
answered "the launch may or may not have started" for it); a UTF-8 byte-order mark is read."""

from __future__ import annotations

import json
from collections.abc import Callable

from local_helpers import Project, wait_for

DEEP = "a = " + "[" * 5000 + "]" * 5000 + "\n"


def _one_sentence(err: str, *must: str) -> None:
    assert "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, f"not one line: {err!r}"
    for word in must:
        assert word in err, f"{word!r} not in {err!r}"


def _daemons(p: Project) -> list[object]:
    return list(json.loads(p.cli("daemon", "status", "--json").stdout)["daemons"])


def test_a_config_nested_too_deeply_is_one_sentence_directly_and_through_the_daemon(
    make_project: Callable[..., Project],
) -> None:
    p = make_project()
    p.cli("status", "--json")  # starts the daemon
    wait_for(lambda: _daemons(p), "the daemon to start")
    p.write("outlive.toml", DEEP)
    for argv in (("run", "--", "true"), ("status", "--json"), ("targets", "--json")):
        done = p.cli(*argv, rc=2)
        _one_sentence(done.stderr, "outlive.toml", "too deeply")
        assert done.stdout == ""
    assert not (p.dir / ".outlive" / "runs").exists() or not list(
        (p.dir / ".outlive" / "runs").iterdir()
    )
    p.env["OUTLIVE_NO_DAEMON"] = "1"
    _one_sentence(p.cli("run", "--", "true", rc=2).stderr, "too deeply")


def test_a_config_saved_with_a_byte_order_mark_is_read(
    make_project: Callable[..., Project],
) -> None:
    p = make_project()
    (p.dir / "outlive.toml").write_bytes(b'\xef\xbb\xbf[targets.box]\nhost = "box1"\n')
    names = [t["name"] for t in json.loads(p.cli("targets", "--json").stdout)["targets"]]
    assert names == ["local", "box"]


def test_a_profile_or_sweep_file_nested_too_deeply_is_one_sentence(
    make_project: Callable[..., Project],
) -> None:
    p = make_project(
        toml='[project]\nprofile_dirs = ["profs"]\n[targets.box]\nhost = "h"\nprofile = "mine"\n'
    )
    (p.dir / "profs").mkdir()
    p.write("profs/mine.toml", DEEP)
    done = p.cli("targets", "--json", rc=2)
    _one_sentence(done.stderr, "mine.toml", "too deeply")
    p.write("outlive.toml", "")
    p.write("sweep.toml", 'name = "s"\ncommand = ["true"]\n' + DEEP)
    done = p.cli("sweep", "sweep.toml", "--json", rc=2)
    _one_sentence(done.stderr, "sweep.toml", "too deeply")
