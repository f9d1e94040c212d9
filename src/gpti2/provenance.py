"""Where an image file came from, read from its own bytes: format, size, digest, whether it
carries a C2PA manifest (and its claim generator), whether it is an emulator placeholder.

No imaging library: the containers are walked chunk by chunk (PNG chunks, JPEG segments,
RIFF chunks) and the C2PA claim's CBOR is read only as far as the claim generator.
Nothing here ever changes a file: gpti2 keeps image bytes exactly as served (a C2PA hard
binding and the content-addressed name both depend on it).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpti2 import images

# JUMBF box types and the C2PA manifest store's label.
_JUMBF = b"jumb"
_C2PA_LABEL = b"c2pa"


@dataclass
class FileReport:
    """What `gpti2 inspect` says about one file."""

    path: str
    format: str | None = None
    width: int | None = None
    height: int | None = None
    bytes: int | None = None
    sha256: str | None = None
    c2pa_present: bool = False
    claim_generator: str | None = None
    emulator: bool = False
    problem: str | None = None  # cut short or corrupt, but still an image
    error: str | None = None  # missing, unreadable, or not an image

    def as_json(self, history: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "c2pa": {"present": self.c2pa_present, "claimGenerator": self.claim_generator},
            "emulator": self.emulator,
            "history": history,
        }
        if self.problem:
            out["problem"] = self.problem
        if self.error:
            out["error"] = self.error
        return out


def inspect_file(path: Path) -> FileReport:
    """Read `path` and describe it; `error` is set when it is missing or not an image."""
    report = FileReport(str(path))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        report.error = "no such file"
        return report
    except IsADirectoryError:
        report.error = "a folder, not an image"
        return report
    except OSError as exc:
        report.error = f"cannot read it: {exc.strerror or exc}"
        return report
    fmt = images.sniff_format(data)
    report.bytes = len(data)
    report.sha256 = hashlib.sha256(data).hexdigest()
    if fmt is None:
        report.error = "not a PNG, JPEG, WebP or GIF image"
        return report
    report.format = fmt
    report.width, report.height = images.dimensions(data, fmt)
    report.problem = images.structure_problem(data, fmt)
    store = c2pa_store(data, fmt)
    report.c2pa_present = store is not None
    report.claim_generator = claim_generator(store) if store else None
    report.emulator = images.is_emulator_image(data)
    return report


# -- C2PA: finding the manifest store -------------------------------------------------


def c2pa_store(data: bytes, fmt: str) -> bytes | None:
    """The JUMBF manifest store a file embeds (PNG `caBX` chunk, JPEG APP11 segments,
    WebP `C2PA` chunk), or None."""
    try:
        if fmt == "png":
            return _png_chunk(data, b"caBX")
        if fmt == "jpeg":
            return _jpeg_jumbf(data)
        if fmt == "webp":
            return _riff_chunk(data, b"C2PA")
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _png_chunk(data: bytes, wanted: bytes) -> bytes | None:
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == wanted:
            return data[pos + 8 : pos + 8 + length]
        if kind == b"IEND":
            return None
        pos += 12 + length
    return None


def _jpeg_jumbf(data: bytes) -> bytes | None:
    """The APP11 JUMBF segments of a JPEG, reassembled (ISO 19566-5: each segment holds
    `JP`, a box instance number, a sequence number, then the box; segments after the
    first repeat the box's 8-byte header, which is dropped)."""
    parts: dict[int, dict[int, bytes]] = {}
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # the scan: metadata segments come before it
            break
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker == 0xEB:
            payload = data[i + 4 : i + 2 + length]
            if payload[:2] == b"JP" and len(payload) >= 16:
                instance = int.from_bytes(payload[2:4], "big")
                sequence = int.from_bytes(payload[4:8], "big")
                box = payload[8:]
                parts.setdefault(instance, {})[sequence] = box if sequence == 1 else box[8:]
        i += 2 + length
    for instance in sorted(parts):
        joined = b"".join(parts[instance][n] for n in sorted(parts[instance]))
        if joined[4:8] == _JUMBF and _C2PA_LABEL in joined[8:80]:
            return joined
    return None


def _riff_chunk(data: bytes, wanted: bytes) -> bytes | None:
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if kind == wanted:
            return data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    return None


# -- C2PA: the claim generator --------------------------------------------------------

_GENERATOR = b"\x6fclaim_generator"  # CBOR text string of 15 bytes: the map key
_GENERATOR_INFO = b"\x74claim_generator_info"


def claim_generator(store: bytes) -> str | None:
    """The active manifest's claim generator (the last claim in the store): the
    `claim_generator` text, or `name/version` of the first `claim_generator_info`
    entry; None when it cannot be read."""
    candidates = []
    for key, read in ((_GENERATOR_INFO, _info_name), (_GENERATOR, _text)):
        at = store.find(key)
        while at != -1:
            candidates.append((at, key, read))
            at = store.find(key, at + 1)
    for at, key, read in sorted(candidates, key=lambda c: c[0], reverse=True):
        value = read(store, at + len(key))
        if value:
            return value
    return None


def _text(store: bytes, pos: int) -> str | None:
    value, _ = _cbor(store, pos)
    return value if isinstance(value, str) and value.strip() else None


def _info_name(store: bytes, pos: int) -> str | None:
    value, _ = _cbor(store, pos)
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        version = value.get("version")
        return value["name"] + (f"/{version}" if isinstance(version, str) else "")
    return None


def _cbor(data: bytes, pos: int, depth: int = 0) -> tuple[Any, int]:
    """One CBOR item at `pos` (integers, strings, arrays, maps, simple values), and where
    it ends; (None, pos) for anything else or a malformed item."""
    if depth > 8 or pos >= len(data):
        return None, pos
    head = data[pos]
    major, info = head >> 5, head & 0x1F
    pos += 1
    if info < 24:
        arg = info
    elif info in (24, 25, 26, 27):
        width = 1 << (info - 24)
        if pos + width > len(data):
            return None, pos
        arg = int.from_bytes(data[pos : pos + width], "big")
        pos += width
    else:
        return None, pos
    if major in (0, 1):
        return (arg if major == 0 else -1 - arg), pos
    if major in (2, 3):
        if pos + arg > len(data):
            return None, pos
        raw = data[pos : pos + arg]
        return (raw.decode("utf-8", "replace") if major == 3 else raw), pos + arg
    if major == 4:
        items = []
        for _ in range(min(arg, 64)):
            item, pos = _cbor(data, pos, depth + 1)
            items.append(item)
        return items, pos
    if major == 5:
        table = {}
        for _ in range(min(arg, 64)):
            key, pos = _cbor(data, pos, depth + 1)
            value, pos = _cbor(data, pos, depth + 1)
            if isinstance(key, str):
                table[key] = value
        return table, pos
    if major == 6:  # a tag: the item it wraps
        return _cbor(data, pos, depth + 1)
    return {20: False, 21: True}.get(arg), pos
