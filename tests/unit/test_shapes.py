"""outlive._shapes: typed records without dataclasses' import and exec cost (agent start-up)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from outlive import wire
from outlive._shapes import as_dict, fields_of, replace, shape

SRC = Path(wire.__file__).resolve().parent.parent


def test_a_shape_has_dataclass_semantics_for_init_defaults_eq_and_replace() -> None:
    a = wire.LaunchRequest("r1", "n", ["python", "x.py"], "/w", env={"A": "1"})
    b = wire.LaunchRequest(run_id="r1", name="n", command=["python", "x.py"], workdir="/w")
    assert a.backend == wire.BACKEND_SETSID and b.env == {} and b.secrets == []
    assert b.env is not wire.LaunchRequest("r2", "n", [], "/w").env  # a fresh default each time
    assert a != b and replace(b, env={"A": "1"}) == a
    assert replace(a, backend="slurm").backend == "slurm" and a.backend == wire.BACKEND_SETSID
    assert fields_of(a)[:4] == ("run_id", "name", "command", "workdir")
    assert as_dict(a)["env"] == {"A": "1"}
    assert "LaunchRequest(run_id='r1'" in repr(a)


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        (("r1",), {}, "needs 'name'"),
        (("r1", "n", [], "/w"), {"nope": 1}, "unexpected nope"),
        (("r1", "n", [], "/w"), {"run_id": "x"}, "'run_id' twice"),
    ],
)
def test_a_shape_refuses_missing_unknown_and_doubled_fields(
    args: tuple[object, ...], kwargs: dict[str, object], says: str
) -> None:
    with pytest.raises(TypeError, match=says):
        wire.LaunchRequest(*args, **kwargs)  # type: ignore[arg-type]


def test_a_frozen_shape_is_read_only_and_hashable() -> None:
    @shape(frozen=True)
    class Point:
        x: int
        y: int = 0

    p = Point(1)
    with pytest.raises(AttributeError, match="read-only"):
        p.x = 2  # type: ignore[misc]
    assert hash(p) == hash(Point(1, 0)) and {p, Point(1)} == {p}


def test_the_wire_shapes_round_trip_through_json() -> None:
    req = wire.LaunchRequest("r1", "n", ["true"], "/w", deploy_manifest={"a": {"size": 1}})
    assert wire.LaunchRequest.from_json(req.to_json()) == req
    assert wire.LaunchRequest.from_json({**req.to_json(), "unknown_key": 1}) == req
    old = {k: v for k, v in req.to_json().items() if k != "backend"}
    assert wire.LaunchRequest.from_json({**old, "detach": "tmux"}).backend == "tmux"
    probe = wire.RunProbe("/d", "running", pid=3)
    assert wire.RunProbe.from_json(probe.to_json()) == probe
    assert "warning" not in probe.to_json()


def test_the_wire_imports_neither_dataclasses_nor_inspect_on_the_box() -> None:
    """Every agent call is a Python start on the box: the wire must stay cheap to import."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import outlive.wire; "
        "print(sorted(m for m in ('dataclasses', 'inspect', 'typing_extensions') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", code, str(SRC)], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
