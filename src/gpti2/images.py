"""Image bytes: decoding base64 payloads, sniffing format and size, naming, atomic writes."""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import re
import struct
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gpti2.errors import ServerError, UsageError

EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp", "gif": "gif"}
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
    try:
        data = binascii.a2b_base64(view)
    except (binascii.Error, ValueError) as exc:
        raise ServerError(f"malformed response: the image is not valid base64 ({exc})") from None
    if sniff_format(data) is None:
        raise ServerError("malformed response: the image is not a PNG, JPEG, WebP or GIF")
    return data


@dataclass(frozen=True)
class ImageInfo:
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


def default_name(prompt: str, info: ImageInfo) -> str:
    """`<slug>-<hash8>.<ext>`, the content-addressed default file name."""
    return f"{slugify(prompt)}-{info.sha256[:8]}.{info.extension}"


def check_writable_target(path: Path, force: bool) -> None:
    """Refuse, before any request, an output that exists (without force) or cannot be written."""
    if path.exists() and not force:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it")
    if path.is_dir():
        raise UsageError(f"{path} is a folder")
    check_writable_dir(path.parent)


def check_writable_dir(folder: Path) -> None:
    """Refuse a folder we could not create a file in (probing with a real file)."""
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"cannot write into {folder}: {probe} is not a folder")
    try:
        fd, name = tempfile.mkstemp(prefix=".gpti2-probe-", dir=probe)
    except OSError as exc:
        raise UsageError(
            f"cannot write into {folder}: {exc.strerror or exc}", hint="choose another --output"
        ) from None
    os.close(fd)
    os.unlink(name)


@contextlib.contextmanager
def atomic_output(path: Path, force: bool) -> Iterator[BinaryIO]:
    """Yield a temporary file beside `path`; on success it becomes `path`, on failure it is gone.

    Without `force` an existing file is never replaced, even one that appeared meanwhile.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path, force)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def publish(tmp: Path, path: Path, force: bool) -> None:
    """Give a finished temporary file its final name; without `force`, never replace."""
    os.chmod(tmp, 0o666 & ~_umask())
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UsageError(f"{path} already exists", hint="pass --force to overwrite it") from None
    except OSError:
        # Filesystems without hard links: fall back to a checked rename.
        if path.exists():
            raise UsageError(
                f"{path} already exists", hint="pass --force to overwrite it"
            ) from None
        os.replace(tmp, path)
    else:
        tmp.unlink()


def write_atomic(path: Path, data: bytes, force: bool) -> None:
    """Write `data` to `path` atomically."""
    with atomic_output(path, force) as handle:
        handle.write(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
