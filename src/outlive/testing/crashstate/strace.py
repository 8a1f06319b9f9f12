"""Parse the log of ``strace -f -y -xx`` into syscalls with decoded arguments.

``-xx`` prints every string, path and written byte as ``\\xNN``, so the log is unambiguous (no
quoting, commas or newlines inside an argument); ``-y`` prints each fd with the path it refers to.
A syscall split by another thread (``<unfinished ...>`` / ``<... resumed>``) is joined and placed
where it completed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, Iterator, List, Tuple, Union

__all__ = ["TRACED", "Fd", "LogError", "Syscall", "parse_log", "split_args"]

# What the recorder asks strace for: every call that changes a file or a directory, or makes it
# durable, and those that move an fd's offset or copy an fd. Reads are not traced (their data
# would flood the log); a read that moved a written file's offset shows up as a replay mismatch.
TRACED = (
    "open,openat,creat,close,dup,dup2,dup3,fcntl,lseek,write,pwrite64,writev,pwritev,pwritev2,"
    "ftruncate,truncate,fsync,fdatasync,sync,syncfs,sync_file_range,rename,renameat,renameat2,"
    "unlink,unlinkat,mkdir,mkdirat,rmdir,link,linkat,symlink,symlinkat,fallocate,"
    "copy_file_range,sendfile,splice"
)

_LINE = re.compile(r"^(\d+)\s+(.*)$")
_CALL = re.compile(r"^(\w+)\((.*)\)\s+=\s+(-?\d+|0x[0-9a-f]+)(<[^>]*>)?(.*)$")
_UNFINISHED = re.compile(r"^(\w+)\((.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_FD = re.compile(r"^(-?\d+|AT_FDCWD)<((?:\\x[0-9a-f]{2})*)>$")
_HEX = re.compile(r"^\"((?:\\x[0-9a-f]{2})*)\"(\.\.\.)?$")


class LogError(Exception):
    """The strace log holds something the recorder cannot model faithfully."""


@dataclass(frozen=True)
class Fd:
    """An fd argument with its path (``AT_FDCWD`` has number -100)."""

    number: int
    path: str


Arg = Union[Fd, bytes, str]


@dataclass(frozen=True)
class Syscall:
    """One completed syscall: name, decoded arguments, return value, the fd path it returned."""

    tid: int
    name: str
    args: Tuple[Arg, ...]
    ret: int
    ret_path: str | None


def _unhex(text: str) -> bytes:
    return bytes.fromhex(text.replace("\\x", ""))


def split_args(text: str) -> List[str]:
    """Top-level comma-separated arguments (brackets and braces nest)."""
    parts: List[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _decode(arg: str) -> Arg:
    fd = _FD.match(arg)
    if fd:
        number = -100 if fd.group(1) == "AT_FDCWD" else int(fd.group(1))
        return Fd(number, _unhex(fd.group(2)).decode("utf-8", "surrogateescape"))
    string = _HEX.match(arg)
    if string:
        if string.group(2):
            raise LogError("a string was cut short: raise strace's -s limit")
        return _unhex(string.group(1))
    if arg.startswith("[") and "iov_base=" in arg:  # an iovec array: its buffers, concatenated
        pieces = re.findall(r'iov_base="((?:\\x[0-9a-f]{2})*)"(\.\.\.)?', arg)
        if any(cut for _, cut in pieces):
            raise LogError("an iovec buffer was cut short: raise strace's -s limit")
        return b"".join(_unhex(hexed) for hexed, _ in pieces)
    return arg


def _syscall(tid: int, text: str) -> Syscall | None:
    call = _CALL.match(text)
    if call is None:
        return None  # a signal, an exit, or a call that returned "?"
    name, args, ret, ret_fd, _ = call.groups()
    ret_path = _unhex(ret_fd[1:-1]).decode("utf-8", "surrogateescape") if ret_fd else None
    value = int(ret, 16) if ret.startswith("0x") else int(ret)
    return Syscall(tid, name, tuple(_decode(a) for a in split_args(args)), value, ret_path)


def parse_log(lines: Iterable[str]) -> Iterator[Syscall]:
    """Syscalls in completion order; failed calls (negative return) are dropped."""
    pending: Dict[Tuple[int, str], str] = {}
    for raw in lines:
        line = _LINE.match(raw.rstrip("\n"))
        if line is None:
            continue
        tid, text = int(line.group(1)), line.group(2)
        unfinished = _UNFINISHED.match(text)
        if unfinished:
            pending[(tid, unfinished.group(1))] = f"{unfinished.group(1)}({unfinished.group(2)}"
            continue
        resumed = _RESUMED.match(text)
        if resumed:
            head = pending.pop((tid, resumed.group(1)), None)
            if head is None:
                raise LogError(f"a resumed call with no start: {text[:80]}")
            text = head + resumed.group(2)
        call = _syscall(tid, text)
        if call is not None and call.ret >= 0:
            yield call
