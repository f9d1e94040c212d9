"""Deterministic placeholder PNGs: a gradient whose colours come from the prompt, marked
EMULATOR across the middle (a bitmap font, no imaging library) and carrying a PNG tEXt
chunk `Software: gpti2 emulator`, so nobody mistakes one for a real image."""

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


MARK = "EMULATOR"
SOFTWARE = b"gpti2 emulator"  # images.is_emulator_image looks for it
# 5x7 glyphs of the letters of MARK, one string per row, '#' for ink.
_GLYPHS = {
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
}
_INK, _BAND = b"\xff\xff\xff", b"\x20\x20\x20"


def mark_cells(text: str = MARK) -> list[str]:
    """The mark as rows of cells: '#' ink, '.' band, with a one-cell margin all round."""
    rows = [".".join(_GLYPHS[c][r] for c in text) for r in range(7)]
    width = len(rows[0]) + 2
    return ["." * width, *(f".{row}." for row in rows), "." * width]


def _marked_rows(width: int, height: int) -> dict[int, bytes] | None:
    """Image rows of the band that carries the mark, by y; None when the image is too
    small for it to be readable."""
    cells = mark_cells()
    scale = min(width * 4 // (5 * len(cells[0])), height // (2 * len(cells)))
    if scale < 1:
        return None
    left = (width - scale * len(cells[0])) // 2
    top = (height - scale * len(cells)) // 2
    out = {}
    for r, line in enumerate(cells):
        row = bytearray()
        for cell in line:
            row += (_INK if cell == "#" else _BAND) * scale
        for y in range(top + r * scale, top + (r + 1) * scale):
            out[y] = bytes(row)
    return out if left >= 0 else None


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

    band = _marked_rows(width, height) or {}
    left = (width - len(next(iter(band.values()), b"")) // 3) // 2 * 3

    def rows():
        for y in range(height):
            row = base.translate(tables[y * (levels - 1) // max(height - 1, 1)])
            mark = band.get(y)
            if mark is not None:
                row = row[:left] + mark + row[left + len(mark) :]
            yield row

    return encode_png(width, height, rows(), text={b"Software": SOFTWARE})


def quick_png(prompt: str, provider: str, model: str, width: int, height: int) -> bytes:
    """The quick route's image: seeded by the provider and model as well as the prompt, so
    models compared offline can be told apart."""
    return placeholder_png(f"{provider}/{model}\n{prompt}", width, height)


def encode_png(
    width: int, height: int, rows: Iterator[bytes], text: dict[bytes, bytes] | None = None
) -> bytes:
    """Encode 8-bit RGB rows (each `width * 3` bytes) as a PNG, with `text` as tEXt chunks."""

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
        + b"".join(chunk(b"tEXt", key + b"\0" + value) for key, value in (text or {}).items())
        + chunk(b"IDAT", b"".join(parts))
        + chunk(b"IEND", b"")
    )
