"""The pure rules, tested without any I/O."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime, timedelta

import pytest

from gpti2 import images
from gpti2.cli.main import hoist_root_options
from gpti2.emulator.art import placeholder_png, size_for
from gpti2.errors import AuthError, CreditsError, RejectedError, ServerError, UsageError
from gpti2.quick import split_image_field
from gpti2.retry import backoff_delay, parse_retry_after
from gpti2.settings import parse_value, resolve
from gpti2.wire import error_text, unwrap


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [
        ("A lighthouse at dawn", "a-lighthouse-at-dawn"),
        ("  Crème brûlée!!  ", "creme-brulee"),
        ("日本語だけ", "image"),
        ("", "image"),
        ("x" * 39 + " yz", "x" * 39),
        ("--Hello--World--", "hello-world"),
    ],
)
def test_slug_is_lowercase_ascii_and_at_most_40(prompt: str, slug: str) -> None:
    assert images.slugify(prompt) == slug
    assert len(images.slugify(prompt)) <= 40


def _webp_vp8l(w: int, h: int) -> bytes:
    bits = (w - 1) | ((h - 1) << 14)
    return b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f" + bits.to_bytes(4, "little") + b"\0" * 8


def _jpeg(w: int, h: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + b"\0" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, h, w, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize(
    ("data", "fmt", "size"),
    [
        (placeholder_png("x", 30, 20), "png", (30, 20)),
        (b"GIF89a" + struct.pack("<HH", 7, 9) + b"\0" * 10, "gif", (7, 9)),
        (_jpeg(640, 480), "jpeg", (640, 480)),
        (_webp_vp8l(300, 200), "webp", (300, 200)),
    ],
)
def test_format_and_size_come_from_the_bytes(data: bytes, fmt: str, size: tuple) -> None:
    assert images.sniff_format(data) == fmt
    assert images.dimensions(data, fmt) == size


def test_unknown_bytes_are_no_format() -> None:
    assert images.sniff_format(b"hello world, not an image") is None


def test_data_url_and_plain_base64_decode_to_the_same_image() -> None:
    png = placeholder_png("y", 4, 4)
    b64 = base64.b64encode(png).decode()
    assert images.decode_base64_image(b64) == png
    assert images.decode_base64_image("data:image/png;base64," + b64) == png


@pytest.mark.parametrize("payload", ["", "%%%not base64%%%", base64.b64encode(b"<html>").decode()])
def test_payload_that_is_not_an_image_is_malformed(payload: str) -> None:
    with pytest.raises(ServerError, match="malformed"):
        images.decode_base64_image(payload)


@pytest.mark.parametrize("value", ["16x9", "0:1", "1:0", "-1:2", "a:b", "", "16:9:1"])
def test_bad_aspect_ratios_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError, match="--aspect-ratio"):
        parse_value("aspect_ratio", value, "--aspect-ratio")


def test_emulator_size_follows_the_ratio() -> None:
    assert size_for("16:9", 512) == (512, 288)
    assert size_for("9:16", 512) == (288, 512)
    assert size_for("1:1", 100) == (100, 100)


def test_envelope_is_unwrapped_and_its_errors_are_classified() -> None:
    assert unwrap({"code": 0, "message": "ok", "data": {"taskId": "t"}}) == {"taskId": "t"}
    assert unwrap({"code": 200, "data": None, "message": "ok"}) == {}
    assert unwrap({"image": "x"}) == {"image": "x"}
    with pytest.raises(CreditsError):
        unwrap({"code": 1001, "message": "Insufficient credits", "data": None})
    with pytest.raises(AuthError):
        unwrap({"code": 1002, "message": "Please sign in first", "data": None})
    with pytest.raises(RejectedError, match="bad prompt"):
        unwrap({"code": 1003, "message": "bad prompt", "data": None})


def test_retry_after_reads_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("1") == 1.0
    assert parse_retry_after("600") == 600.0  # the client refuses to wait that long
    later = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_grows_and_is_capped() -> None:
    assert 0.25 <= backoff_delay(0) <= 0.5
    assert 0.5 <= backoff_delay(1) <= 1.0
    assert 10 <= backoff_delay(10) <= 20


def test_error_text_prefers_json_fields_then_html_title() -> None:
    assert error_text(b'{"error": "Invalid request parameters"}') == "Invalid request parameters"
    assert error_text(b'{"error": {"message": "nested"}}') == "nested"
    assert error_text(b'{"detail": "d"}') == "d"
    html = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    assert error_text(html, "text/html") == "502 Bad Gateway"
    assert error_text(b"x" * 500) == "x" * 200


def test_image_field_is_sliced_without_parsing_it() -> None:
    body = bytearray(b'{"provider": "openai", "image": "QUJD", "extra": 1}')
    payload, image = split_image_field(body)
    assert payload["provider"] == "openai"
    assert bytes(image) == b"QUJD"
    escaped = bytearray(b'{"image": "data:image\\/png;base64,QUJD"}')
    payload, image = split_image_field(escaped)
    assert bytes(image) == b"data:image/png;base64,QUJD"
    enveloped = bytearray(b'{"code": 0, "message": "ok", "data": {"image": "QUJD"}}')
    assert split_image_field(enveloped)[1] == "QUJD"


def test_settings_precedence_is_flag_env_profile_default(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        '[profiles.default]\nprovider = "replicate"\ntimeout = 30\nretries = 1\n'
        '[profiles.staging]\nbase_url = "https://staging.example"\n'
    )
    env = {"GPTI2_TIMEOUT": "45"}
    s = resolve({"retries": 5}, env=env, path=path)
    assert (s.retries, s.sources["retries"]) == (5, "flag")
    assert (s.timeout, s.sources["timeout"]) == (45.0, "env GPTI2_TIMEOUT")
    assert (s.provider, s.sources["provider"]) == ("replicate", "config [profiles.default]")
    assert (s.model, s.sources["model"]) == ("dall-e-3", "default")
    staging = resolve({}, env={"GPTI2_PROFILE": "staging"}, path=path)
    assert staging.base_url == "https://staging.example"
    assert staging.profile == "staging"


def test_unknown_profile_key_names_file_and_key(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[profiles.default]\ncolour = 'red'\n")
    with pytest.raises(UsageError) as caught:
        resolve({}, env={}, path=path)
    assert "colour" in caught.value.message
    assert str(path) in caught.value.message


def test_root_options_after_the_subcommand_move_to_the_front() -> None:
    assert hoist_root_options(["generate", "x", "--base-url", "U", "-v"]) == [
        "--base-url",
        "U",
        "-v",
        "generate",
        "x",
    ]
    assert hoist_root_options(["--timeout", "5", "generate", "x"]) == [
        "--timeout",
        "5",
        "generate",
        "x",
    ]
    assert hoist_root_options(["generate", "--", "--verbose"]) == ["generate", "--", "--verbose"]
    assert hoist_root_options(["generate", "x", "--base-url=U"]) == [
        "--base-url=U",
        "generate",
        "x",
    ]


def test_progress_shows_only_for_a_person_at_a_terminal() -> None:
    from gpti2.cli.common import Environment, State, Ui

    def ui(environ: dict[str, str] | None = None, tty: bool = True, **state) -> Ui:
        env = Environment(stderr_isatty=tty, vars=environ or {})
        return Ui(State(env=env, **state))

    assert ui().progress_enabled
    assert not ui(no_progress=True).progress_enabled
    assert not ui(quiet=True).progress_enabled
    assert not ui(json=True).progress_enabled
    assert not ui({"GPTI2_NO_PROGRESS": "1"}).progress_enabled
    assert ui({"GPTI2_NO_PROGRESS": "0"}).progress_enabled
    assert not ui({"CI": "true"}).progress_enabled
    assert not ui(tty=False).progress_enabled
