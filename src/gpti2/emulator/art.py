"""Deterministic placeholder PNGs: a gradient whose colours come from the prompt."""

from __future__ import annotations

import functools
import hashlib
import struct
import zlib
from collections.abc import Iterator


def size_for(aspect_ratio: str, long_side: int) -> tuple[int, int]:
    """Width and height following `W:H`, the long side `long_side` pixels."""
    w, h = (int(part) for part in aspect_ratio.split(":"))
    if w >= h:
        return long_side, max(1, round(long_side * h / w))
    return max(1, round(long_side * w / h)), long_side


@functools.lru_cache(maxsize=64)
def placeholder_png(prompt: str, width: int, height: int) -> bytes:
    """A PNG of `width` x `height`, the same bytes for the same prompt and size."""
    digest = hashlib.sha256(prompt.encode()).digest()
    start, end = digest[0:3], digest[3:6]
    base = bytearray(width * 3)
    span = max(width - 1, 1)
    for channel in range(3):
        a, b = start[channel], end[channel]
        base[channel::3] = bytes(a + (b - a) * x // span for x in range(width))
    base = bytes(base)
    levels = 32
    tables = [bytes(v * (levels + i) // (2 * levels) for v in range(256)) for i in range(levels)]

    def rows():
        for y in range(height):
            yield base.translate(tables[y * (levels - 1) // max(height - 1, 1)])

    return encode_png(width, height, rows())


def encode_png(width: int, height: int, rows: Iterator[bytes]) -> bytes:
    """Encode 8-bit RGB rows (each `width * 3` bytes) as a PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    compressor = zlib.compressobj(6)
    parts = [compressor.compress(b"\x00" + row) for row in rows]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )
