"""Moving files between this machine and a target: rsync's argv, and a tar stream for a box
without rsync. Each transport fills in only where the far end is (``-e ssh`` and ``host:path``,
or plain local paths); the flags, their order and the quoting are decided here, once.

``--partial`` and ``--protect-args`` are always on: a cut keeps the half file (U12), and a path on
the target travels inside rsync's protocol, never through the remote shell, so spaces, quotes,
``$()`` and newlines stay one literal argument.
"""

from __future__ import annotations

import io
import shlex
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from outlive._shapes import shape
from outlive.transport.base import Completed

if TYPE_CHECKING:
    from outlive.transport.base import Transport

Direction = Literal["to_target", "from_target"]


@shape(frozen=True)
class RsyncOptions:
    """The rsync flags that vary between outlive's transfers (the argv order is fixed)."""

    stats: bool = False  # --info=progress2 --stats: progress to read, byte totals at the end
    timeout_s: int | None = None  # --timeout: an attempt whose link stalls this long ends
    compress: bool = False  # -z (rsync picks zstd when both ends have it, U15)
    bwlimit_kbps: int | None = None
    files_from: str | None = None  # NUL-separated paths relative to the source ("-": stdin)
    make_dest: bool = False  # create the destination directory in the same round trip (U13)
    checksum: bool = False  # compare contents, not size and mtime (a file changed in place)


def rsync_argv(
    direction: Direction,
    here: str,
    there: str,
    opts: RsyncOptions,
    *,
    remote_shell: Sequence[str] | None = None,
    host: str | None = None,
) -> list[str]:
    """rsync between ``here`` (a path on this machine) and ``there`` (a path on the target).

    With ``remote_shell`` (an argv that reaches the target, quoted into ``-e``), ``there`` is
    ``host:there``; without it the target is this machine and both paths are local."""
    argv = ["rsync", "-a", "--partial", "--protect-args"]
    if opts.checksum:
        argv.append("--checksum")
    if opts.stats:
        argv += ["--info=progress2", "--stats"]
    if opts.timeout_s is not None:
        argv.append(f"--timeout={opts.timeout_s}")
    if opts.compress:
        argv.append("-z")
    if opts.bwlimit_kbps:
        argv.append(f"--bwlimit={opts.bwlimit_kbps}")
    if opts.files_from is not None:
        argv += ["--from0", f"--files-from={opts.files_from}"]
    remote = remote_shell is not None
    if remote_shell is not None:
        argv += ["-e", " ".join(shlex.quote(a) for a in remote_shell)]
        there_arg = f"{host or ''}:{there}"
    else:
        there_arg = _local(there)
    if opts.make_dest:
        if remote and direction == "to_target":
            # the remote shell runs this: mkdir the destination in the same round trip (U13)
            argv.append(f"--rsync-path=mkdir -p {shlex.quote(there.rstrip('/') or '/')} && rsync")
        else:
            argv.append("--mkpath")  # the receiver is this machine's own rsync
    here_arg = _local(here)
    if direction == "to_target":
        return [*argv, "--", here_arg, there_arg]
    return [*argv, "--", there_arg, here_arg]


def _local(path: str) -> str:
    """rsync reads ``a:b`` (a colon before the first slash) as a remote path: anchor it."""
    if path.startswith("/") or ":" not in path.split("/", 1)[0]:
        return path
    return "./" + path


def tar_upload(
    transport: Transport,
    root: Path,
    files: Sequence[str],
    dest: str,
    *,
    timeout_s: float | None = None,
) -> Completed:
    """Send ``files`` (relative to ``root``) into ``dest`` on the target as one gzipped tar on
    stdin, for a box without rsync; ``dest`` is created first. Returns the remote tar's result."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for rel in files:
            tar.add(str(root / rel), arcname=rel, recursive=False)
    return transport.run(
        ["sh", "-c", 'mkdir -p "$1" && tar -xzf - -C "$1"', "sh", dest],
        stdin=buf.getvalue(),
        timeout_s=timeout_s,
    )
