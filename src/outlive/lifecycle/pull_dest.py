"""Where a pull may land, checked before the box is asked for anything and before a byte is
written: a directory (new or existing) of its own. A pull moves aside local files that differ
from the box and its proof walks the whole destination, so a destination that holds other
things -- the filesystem's root, the project itself or a directory above it, the project's
state directory -- would have them moved or walked, and a file in the way would fail late."""

from __future__ import annotations

from pathlib import Path

from outlive.errors import UsageError


def checked_dest(dest: Path, project_dir: Path, state_dir: Path) -> Path:
    """``dest`` made absolute, or one sentence saying why a pull must not land there."""
    dest = dest.expanduser().absolute()
    real = dest.resolve()
    project, state = project_dir.resolve(), state_dir.resolve()
    if real.exists() and not real.is_dir():
        raise UsageError(
            f"cannot pull into {dest}: it is a file, not a directory; "
            "give --to a new or existing directory"
        )
    if real == Path(real.anchor):
        raise UsageError(
            f"cannot pull into {dest}, the filesystem's root; give --to a directory of its own"
        )
    if real == project or real in project.parents:
        raise UsageError(
            f"cannot pull into {dest}: it holds the project {project_dir} (a pull moves aside "
            "what differs and checks every file there); give --to a directory of its own, "
            "e.g. a new one inside the project"
        )
    pulled = state / "pulled"
    if (real == state or state in real.parents) and pulled not in real.parents:
        raise UsageError(
            f"cannot pull into {dest}: it is inside outlive's state directory {state_dir}; "
            f"leave --to out (pulls go under {pulled}) or give a directory of its own"
        )
    return dest
