"""The project's state directory on an unlucky disk: a full disk leaves no empty ``.gitignore``
(which git would read as "track everything", the registry included) and no half-written config
cache behind; a cache file that is JSON but not an object is ignored, never a traceback."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from outlive.config import load_config

BOX = '[targets.box]\nhost = "10.0.0.5"\n'


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(a project on a 1 MiB tmpfs, the file that fills that tmpfs to its last page)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the disk-full tests needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        project = mount / "proj"
        project.mkdir()
        (project / "outlive.toml").write_text(BOX)
        filler = mount / "filler"
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={filler}", "bs=4k"], capture_output=True, check=False
        )
        yield project, filler
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


def test_a_full_disk_leaves_no_empty_gitignore_nor_a_half_written_cache(
    full_disk: tuple[Path, Path],
) -> None:
    project, filler = full_disk
    for _ in range(2):
        assert set(load_config(project).targets) == {"local", "box"}  # works, uncached
    state = project / ".outlive"
    left = sorted(p.name for p in state.iterdir()) if state.exists() else []
    assert left == [], f"left on the full disk: {left}"
    filler.unlink()
    load_config(project)
    assert "*" in (state / ".gitignore").read_text().splitlines()
    assert (state / "config-cache.json").exists()


def test_a_config_cache_that_is_not_an_object_is_ignored(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "outlive.toml").write_text(BOX)
    load_config(project)
    for junk in ("[1]", "null", '"x"', "{}"):
        (project / ".outlive" / "config-cache.json").write_text(junk)
        assert set(load_config(project).targets) == {"local", "box"}


@pytest.mark.parametrize("name", ["a b", "../x", "ü", "box-1", 'q"uote'])
def test_the_table_an_unknown_target_suggests_is_valid_toml_for_that_name(
    tmp_path: Path, name: str
) -> None:
    """Pasting the suggested header makes the target (it was ``[targets.a b]``: invalid TOML)."""
    import re

    from outlive.errors import ConfigError

    project = tmp_path / "proj"
    project.mkdir()
    (project / "outlive.toml").write_text("")
    with pytest.raises(ConfigError) as caught:
        load_config(project).target(name)
    header = re.search(r"add a (\[targets\..*\]) table to", str(caught.value))
    assert header is not None, caught.value
    (project / "outlive.toml").write_text(f'{header.group(1)}\nhost = "h"\n')
    assert load_config(project).target(name).name == name


def test_an_empty_host_is_a_configuration_error_naming_the_key(tmp_path: Path) -> None:
    """``host = ""`` was accepted and failed at the first ssh with exit 1 ("has no host")."""
    from outlive.errors import ConfigError

    project = tmp_path / "proj"
    project.mkdir()
    (project / "outlive.toml").write_text('[targets.box]\nhost = ""\n')
    with pytest.raises(ConfigError) as caught:
        load_config(project)
    assert "[targets.box] key 'host'" in str(caught.value)
    assert caught.value.exit_code == 2


def test_init_force_on_a_full_disk_keeps_the_old_config_whole(
    full_disk: tuple[Path, Path],
) -> None:
    """``init --force`` wrote outlive.toml in place: on a full disk the user's config was left
    empty or cut short. It is now replaced whole or not at all, with one sentence."""
    import sys

    project, _filler = full_disk
    outlive = str(Path(sys.executable).with_name("outlive"))
    done = subprocess.run([outlive, "init", "--force"], cwd=project, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "could not write" in done.stderr and "it is as it was" in done.stderr
    assert (project / "outlive.toml").read_text() == BOX
    assert sorted(p.name for p in project.iterdir()) == ["outlive.toml"]


def test_a_project_without_a_config_is_cached_too_and_a_config_added_later_is_read(
    tmp_path: Path,
) -> None:
    """Without outlive.toml the embedded local target was rebuilt with pydantic on every
    `run` (~45 ms); it is cached once the project has its state directory (never made by a
    look alone), and a config file that appears later, or a pyproject.toml that gains
    [tool.outlive], is read at once."""
    import sys

    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert set(load_config(project).targets) == {"local"}
    assert not (project / ".outlive").exists()  # a look makes nothing here
    (project / ".outlive").mkdir()
    first = load_config(project)
    assert (project / ".outlive" / "config-cache.json").is_file()
    probe = (
        "import sys; from outlive.config import load_config; "
        f"cfg = load_config(__import__('pathlib').Path({str(project)!r})); "
        "print(sorted(cfg.targets), cfg.source, 'pydantic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['local']", "None", "False"]  # from the cache, no pydantic
    assert load_config(project).target("local") == first.target("local")
    # pyproject.toml gains a table (same second, another size): read again, not the cache
    (project / "pyproject.toml").write_text(
        '[project]\nname = "x"\n[tool.outlive.targets.box]\nhost = "10.0.0.5"\n'
    )
    assert set(load_config(project).targets) == {"local", "box"}
    (project / "outlive.toml").write_text(BOX.replace("box", "other"))
    assert set(load_config(project).targets) == {"local", "other"}
