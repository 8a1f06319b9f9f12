"""The sweep file read into items: grid order, lists, --items lines, stable keys, hostile values
as data, and each mistake one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from outlive.errors import UsageError
from outlive.sweep.spec import item_key, read_spec


def _spec_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_a_grid_is_every_combination_in_file_order_with_one_word_per_placeholder(
    tmp_path: Path,
) -> None:
    path = _spec_file(
        tmp_path,
        'name = "g"\ncommand = "python t.py --lr {lr} --tag {tag}"\n'
        '[grid]\nlr = [0.1, 0.01]\ntag = ["a b", "$(rm -rf ~)"]\n',
    )
    spec = read_spec(path)
    assert [i.params for i in spec.items] == [
        {"lr": 0.1, "tag": "a b"},
        {"lr": 0.1, "tag": "$(rm -rf ~)"},
        {"lr": 0.01, "tag": "a b"},
        {"lr": 0.01, "tag": "$(rm -rf ~)"},
    ]
    assert spec.items[1].command == ["python", "t.py", "--lr", "0.1", "--tag", "$(rm -rf ~)"]
    assert spec.run_name(spec.items[0].key).startswith("g.lr=0.1_tag=a-b-")
    assert len({i.key for i in spec.items}) == 4


def test_a_list_and_items_lines_give_readable_keys_that_stay_the_same(tmp_path: Path) -> None:
    path = _spec_file(
        tmp_path, 'command = ["run", "{seed}"]\n[[list]]\nseed = 1\n[[list]]\nseed = 2\n'
    )
    spec = read_spec(path)
    assert spec.name == "s"
    assert [i.key for i in spec.items] == ["seed=1", "seed=2"]
    lines = tmp_path / "items.txt"
    lines.write_text("# configs\nconf/a.yaml\n\nconf/b.yaml\n")
    with_items = read_spec(_spec_file(tmp_path, 'command = "train --config {item}"\n'), lines)
    assert [i.command[-1] for i in with_items.items] == ["conf/a.yaml", "conf/b.yaml"]
    assert item_key({"item": "conf/a.yaml"}) == with_items.items[0].key
    assert "/" not in with_items.items[0].key


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('command = "x {lr"\n[grid]\nlr = [1]\n', "malformed placeholder"),
        ('command = "x {lr!r}"\n[grid]\nlr = [1]\n', "other than {name}"),
        ('command = "x {seed}"\n[grid]\nlr = [1]\n', "uses {seed}"),
        ('command = "x"\n', "exactly one of"),
        ('command = "x"\n[grid]\nlr = []\n', "non-empty list"),
        ('command = "x"\n[grid]\nlr = [[1]]\n', "string, number or boolean"),
        ('command = "x {lr}"\n[[list]]\nlr = 1\n[[list]]\nlr = 1\n', "repeats"),
        ('command = "x \'unclosed"\n[grid]\nlr = [1]\n', "cannot be split"),
        ('name = "a/b"\ncommand = "x"\n[grid]\nlr = [1]\n', "sweep name"),
        ('command = "x"\nretries = 3\n[grid]\nlr = [1]\n', "unknown keys"),
        ("command = = 1\n", "not valid TOML"),
    ],
)
def test_each_mistake_is_one_usage_sentence(tmp_path: Path, text: str, says: str) -> None:
    with pytest.raises(UsageError) as err:
        read_spec(_spec_file(tmp_path, text))
    assert says in str(err.value)
    assert "\n" not in str(err.value)


def test_a_sweep_past_ten_thousand_items_is_refused_before_any_is_made(tmp_path: Path) -> None:
    """A grid's product is counted, not listed: 100 values in each of 10 parameters is 10^20
    items, refused at once with the count instead of filling memory."""
    values = "[" + ", ".join(str(v) for v in range(100)) + "]"
    grid = "".join(f"p{n} = {values}\n" for n in range(10))
    with pytest.raises(UsageError) as err:
        read_spec(_spec_file(tmp_path, f'command = "x {{p0}}"\n[grid]\n{grid}'))
    assert "100,000,000,000,000,000,000 items" in str(err.value)
    assert "more than the 10,000 a sweep may hold" in str(err.value)
    listed = "".join(f"[[list]]\nseed = {n}\n" for n in range(10_001))
    with pytest.raises(UsageError, match="10,001 items"):
        read_spec(_spec_file(tmp_path, f'command = "x {{seed}}"\n{listed}'))
    lines = tmp_path / "items.txt"
    lines.write_text("".join(f"conf/{n}.yaml\n" for n in range(10_001)))
    with pytest.raises(UsageError, match="10,001 items"):
        read_spec(_spec_file(tmp_path, 'command = "x {item}"\n'), lines)
    exactly = "".join(f"[[list]]\nseed = {n}\n" for n in range(10_000))
    assert (
        len(read_spec(_spec_file(tmp_path, f'command = "x {{seed}}"\n{exactly}')).items) == 10_000
    )


def test_a_sweep_or_items_file_that_never_ends_is_one_sentence(tmp_path: Path) -> None:
    """/dev/zero given by mistake was read until memory ran out."""
    with pytest.raises(UsageError, match="more than 16 MiB"):
        read_spec(Path("/dev/zero"))
    with pytest.raises(UsageError, match="items file /dev/zero holds more than 16 MiB"):
        read_spec(_spec_file(tmp_path, 'command = "x {item}"\n'), Path("/dev/zero"))
