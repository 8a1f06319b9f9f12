"""SPDY/3.1 framing, as far as ``kubectl exec`` through the apiserver needs it: the kubelet side
of the stream connection (moby/spdystream with golang.org/x/net's framer is the client side).

Frames (draft-mbelshe-httpbis-spdy-00 / SPDY/3.1): a control frame is ``1 | version(15) |
type(16) | flags(8) | length(24) | data``; a data frame is ``0 | stream id(31) | flags(8) |
length(24) | data``. Header blocks are a count then (name, value) pairs, each length-prefixed with
32 bits, compressed with one zlib stream per direction that starts from the SPDY/3 dictionary and
is sync-flushed after every block.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

__all__ = ["FLAG_FIN", "HEADER_DICTIONARY", "Frame", "Framer"]

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = (
    1, 2, 3, 4, 6, 7, 8, 9,
)  # fmt: skip
FLAG_FIN = 0x01
RST_CANCEL = 5
MAX_DATA_BYTES = 0xFFFFFF

# The SPDY/3 header compression dictionary, byte for byte from moby/spdystream
# spdy/dictionary.go (commit f0be51f30e2e861eaa06b3374fd0f3c2512038bc; a copy of
# golang.org/x/net/spdy, "headerDictionary"): 1423 bytes, sha256 51d27341...498407f02.
HEADER_DICTIONARY = (
    b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00"
    b"\x00\x00\x06delete\x00\x00\x00\x05trace\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-chars"
    b"et\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\x00\x00\x00\raccept-rang"
    b"es\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\rauthorization\x00\x00\x00\rcache-"
    b"control\x00\x00\x00\nconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encodi"
    b"ng\x00\x00\x00\x10content-language\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-l"
    b"ocation\x00\x00\x00\x0bcontent-md5\x00\x00\x00\rcontent-range\x00\x00\x00\x0ccontent-type"
    b"\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\x00"
    b"\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-s"
    b"ince\x00\x00\x00\rif-none-match\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-sinc"
    b"e\x00\x00\x00\rlast-modified\x00\x00\x00\x08location\x00\x00\x00\x0cmax-forwards\x00\x00"
    b"\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization\x00"
    b"\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server"
    b"\x00\x00\x00\x02te\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00"
    b"\x07upgrade\x00\x00\x00\nuser-agent\x00\x00\x00\x04vary\x00\x00\x00\x03via\x00\x00\x00"
    b"\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\x00"
    b"\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1"
    b"\x00\x00\x00\x03url\x00\x00\x00\x06public\x00\x00\x00\nset-cookie\x00\x00\x00\nkeep-alive"
    b"\x00\x00\x00\x06origin1001012012022052063003023033043053063074024054064074084094104114124"
    b"13414415416417502504505203 Non-Authoritative Information204 No Content301 Moved Permanent"
    b"ly400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 N"
    b"ot Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:"
    b"00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/g"
    b"if,application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    b"gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


@dataclass
class Frame:
    """One parsed frame: ``kind`` is "data" or a control type number; ``stream_id`` is the
    data frame's or the control frame's stream (the PING id for PING, last-good for GOAWAY)."""

    kind: str | int
    stream_id: int
    flags: int
    data: bytes = b""
    headers: dict[str, list[str]] = field(default_factory=dict)

    @property
    def fin(self) -> bool:
        return bool(self.flags & FLAG_FIN)


class Framer:
    """Parses the bytes one peer sends and encodes this peer's frames; one per connection
    (the two header zlib streams live as long as the connection)."""

    def __init__(self) -> None:
        self._inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)
        self._deflate = zlib.compressobj(
            9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY
        )

    def parse(self, buf: bytearray) -> list[Frame]:
        """Take every complete frame off the front of BUF."""
        frames = []
        while len(buf) >= 8:
            first, word = struct.unpack_from(">II", buf)
            length = word & 0xFFFFFF
            if len(buf) < 8 + length:
                break
            body = bytes(buf[8 : 8 + length])
            del buf[: 8 + length]
            frames.append(self._frame(first, word >> 24, body))
        return frames

    def _frame(self, first: int, flags: int, body: bytes) -> Frame:
        if not first & 0x80000000:
            return Frame("data", first & 0x7FFFFFFF, flags, body)
        kind = first & 0xFFFF
        if (first >> 16) & 0x7FFF != VERSION:
            raise ValueError(f"SPDY version {(first >> 16) & 0x7FFF}, not {VERSION}")
        if kind == SYN_STREAM:  # stream id, associated id, priority + slot, header block
            sid = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            return Frame(kind, sid, flags, headers=self._headers(body[10:]))
        if kind in (SYN_REPLY, HEADERS):
            sid = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            return Frame(kind, sid, flags, headers=self._headers(body[4:]))
        if kind in (RST_STREAM, PING, GOAWAY, WINDOW_UPDATE):
            sid = struct.unpack_from(">I", body)[0] & 0x7FFFFFFF
            return Frame(kind, sid, flags, body[4:])
        return Frame(kind, 0, flags, body)  # SETTINGS and anything newer: nothing to do

    def _headers(self, block: bytes) -> dict[str, list[str]]:
        raw = self._inflate.decompress(block)
        (count,) = struct.unpack_from(">I", raw)
        at, out = 4, {}
        for _ in range(count):
            (n,) = struct.unpack_from(">I", raw, at)
            name = raw[at + 4 : at + 4 + n].decode().lower()
            at += 4 + n
            (n,) = struct.unpack_from(">I", raw, at)
            out[name] = raw[at + 4 : at + 4 + n].decode().split("\0")
            at += 4 + n
        return out

    def _control(self, kind: int, flags: int, body: bytes) -> bytes:
        return struct.pack(">HHI", 0x8000 | VERSION, kind, flags << 24 | len(body)) + body

    def syn_reply(self, stream_id: int, headers: dict[str, str] | None = None) -> bytes:
        items = sorted((headers or {}).items())
        block = struct.pack(">I", len(items))
        for name, value in items:
            n, v = name.lower().encode(), value.encode()
            block += struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v
        packed = self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return self._control(SYN_REPLY, 0, struct.pack(">I", stream_id) + packed)

    @staticmethod
    def data(stream_id: int, data: bytes, *, fin: bool = False) -> bytes:
        if len(data) > MAX_DATA_BYTES:
            raise ValueError("a SPDY data frame holds at most 16 MiB")
        flags = FLAG_FIN if fin else 0
        return struct.pack(">II", stream_id, flags << 24 | len(data)) + data

    def rst_stream(self, stream_id: int, status: int = RST_CANCEL) -> bytes:
        return self._control(RST_STREAM, 0, struct.pack(">II", stream_id, status))

    def ping(self, ping_id: int) -> bytes:
        return self._control(PING, 0, struct.pack(">I", ping_id))

    def goaway(self, last_good_stream_id: int, status: int = 0) -> bytes:
        return self._control(GOAWAY, 0, struct.pack(">II", last_good_stream_id, status))
