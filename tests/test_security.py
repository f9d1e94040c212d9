"""Where the token goes, and where it never goes."""

from __future__ import annotations

import json

import pytest

from conftest import TOKEN, ScriptedServer
from gpti2.emulator.art import placeholder_png


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    monkeypatch.setenv("GPTI2_POLL_INTERVAL", "0.05")


@pytest.fixture
def cdn():
    server = ScriptedServer()
    yield server
    server.close()


def _envelope(data: dict) -> dict:
    return {"code": 0, "message": "ok", "data": data}


def test_the_token_never_appears_in_any_output_even_verbose(cli, emulator, tmp_path) -> None:
    url = ["--base-url", emulator.url, "-v"]
    outputs = []
    start = cli("job", "start", "x", "--wait", "-o", str(tmp_path), *url)
    assert start.exit_code == 0, start.stderr
    task_id = start.stdout.splitlines()[0]
    outputs.append(start)
    outputs.append(cli("job", "status", task_id, "--json", *url))
    outputs.append(cli("job", "fetch", task_id, "-o", str(tmp_path), "--force", *url))
    outputs.append(cli("generate", "x", "--json", *url))
    outputs.append(cli("auth", "status", "--json", *url))
    outputs.append(cli("job", "status", "task_missing", *url))
    outputs.append(cli("config", "list", *url))
    for run in outputs:
        assert TOKEN not in run.stdout + run.stderr
    assert "Authorization: [redacted]" in start.stderr


def test_a_server_echoing_the_token_is_scrubbed(cli, scripted) -> None:
    scripted.add(400, {"code": 400, "message": f"bad token {TOKEN}"})
    run = cli("job", "start", "x", "--base-url", scripted.url, "-v")
    assert run.exit_code == 5
    assert TOKEN not in run.stdout + run.stderr and "[redacted]" in run.stderr


def test_the_quick_route_never_sends_credentials(cli, scripted) -> None:
    png = placeholder_png("q", 4, 4)
    import base64

    scripted.add(200, {"image": base64.b64encode(png).decode()})
    assert cli("generate", "x", "--base-url", scripted.url).exit_code == 0
    headers = {k.lower() for k in scripted.seen[0].headers}
    assert "authorization" not in headers and "cookie" not in headers


def test_credentials_stay_on_the_base_origin(cli, scripted, cdn, tmp_path) -> None:
    """An absolute CDN URL gets none; a same-origin file gets them until it redirects away."""
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    png = placeholder_png("cdn", 4, 4)
    scripted.add(
        200,
        _envelope({"taskId": "t1", "status": "success", "images": [cdn.url + "/a.png", "/f/2"]}),
    )
    scripted.add(302, b"", headers={"Location": cdn.url + "/moved.png"})
    cdn.add(200, png, headers={"Content-Type": "image/png"})
    run = cli("job", "fetch", "t1", "-o", str(tmp_path), "--base-url", scripted.url)
    assert run.exit_code == 0, run.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t1-1.png", "t1-2.png"]
    assert [s.path for s in cdn.seen] == ["/a.png", "/moved.png"]
    for seen in cdn.seen:
        assert not {"authorization", "cookie"} & {k.lower() for k in seen.headers}
    file_request = scripted.seen[1]
    assert file_request.path == "/f/2"
    assert file_request.headers.get("Authorization") == f"Bearer {TOKEN}"


def test_cookie_scheme_sends_the_named_cookie(cli, scripted) -> None:
    cli("config", "set", "auth_scheme", "cookie")
    cli("config", "set", "cookie_name", "better-auth.session_token")
    scripted.add(200, _envelope({"taskId": "t", "status": "queued"}))
    assert cli("job", "start", "x", "--base-url", scripted.url).exit_code == 0
    headers = scripted.seen[0].headers
    assert headers.get("Cookie") == f"better-auth.session_token={TOKEN}"
    assert "Authorization" not in headers


def test_plain_http_to_another_host_is_refused_before_connecting(cli) -> None:
    run = cli("job", "start", "x", "--base-url", "http://gpti2.invalid")
    assert run.exit_code == 2
    assert "plain http" in run.stderr and "--allow-insecure-http" in run.stderr


def test_a_download_cut_midway_leaves_no_partial_file(cli, scripted, tmp_path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    png = placeholder_png("cut", 64, 64)
    scripted.add(200, _envelope({"taskId": "t9", "status": "done", "images": ["/f/1.png"]}))
    scripted.add(200, png, cut_after=len(png) // 2)
    run = cli(
        "job", "fetch", "t9", "-o", str(tmp_path), "--retries", "0", "--base-url", scripted.url
    )
    assert run.exit_code == 6
    assert list(tmp_path.iterdir()) == []


def test_a_download_retried_after_a_cut_is_complete(cli, scripted, tmp_path) -> None:
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    png = placeholder_png("cut", 64, 64)
    scripted.add(200, _envelope({"taskId": "t9", "status": "done", "images": ["/f/1.png"]}))
    scripted.add(200, png, cut_after=len(png) // 2)
    scripted.add(200, png)
    run = cli("job", "fetch", "t9", "-o", str(tmp_path), "--json", "--base-url", scripted.url)
    assert run.exit_code == 0, run.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["t9-1.png"]
    assert (tmp_path / "t9-1.png").read_bytes() == png
    assert json.loads(run.stdout)["files"][0]["bytes"] == len(png)


def test_plain_http_cdn_is_fine_when_no_credentials_go_there() -> None:
    """The plain-http refusal is about credentials: a result on another host gets none."""
    import httpx

    from gpti2.client import ApiClient, Credentials

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=placeholder_png("cdn", 4, 4))

    client = ApiClient(
        "https://api.example",
        credentials=Credentials(TOKEN),
        transport=httpx.MockTransport(handler),
    )
    with client:
        reply = client.send("GET", "http://cdn.example/x.png", auth=True)
        assert reply.status == 200
        assert "authorization" not in seen[0].headers
        insecure = ApiClient(
            "http://api.example",
            credentials=Credentials(TOKEN),
            transport=httpx.MockTransport(handler),
        )
        from gpti2.errors import UsageError

        with pytest.raises(UsageError, match="plain http"):
            insecure.send("GET", "/api/aiimage/status?taskId=x", auth=True)
        assert len(seen) == 1  # refused before connecting


def test_allow_insecure_http_lets_credentials_go_over_plain_http() -> None:
    import httpx

    from gpti2.client import ApiClient, Credentials

    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"taskId": "t", "status": "queued"})

    client = ApiClient(
        "http://api.example",
        credentials=Credentials(TOKEN),
        allow_insecure_http=True,
        transport=httpx.MockTransport(handler),
    )
    with client:
        assert client.call("GET", "/api/aiimage/status?taskId=t", auth=True)["taskId"] == "t"
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
