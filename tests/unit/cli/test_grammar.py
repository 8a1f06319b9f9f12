"""The command-line grammar: every contract command is defined once, with its options; help and
usage errors follow the contract (help exit 0; a usage error is one sentence and exit 2); `run`
leaves the command after `--` alone; the status path stays light."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from outlive.cli import main
from outlive.cli.grammar import COMMANDS, RunArgs, SmokeArgs, StatusArgs, UpArgs, find
from outlive.cli.parser import Help, Invocation, parse
from outlive.errors import UsageError

OUTLIVE = str(Path(sys.executable).with_name("outlive"))

# DESIGN.md's CLI contract table, the commands that exist today, with every option they take
# (the typer commands' option sets, carried over unchanged).
CONTRACT = {
    "demo": {"--steps", "--keep", "--no-keep"},
    "init": {"--force", "--no-force", "--profile"},
    "targets": {"--json"},
    "profiles": {"--json"},
    "up": {"--json", "--torch", "--no-torch"},
    "push": {"--json"},
    "smoke": {"--timeout-s", "--json"},
    "run": {"-t", "--target", "--name", "--detach-with", "--array", "--queue", "--throttle",
            "--after", "--json"},
    "status": {"--json", "--discover"},
    "ls": {"--json"},
    "logs": {"-f", "--follow", "--follow-name", "-n", "--lines"},
    "watch": {"--interval-s", "--stall-s"},
    "cancel": {"--json"},
    "pull": {"--to", "--output", "--retries", "--stall-timeout-s", "--attempt-timeout-s",
             "--bwlimit-kbps", "--compress", "--parallel", "--follow-links", "--json",
             "-t", "--target", "--require-load-check", "--rehash"},
    "verify": {"--json", "--require-load-check"},
    "down": {"--confirm", "--abandon-results", "--confirm-abandon", "--json",
             "--require-load-check", "--execute"},
    "cloud ls": {"--json"},
    "cloud audit": {"--json"},
    "explain": {"--json"},
    "gotcha": {"--search", "--json"},
    "doctor": {"--json"},
    "secret push": {"--from-env", "--json"},
    "tunnel": set(),
    "daemon status": {"--json"},
    "daemon stop": {"--json"},
}  # fmt: skip


def _options(name: str) -> set[str]:
    from outlive.cli.parser import build

    cmd = find(name)
    assert cmd is not None, name
    return {s for a in build(cmd)._actions for s in a.option_strings} - {"-h", "--help"}


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_every_contract_command_is_defined_with_its_options(name: str) -> None:
    assert _options(name) == CONTRACT[name]


def test_every_handler_imports_and_takes_its_arguments_class() -> None:
    import inspect

    for cmd in COMMANDS:
        fn = cmd.load()
        (param,) = inspect.signature(fn).parameters.values()
        assert param.annotation == cmd.args.__name__, cmd.name


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["outlive", *argv]
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return int(exit_.value.code or 0), out.out, out.err


@pytest.mark.parametrize("name", [c.name for c in COMMANDS])
def test_help_of_every_command_exits_0(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _main([*name.split(), "--help"], capsys)
    assert (code, err) == (0, "")
    assert out.startswith(f"usage: outlive {name}")
    for option in CONTRACT.get(name, set()):
        assert option in out


@pytest.mark.parametrize("argv", [["--help"], ["-h"], ["secret", "--help"], ["daemon", "-h"]])
def test_top_level_and_group_help_exit_0(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _main(argv, capsys)
    assert code == 0 and out.startswith("usage: outlive")


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _main(["--help"], capsys)
    for cmd in COMMANDS:
        assert f"  {cmd.name} " in out


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "--bogus"],
        ["run", "--bogus", "--", "true"],
        ["logs"],
        ["logs", "-n", "many", "r1"],
        ["nope"],
        ["secret", "pull"],
        ["pull", "r1", "--out", "x"],  # no abbreviations: --out is not --output
        [],
    ],
)
def test_a_usage_error_is_one_sentence_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _main(argv, capsys)
    assert code == 2
    if argv:  # no command at all prints the help (on stdout) and exits 2
        assert err.startswith("outlive: ") and err.count("\n") == 1 and "--help`" in err


def test_unknown_option_from_the_installed_script(tmp_path: Path) -> None:
    out = subprocess.run(
        [OUTLIVE, "run", "--frobnicate", "--", "true"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == (
        "outlive: unrecognized arguments: --frobnicate (see `outlive run --help`)\n"
    )


def _args(argv: list[str]) -> object:
    parsed = parse(argv)
    assert isinstance(parsed, Invocation)
    return parsed.args


def test_run_takes_everything_after_the_double_dash_unparsed() -> None:
    args = _args(["run", "-t", "box", "--name", "n", "--", "python", "t.py", "--json", "-t", "x"])
    assert args == RunArgs(
        command=["python", "t.py", "--json", "-t", "x"], target="box", name="n", as_json=False
    )
    args = _args(["run", "--json", "--after", "a", "--after", "b", "--", "--help", "--", "-h"])
    assert isinstance(args, RunArgs)
    assert args.command == ["--help", "--", "-h"] and args.as_json and args.after == ["a", "b"]


def test_run_defaults_and_types() -> None:
    assert _args(["run", "--", "true"]) == RunArgs(command=["true"])
    args = _args(["run", "--array", "3", "--throttle", "2", "--queue", "q.txt"])
    assert isinstance(args, RunArgs)
    assert (args.array, args.throttle, args.queue, args.command) == (3, 2, "q.txt", [])


def test_smoke_takes_the_command_after_the_double_dash() -> None:
    args = _args(["smoke", "--timeout-s", "5", "--", "python", "-c", "pass", "--json"])
    assert args == SmokeArgs(command=["python", "-c", "pass", "--json"], timeout_s=5.0)


def test_status_and_negatable_flags() -> None:
    assert _args(["status", "a", "b", "--json"]) == StatusArgs(runs=["a", "b"], as_json=True)
    assert _args(["status"]) == StatusArgs()
    with pytest.raises(AttributeError):
        StatusArgs().as_json = True  # parsed arguments are read-only
    assert _args(["up", "box"]) == UpArgs(target="box", torch=True)
    assert _args(["up", "box", "--no-torch"]) == UpArgs(target="box", torch=False)


def test_help_after_the_double_dash_belongs_to_the_command() -> None:
    assert isinstance(parse(["run", "--help", "--", "x"]), Help)
    assert isinstance(parse(["run", "--", "x", "--help"]), Invocation)


def test_parse_raises_usage_error_instead_of_exiting() -> None:
    with pytest.raises(UsageError, match="unrecognized arguments: --x"):
        parse(["status", "--x"])


def test_the_status_path_imports_no_typer_pydantic_rich_mcp_or_the_ui(tmp_path: Path) -> None:
    (tmp_path / "outlive.toml").write_text("[project]\nname = 'p'\n")
    env = dict(os.environ, OUTLIVE_NO_DAEMON="1")
    # the first look validates the config (pydantic) and caches it; later looks do not
    subprocess.run([OUTLIVE, "status", "--json"], cwd=tmp_path, env=env, check=True)
    code = (
        "import sys; sys.argv = ['outlive', 'status', '--json']\n"
        "from outlive.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('typer', 'click', 'pydantic', 'rich', 'mcp', 'outlive.ui',"
        " 'http.server') if m in sys.modules]\n"
        "sys.stderr.write(repr(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == '{"runs": []}\n'
    assert out.stderr == "[]"


def test_only_the_ui_command_imports_the_ui_server() -> None:
    code = (
        "import sys\n"
        "from outlive.cli.parser import parse\n"
        "for argv in (['run', '--', 'true'], ['logs', 'x'], ['cancel', 'x'], ['ls']):\n"
        "    parse(argv).command.load()\n"
        "before = 'outlive.ui' in sys.modules\n"
        "parse(['ui', '--no-browser']).command.load()\n"
        "sys.stdout.write(repr((before, 'outlive.ui.server' in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # the handler module itself is light: the server is imported when `ui` runs, not at load
    assert out.stdout == "(False, False)"
