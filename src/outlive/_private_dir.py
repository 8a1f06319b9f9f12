"""A directory only this user can use, for sockets someone else must not plant or answer on."""

from __future__ import annotations

import os
import stat


def private_dir_problem(path: str) -> str | None:
    """Make ``path`` (mode 0700) if it is missing; None when it is this user's own directory
    with no group or other access, else what is wrong with it (a few words).

    A directory in a shared ``/tmp`` may have been made by someone else first; it is checked
    with ``lstat`` so a symlink to their directory is refused too."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        return f"it cannot be created ({exc.strerror})"
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "it is not a directory"
    if st.st_uid != os.getuid():
        return f"it belongs to uid {st.st_uid}, not to you (uid {os.getuid()})"
    if st.st_mode & 0o077:
        return f"its mode {stat.S_IMODE(st.st_mode):04o} lets group or others in"
    return None
