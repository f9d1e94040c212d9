"""`gpti2 inspect`: format, size, digest, C2PA, emulator placeholder and the history row of
the exact bytes, from files built here byte by byte (no imaging library)."""

from __future__ import annotations

import hashlib
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from gpti2 import provenance
from gpti2.emulator.art import encode_png, placeholder_png


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 24:
        return bytes([0x60 + len(raw)]) + raw
    return bytes([0x78, len(raw)]) + raw


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def c2pa_store(generator: str | None = None, info: tuple[str, str] | None = None) -> bytes:
    """A JUMBF manifest store shaped as C2PA writes it: a `jumb` superbox labelled `c2pa`
    holding a manifest whose claim (CBOR) names the claim generator."""
    pairs = 1 + (generator is not None) + (info is not None)
    claim = bytes([0xA0 + pairs]) + _cbor_text("dc:format") + _cbor_text("image/png")
    if generator is not None:
        claim += _cbor_text("claim_generator") + _cbor_text(generator)
    if info is not None:
        name, version = info
        entry = b"\xa2" + _cbor_text("name") + _cbor_text(name)
        entry += _cbor_text("version") + _cbor_text(version)
        claim += _cbor_text("claim_generator_info") + b"\x81" + entry
    description = _box(b"jumd", b"c2cl" + b"\x00" * 12 + b"\x03" + b"c2pa.claim\x00")
    claim_box = _box(b"jumb", description + _box(b"cbor", claim))
    store_description = _box(b"jumd", b"c2pa" + b"\x00" * 12 + b"\x03" + b"c2pa\x00")
    return _box(b"jumb", store_description + claim_box)


def plain_png(width: int = 3, height: int = 2, extra: bytes = b"") -> bytes:
    png = encode_png(width, height, iter([b"\x80" * width * 3] * height))
    return png[:33] + extra + png[33:]  # after IHDR


def jpeg(width: int, height: int, app11: list[bytes] = ()) -> bytes:
    """A baseline JPEG's markers (SOI, APP11s, SOF0, SOS, EOI) with a token scan."""
    out = b"\xff\xd8"
    for payload in app11:
        out += b"\xff\xeb" + struct.pack(">H", len(payload) + 2) + payload
    sof = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    out += b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof
    sos = b"\x01\x01\x00\x00\x3f\x00"
    out += b"\xff\xda" + struct.pack(">H", len(sos) + 2) + sos + b"\x00" * 16
    return out + b"\xff\xd9"


def jpeg_app11(store: bytes, pieces: int = 2) -> list[bytes]:
    """The store split over APP11 segments: `JP`, instance 1, sequence n, then the box
    (segments after the first repeat its 8-byte header)."""
    header, body = store[:8], store[8:]
    size = -(-len(body) // pieces)
    segments = []
    for n in range(pieces):
        chunk = body[n * size : (n + 1) * size]
        segments.append(b"JP" + struct.pack(">HI", 1, n + 1) + header + chunk)
    return segments


def webp(width: int, height: int, c2pa: bytes | None = None) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    vp8l = b"\x2f" + bits.to_bytes(4, "little") + b"\x00" * 9  # an even size: no padding
    chunks = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    if c2pa is not None:
        pad = b"\x00" if len(c2pa) % 2 else b""
        chunks += b"C2PA" + struct.pack("<I", len(c2pa)) + c2pa + pad
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + chunks


def gif(width: int, height: int) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00\x00\x00" + b"\x3b"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_formats_sizes_and_digests(cli, tmp_path) -> None:
    files = {
        "a.png": (plain_png(3, 2), ("png", 3, 2)),
        "b.jpg": (jpeg(640, 480), ("jpeg", 640, 480)),
        "c.webp": (webp(300, 200), ("webp", 300, 200)),
        "d.gif": (gif(16, 9), ("gif", 16, 9)),
    }
    paths = [_write(tmp_path, name, data) for name, (data, _) in files.items()]
    run = cli("inspect", *map(str, paths), "--json")
    assert run.exit_code == 0, run.stderr
    for item, (data, expected) in zip(run.json, files.values(), strict=True):
        assert (item["format"], item["width"], item["height"]) == expected
        assert item["bytes"] == len(data) and item["sha256"] == hashlib.sha256(data).hexdigest()
        assert item["c2pa"] == {"present": False, "claimGenerator": None}
        assert item["emulator"] is False and item["history"] is None
        assert set(item) >= {"path", "c2pa", "emulator", "history"}


def test_png_with_a_cabx_chunk(cli, tmp_path) -> None:
    store = c2pa_store("OpenAI-API c2pa-rs/0.33")
    path = _write(tmp_path, "signed.png", plain_png(extra=_png_chunk(b"caBX", store)))
    [item] = cli("inspect", str(path), "--json").json
    assert item["c2pa"] == {"present": True, "claimGenerator": "OpenAI-API c2pa-rs/0.33"}
    human = cli("inspect", str(path)).stdout
    assert "c2pa       present, claim generator OpenAI-API c2pa-rs/0.33" in human


def test_jpeg_with_app11_segments_split_in_two(cli, tmp_path) -> None:
    store = c2pa_store(info=("ChatGPT", "1.0"))
    path = _write(tmp_path, "signed.jpg", jpeg(1024, 768, jpeg_app11(store, pieces=2)))
    [item] = cli("inspect", str(path), "--json").json
    assert (item["format"], item["width"], item["height"]) == ("jpeg", 1024, 768)
    assert item["c2pa"] == {"present": True, "claimGenerator": "ChatGPT/1.0"}


def test_webp_with_a_c2pa_chunk_whose_generator_cannot_be_read(cli, tmp_path) -> None:
    path = _write(tmp_path, "signed.webp", webp(64, 64, c2pa_store()))
    [item] = cli("inspect", str(path), "--json").json
    assert item["c2pa"] == {"present": True, "claimGenerator": None}
    assert "present (claim generator not readable)" in cli("inspect", str(path)).stdout


def test_an_app11_segment_that_is_not_c2pa_is_not_a_manifest() -> None:
    other = _box(b"jumb", _box(b"jumd", b"\x00" * 16 + b"\x03" + b"jpeg360\x00"))
    data = jpeg(8, 8, jpeg_app11(other, pieces=1))
    assert provenance.c2pa_store(data, "jpeg") is None


def test_the_active_manifest_is_the_last_in_the_store() -> None:
    store = c2pa_store("old ingredient tool") + c2pa_store(info=("New Tool", "2"))
    assert provenance.claim_generator(store) == "New Tool/2"


def test_a_hostile_claim_generator_is_shown_safely(cli, tmp_path) -> None:
    store = c2pa_store("evil\x1b]0;pwned\x07\x1b[31m tool")
    path = _write(tmp_path, "evil.png", plain_png(extra=_png_chunk(b"caBX", store)))
    run = cli("inspect", str(path))
    assert run.exit_code == 0 and "\x1b" not in run.stdout and "\x07" not in run.stdout
    assert "evil" in run.stdout and "tool" in run.stdout


def test_an_emulator_image_and_its_history_row(cli, emulator, tmp_path) -> None:
    run = cli("generate", "a fox at dusk", "-o", f"{tmp_path}/", "--base-url", emulator.url)
    written = Path(run.stdout.strip())
    copy = tmp_path / "renamed.png"
    shutil.copy(written, copy)
    [item] = cli("inspect", str(copy), "--json").json
    assert item["emulator"] is True
    assert item["history"]["prompt"] == "a fox at dusk"
    assert item["history"]["path"] == str(written.absolute())
    assert item["history"]["sha256"] == item["sha256"]
    human = cli("inspect", str(copy)).stdout
    assert "emulator   yes" in human and "prompt     a fox at dusk" in human
    assert f"written as {written.absolute()}" in human
    assert cli("inspect", str(_write(tmp_path, "p.png", placeholder_png("x", 8, 8))))


def test_missing_and_non_image_files_exit_2_and_the_others_are_still_shown(cli, tmp_path) -> None:
    good = _write(tmp_path, "good.gif", gif(2, 2))
    text = _write(tmp_path, "notes.txt", b"hello")
    run = cli("inspect", str(tmp_path / "gone.png"), str(text), str(good), str(tmp_path))
    assert run.exit_code == 2
    assert "gone.png: no such file (and 2 more)" in run.stderr
    assert "  image      gif 2x2" in run.stdout and "not a PNG, JPEG, WebP or GIF" in run.stdout
    as_json = cli("inspect", str(tmp_path / "gone.png"), str(good), "--json")
    assert as_json.exit_code == 2
    assert [i.get("error") for i in as_json.json] == ["no such file", None]
    assert as_json.json[1]["format"] == "gif"


def test_a_cut_short_image_is_still_inspected_with_a_warning(cli, tmp_path) -> None:
    path = _write(tmp_path, "cut.png", plain_png()[:-10])
    run = cli("inspect", str(path))
    assert run.exit_code == 0 and "warning    the PNG is cut short" in run.stdout


@pytest.mark.parametrize("junk", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xeb\xff", b"RIFF"])
def test_truncated_containers_never_crash(junk: bytes) -> None:
    for fmt in ("png", "jpeg", "webp"):
        assert provenance.c2pa_store(junk, fmt) is None
