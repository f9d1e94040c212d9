"""The emulator's quick route and fault injection, over real sockets."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import time

import httpx

from conftest import gpti2_command
from gpti2.images import dimensions

QUICK = "/api/generate-images"
BODY = {"prompt": "p", "provider": "openai", "modelId": "dall-e-3", "aspectRatio": "4:3"}


def test_quick_route_returns_a_deterministic_png_of_the_ratio(emulator) -> None:
    first = httpx.post(emulator.url + QUICK, json=BODY).json()
    second = httpx.post(emulator.url + QUICK, json=BODY).json()
    assert first == second and first["provider"] == "openai"
    png = base64.b64decode(first["image"])
    assert dimensions(png, "png") == (512, 384)
    other = httpx.post(emulator.url + QUICK, json={**BODY, "prompt": "q"}).json()
    assert other["image"] != first["image"]
    # Another model makes another picture, so models compared offline can be told apart.
    model = httpx.post(emulator.url + QUICK, json={**BODY, "modelId": "dall-e-2"}).json()
    provider = httpx.post(emulator.url + QUICK, json={**BODY, "provider": "vertex"}).json()
    assert len({first["image"], model["image"], provider["image"]}) == 3


def test_quick_route_validates_like_the_template(emulator) -> None:
    for broken in ({**BODY, "provider": "acme"}, {"prompt": "x"}, {**BODY, "prompt": ""}):
        reply = httpx.post(emulator.url + QUICK, json=broken)
        assert reply.status_code == 400
        assert reply.json() == {"error": "Invalid request parameters"}
    get = httpx.get(emulator.url + QUICK)
    assert get.status_code == 405 and get.content == b"" and "content-type" not in get.headers
    not_json = httpx.post(emulator.url + QUICK, content=b"{nope")
    assert not_json.status_code == 500 and not_json.content == b""


def test_image_size_sets_the_long_side(make_emulator) -> None:
    emu = make_emulator(image_size=64)
    png = base64.b64decode(httpx.post(emu.url + QUICK, json=BODY).json()["image"])
    assert dimensions(png, "png") == (64, 48)


def test_fail_rate_and_latency(make_emulator) -> None:
    failing = make_emulator(fail_rate=1.0)
    assert httpx.post(failing.url + QUICK, json=BODY).status_code == 500
    slow = make_emulator(latency=0.3)
    started = time.monotonic()
    httpx.post(slow.url + QUICK, json=BODY)
    assert time.monotonic() - started >= 0.3


def test_rate_limit_answers_429_with_retry_after(make_emulator) -> None:
    emu = make_emulator(rate_limit=2)
    with httpx.Client() as client:
        codes = [client.post(emu.url + QUICK, json=BODY) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].headers["Retry-After"] == "1"


def test_serve_prints_its_address_and_token_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [*gpti2_command(), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GPTI2_EMULATOR_TOKENS": ""},
    )
    try:
        listening = proc.stdout.readline().strip()
        token_line = proc.stdout.readline().strip()
        assert listening.startswith("gpti2 emulator listening on http://127.0.0.1:")
        assert token_line.startswith("token: ") and len(token_line) > 20
        url = listening.rsplit(" ", 1)[1]
        assert httpx.post(url + QUICK, json=BODY).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0


def test_serve_verbose_logs_each_request() -> None:
    proc = subprocess.Popen(
        [*gpti2_command(), "serve", "--port", "0", "-v", "--token", "t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip().rsplit(" ", 1)[1]
        httpx.post(url + QUICK, json=BODY)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert '"POST /api/generate-images HTTP/1.1" 200' in err
