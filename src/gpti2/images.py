"""Image bytes: decoding base64 payloads, sniffing format and size, checking that the
file is whole (without an imaging library), naming."""

from __future__ import annotations

import binascii
import hashlib
import re
import struct
import unicodedata
import zlib
from pathlib import Path
from typing import NamedTuple

from gpti2.errors import ServerError

EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}
_URLSAFE = bytes.maketrans(b"-_", b"+/")
_URLSAFE_STR = str.maketrans("-_", "+/")
_DATA_URL = re.compile(rb"^data:[\w.+-]+/[\w.+-]+(;[\w=.+-]+)*;base64,", re.IGNORECASE)


def sniff_format(data: bytes | bytearray | memoryview) -> str | None:
    """Return png, jpeg, webp or gif from the leading bytes, or None."""
    head = bytes(data[:12])
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def dimensions(data: bytes, fmt: str) -> tuple[int | None, int | None]:
    """Width and height read from the image header; (None, None) when unreadable."""
    try:
        if fmt == "png" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if fmt == "gif":
            return struct.unpack("<HH", data[6:10])
        if fmt == "webp":
            return _webp_dimensions(data)
        if fmt == "jpeg":
            return _jpeg_dimensions(data)
    except (struct.error, IndexError):
        pass
    return None, None


def _webp_dimensions(data: bytes) -> tuple[int | None, int | None]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return (
            int.from_bytes(data[24:27], "little") + 1,
            int.from_bytes(data[27:30], "little") + 1,
        )
    return None, None


def _jpeg_dimensions(data: bytes) -> tuple[int | None, int | None]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None, None


def decode_base64_image(payload: str | bytes | bytearray | memoryview) -> bytes:
    """Decode a base64 string or data URL into image bytes, refusing anything not an image."""
    # a2b_base64 reads bytes and an ASCII str in place; base64.b64decode, or encoding the
    # str first, would copy it.
    view: str | memoryview = payload if isinstance(payload, str) else memoryview(payload)
    head = view[:200]
    match = _DATA_URL.match(head.encode("ascii", "replace") if isinstance(head, str) else head)
    if match:
        view = view[match.end() :]
    if len(view) == 0:
        raise ServerError("malformed response: the image is empty")
    # The URL-safe alphabet is read as such, not skipped into garbage.
    if isinstance(view, str):
        if "-" in view or "_" in view:
            view = view.translate(_URLSAFE_STR)
    elif re.search(rb"[-_]", view):
        view = memoryview(bytes(view).translate(_URLSAFE))
    try:
        data = binascii.a2b_base64(view)
    except (binascii.Error, ValueError) as exc:
        raise ServerError(f"malformed response: the image is not valid base64 ({exc})") from None
    if sniff_format(data) is None:
        raise ServerError("malformed response: the image is not a PNG, JPEG, WebP or GIF")
    return data


def structure_problem(data: bytes, fmt: str) -> str | None:
    """Why `data` is not a whole image of format `fmt` (cut short, corrupt), or None.

    PNG: every chunk's length and CRC, ending with IEND. JPEG: SOI, a frame header (SOF)
    before the scan, EOI after it. GIF: the trailer. WebP: the RIFF length."""
    check = {"png": _png_problem, "jpeg": _jpeg_problem, "gif": _gif_problem}.get(fmt)
    return check(data) if check else _webp_problem(data)


def _png_problem(data: bytes) -> str | None:
    view, pos, size = memoryview(data), 8, len(data)
    first = True
    while True:
        if pos + 12 > size:
            return "the PNG is cut short (no IEND chunk)"
        length = int.from_bytes(view[pos : pos + 4], "big")
        kind = bytes(view[pos + 4 : pos + 8])
        end = pos + 12 + length
        if not kind.isalpha() or (first and kind != b"IHDR"):
            return "the PNG is corrupt (a bad chunk header)"
        if end > size:
            return f"the PNG is cut short (in its {kind.decode()} chunk)"
        crc = int.from_bytes(view[end - 4 : end], "big")
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            return f"the PNG is corrupt (bad checksum in its {kind.decode()} chunk)"
        if kind == b"IEND":
            return None
        pos, first = end, False


def _jpeg_problem(data: bytes) -> str | None:
    i, size, frame = 2, len(data), False
    while True:
        if i + 4 > size:
            return "the JPEG is cut short (before its image data)"
        if data[i] != 0xFF:
            return "the JPEG is corrupt (a bad marker)"
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker == 0xD9:
            return "the JPEG ends before its image data"
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            return "the JPEG is corrupt (a bad segment length)"
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            frame = True
        if marker == 0xDA:
            if not frame:
                return "the JPEG is corrupt (no frame header before its image data)"
            if data.rfind(b"\xff\xd9", i + 2 + length) == -1:
                return "the JPEG is cut short (no end marker)"
            return None
        i += 2 + length


def _gif_problem(data: bytes) -> str | None:
    if len(data) < 14 or not data.rstrip(b"\0").endswith(b";"):
        return "the GIF is cut short (no trailer)"
    return None


def _webp_problem(data: bytes) -> str | None:
    if len(data) < 20:
        return "the WebP is cut short"
    riff_size = int.from_bytes(data[4:8], "little")
    if riff_size < 12 or len(data) < 8 + riff_size:
        return "the WebP is cut short (shorter than its RIFF length)"
    return None


class ImageInfo(NamedTuple):
    """What we know of an image's bytes."""

    format: str
    width: int | None
    height: int | None
    sha256: str
    bytes: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def describe(data: bytes) -> ImageInfo:
    """Format, size and digest of image bytes."""
    fmt = sniff_format(data)
    if fmt is None:
        raise ServerError("malformed response: the image is not a PNG, JPEG, WebP or GIF")
    problem = structure_problem(data, fmt)
    if problem:
        raise ServerError(f"malformed response: {problem}")
    width, height = dimensions(data, fmt)
    return ImageInfo(fmt, width, height, hashlib.sha256(data).hexdigest(), len(data))


def describe_file(path: Path) -> ImageInfo | None:
    """describe() of a file on disk, or None when it is unreadable or not an image."""
    try:
        return describe(path.read_bytes())
    except (OSError, ServerError):
        return None


def slugify(prompt: str) -> str:
    """Lowercase ASCII slug of at most 40 characters; `image` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", prompt).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug[:40].rstrip("-")
    return slug or "image"


def extension_mismatch(path: Path, info: ImageInfo) -> bool:
    """True when `path` ends in an image extension of another format (PNG bytes in .jpg)."""
    suffix = path.suffix.lower().lstrip(".")
    known = {ext: fmt for fmt, ext in EXTENSIONS.items()} | {"jpeg": "jpeg"}
    return suffix in known and known[suffix] != info.format


def default_name(prompt: str, info: ImageInfo) -> str:
    """`<slug>-<hash8>.<ext>`, the content-addressed default file name."""
    return f"{slugify(prompt)}-{info.sha256[:8]}.{info.extension}"


EMULATOR_SOFTWARE = b"gpti2 emulator"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_emulator_image(data: bytes) -> bool:
    """True for a placeholder of gpti2's emulator: a PNG whose tEXt chunk, before the image
    data, says `Software: gpti2 emulator`."""
    if not data.startswith(_PNG_SIGNATURE):
        return False
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind in (b"IDAT", b"IEND"):
            return False
        if kind == b"tEXt":
            key, _, value = data[pos + 8 : pos + 8 + length].partition(b"\0")
            if key == b"Software" and value == EMULATOR_SOFTWARE:
                return True
        pos += 12 + length
    return False


def is_emulator_file(path: Path) -> bool:
    """is_emulator_image() of a file's first 64 KiB; False when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return is_emulator_image(handle.read(1 << 16))
    except OSError:
        return False


def reduced_ratio(width: int | None, height: int | None) -> str | None:
    """`W:H` in lowest terms (1024x576 is 16:9); None without both sides."""
    import math

    if not width or not height:
        return None
    common = math.gcd(width, height)
    return f"{width // common}:{height // common}"
