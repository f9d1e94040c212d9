"""The quick route's image field: `\\/`-escaped bodies decode in place to the right bytes."""

from __future__ import annotations

import base64
import json

import pytest

from gpti2 import quick
from gpti2.emulator.art import placeholder_png
from gpti2.images import decode_base64_image
from gpti2.quick import split_image_field


def _image() -> bytes:
    return placeholder_png("escaped", 64, 64)


def _body(image: bytes, **extra: object) -> str:
    return json.dumps({"provider": "openai", "image": base64.b64encode(image).decode(), **extra})


@pytest.mark.parametrize("slice_size", [1, 2, 3, 7, 1 << 20])
def test_slash_escaped_body_decodes_to_the_same_bytes_in_place(monkeypatch, slice_size) -> None:
    monkeypatch.setattr(quick, "_UNESCAPE_SLICE", slice_size)  # pairs split across slices
    image = _image()
    plain = _body(image, note="a/b")
    escaped = bytearray(plain.replace("/", "\\/").encode())
    assert b"\\/" in escaped
    payload, field = split_image_field(escaped)
    assert isinstance(field, memoryview)  # sliced, not parsed into a second copy
    assert decode_base64_image(field) == image
    assert payload == {"provider": "openai", "image": "", "note": "a/b"}


def test_slash_escaped_data_url_in_an_envelope_decodes() -> None:
    image = _image()
    url = "data:image/png;base64," + base64.b64encode(image).decode()
    text = json.dumps({"code": 0, "message": "ok", "data": {"image": url}})
    _, field = split_image_field(bytearray(text.replace("/", "\\/").encode()))
    assert decode_base64_image(field) == image


@pytest.mark.parametrize(
    "escape", ["\\u002f", "\\n/", "\\\\/"], ids=["unicode-slash", "newline", "backslash"]
)
def test_other_escapes_take_the_full_parse_with_the_same_result(escape: str) -> None:
    image = _image()
    text = _body(image).replace("/", escape, 1)
    expected = json.loads(text)["image"]
    body = bytearray(text.encode())
    _, field = split_image_field(body)
    assert field == expected  # a str from json.loads
    assert body == text.encode()  # nothing undone in place
    assert decode_base64_image(field) == image  # line breaks and stray `\\` are skipped


def test_escaped_quote_inside_the_image_is_not_taken_for_its_end() -> None:
    text = '{"image": "QU\\"JD", "provider": "x"}'
    payload, field = split_image_field(bytearray(text.encode()))
    assert field == 'QU"JD'
    assert payload["provider"] == "x"


def test_generate_writes_the_exact_bytes_from_a_slash_escaped_body(cli, scripted, tmp_path):
    image = placeholder_png("escaped body", 256, 256)
    text = _body(image).replace("/", "\\/")
    scripted.add(200, text, headers={"Content-Type": "application/json"})
    out = tmp_path / "out.png"
    run = cli("generate", "x", "-o", str(out), "--base-url", scripted.url)
    assert run.exit_code == 0, run.stderr
    assert out.read_bytes() == image


def test_non_ascii_in_the_image_string_is_malformed() -> None:
    from gpti2.errors import ServerError

    with pytest.raises(ServerError, match="not valid base64"):
        decode_base64_image("QUJD\u00e9QUJD")
