"""`gpti2 generate` end to end against the emulator and a scripted server."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import TOKEN, gpti2_command
from gpti2.emulator.art import placeholder_png, quick_png


def test_generate_writes_a_content_addressed_png(cli, emulator) -> None:
    run = cli("generate", "A lighthouse at dawn", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    path = Path(run.stdout.strip())
    data = path.read_bytes()
    assert path.name == f"a-lighthouse-at-dawn-{hashlib.sha256(data).hexdigest()[:8]}.png"
    assert data == quick_png("A lighthouse at dawn", "openai", "dall-e-3", 512, 512)


def test_json_output_describes_the_file(cli, emulator) -> None:
    run = cli("generate", "wide", "-a", "16:9", "--json", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    out = run.json
    assert (out["width"], out["height"], out["format"]) == (512, 288, "png")
    assert out["bytes"] == Path(out["path"]).stat().st_size
    assert out["sha256"] == hashlib.sha256(Path(out["path"]).read_bytes()).hexdigest()
    assert out["provider"] == "openai" and out["modelId"] == "dall-e-3"
    assert out["aspectRatio"] == "16:9" and isinstance(out["elapsedMs"], int)


def test_output_may_be_a_file_a_folder_or_stdout(cli, emulator, tmp_path) -> None:
    target = tmp_path / "out" / "hero.png"
    target.parent.mkdir()
    assert cli("generate", "x", "-o", str(target), "--base-url", emulator.url).exit_code == 0
    assert target.read_bytes().startswith(b"\x89PNG")
    run = cli("generate", "x", "-o", str(target.parent), "--base-url", emulator.url)
    assert Path(run.stdout.strip()).parent == target.parent
    raw = cli("generate", "x", "-o", "-", "--base-url", emulator.url)
    assert raw.stdout_bytes == target.read_bytes()


def test_prompt_from_stdin_is_stripped(cli, emulator) -> None:
    run = cli("generate", "-", "--json", "--base-url", emulator.url, input="  from stdin \n")
    assert run.exit_code == 0, run.stderr
    assert Path(run.json["path"]).name.startswith("from-stdin-")
    assert Path(run.json["path"]).read_bytes() == quick_png(
        "from stdin", "openai", "dall-e-3", 512, 512
    )


def test_existing_output_is_refused_before_any_request(cli, emulator, tmp_path) -> None:
    target = tmp_path / "taken.png"
    target.write_bytes(b"precious")
    run = cli("generate", "x", "-o", str(target), "--base-url", emulator.url)
    assert run.exit_code == 2
    assert "already exists" in run.stderr and "--force" in run.stderr
    assert emulator.request_count == 0
    assert target.read_bytes() == b"precious"
    forced = cli("generate", "x", "-o", str(target), "--force", "--base-url", emulator.url)
    assert forced.exit_code == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_bad_input_exits_2_before_any_request(cli, emulator) -> None:
    for args in (["  "], ["x", "-a", "16x9"], ["x", "-o", "/proc/gpti2-cannot-write/"]):
        run = cli("generate", *args, "--base-url", emulator.url)
        assert run.exit_code == 2, (args, run.stderr)
        assert run.stderr.startswith("error: ")
        assert "Traceback" not in run.stderr
    assert emulator.request_count == 0


def test_dry_run_prints_the_request_and_sends_nothing(cli, emulator) -> None:
    run = cli("generate", "x", "-p", "vertex", "--dry-run", "--json", "--base-url", emulator.url)
    assert run.exit_code == 0
    assert run.json["body"] == {
        "prompt": "x",
        "provider": "vertex",
        "modelId": "dall-e-3",
        "aspectRatio": "1:1",
    }
    assert run.json["url"] == emulator.url + "/api/generate-images"
    assert emulator.request_count == 0


def test_root_options_work_after_the_subcommand(cli, emulator) -> None:
    before = cli("--base-url", emulator.url, "generate", "same", "--json")
    after = cli("generate", "same", "--json", "--base-url", emulator.url, "--force")
    assert before.exit_code == after.exit_code == 0
    assert before.json["sha256"] == after.json["sha256"]


def test_profile_settings_apply(cli, emulator) -> None:
    assert cli("config", "set", "base_url", emulator.url).exit_code == 0
    assert cli("config", "set", "aspect_ratio", "9:16").exit_code == 0
    run = cli("generate", "tall", "--json")
    assert run.exit_code == 0, run.stderr
    assert (run.json["width"], run.json["height"]) == (288, 512)


def test_server_400_exits_5_with_its_message(cli, emulator) -> None:
    run = cli("generate", "x", "-p", "nope", "--base-url", emulator.url)
    assert run.exit_code == 5
    assert "Invalid request parameters" in run.stderr


def test_503_twice_then_success_is_retried(cli, scripted) -> None:
    png = placeholder_png("r", 8, 8)
    scripted.add(503, {"error": "Service Unavailable"}, headers={"Retry-After": "0"})
    scripted.add(503, {"error": "Service Unavailable"}, headers={"Retry-After": "0"})
    scripted.add(200, {"provider": "openai", "image": base64.b64encode(png).decode()})
    run = cli("generate", "x", "--json", "--base-url", scripted.url)
    assert run.exit_code == 0, run.stderr
    assert len(scripted.seen) == 3
    assert Path(run.json["path"]).read_bytes() == png
    assert all("authorization" not in {k.lower() for k in s.headers} for s in scripted.seen)


def test_429_retry_after_is_honoured(cli, scripted) -> None:
    png = placeholder_png("r", 8, 8)
    scripted.add(429, {"error": "slow down"}, headers={"Retry-After": "1"})
    scripted.add(200, {"provider": "openai", "image": base64.b64encode(png).decode()})
    started = time.monotonic()
    run = cli("generate", "x", "--base-url", scripted.url)
    waited = time.monotonic() - started
    assert run.exit_code == 0, run.stderr
    assert 0.9 <= waited < 5


def test_proxy_502_html_page_exits_6(cli, scripted) -> None:
    page = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
    scripted.add(502, page, headers={"Content-Type": "text/html"})
    run = cli("generate", "x", "--retries", "0", "--base-url", scripted.url)
    assert run.exit_code == 6
    assert run.stderr.startswith("error: ") and "502 Bad Gateway" in run.stderr
    assert "<html>" not in run.stderr and "Traceback" not in run.stderr


def test_image_that_is_not_base64_or_not_an_image_exits_6_and_writes_nothing(cli, scripted) -> None:
    for image in ("!!! not base64 !!!", base64.b64encode(b"just text").decode(), ""):
        scripted.script.clear()
        scripted.add(200, {"provider": "openai", "image": image})
        run = cli("generate", "x", "--base-url", scripted.url)
        assert run.exit_code == 6, image
        assert "malformed" in run.stderr
    assert list(Path.cwd().iterdir()) == []


def test_non_json_200_is_malformed(cli, scripted) -> None:
    scripted.add(200, "<html>hello</html>", headers={"Content-Type": "text/html"})
    run = cli("generate", "x", "--base-url", scripted.url)
    assert run.exit_code == 6 and "malformed" in run.stderr


def test_server_that_does_not_answer_in_time_exits_6(cli, scripted) -> None:
    scripted.add(200, {"image": ""}, delay=3)
    started = time.monotonic()
    run = cli("generate", "x", "--timeout", "0.5", "--retries", "0", "--base-url", scripted.url)
    assert run.exit_code == 6
    assert "within 0.5 s" in run.stderr
    assert time.monotonic() - started < 3


def test_body_over_64_mib_is_refused(cli, scripted) -> None:
    scripted.add(200, b"", headers={"Content-Length": str(65 * 1024 * 1024)}, cut_after=0)
    run = cli("generate", "x", "--retries", "0", "--base-url", scripted.url)
    assert run.exit_code == 6
    assert "64 MiB" in run.stderr


def test_installed_command_generates_offline_with_local(tmp_path) -> None:
    out = subprocess.run(
        [*gpti2_command(), "generate", "a lighthouse at dawn", "--base-url", "local", "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"format": "png"' in out.stdout
    assert len(list(tmp_path.glob("a-lighthouse-at-dawn-*.png"))) == 1


def test_ctrl_c_during_a_request_exits_130_and_leaves_nothing(tmp_path, make_emulator) -> None:
    slow = make_emulator(latency=10)
    folder = tmp_path / "out"
    folder.mkdir()
    proc = subprocess.Popen(
        [*gpti2_command(), "generate", "x", "--base-url", slow.url],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell's background job inherits SIGINT ignored; a user's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 20
    while slow.request_count == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert os.listdir(folder) == []


def test_redirect_loops_stop_after_5_hops(cli, scripted) -> None:
    scripted.add(302, b"", headers={"Location": "/api/generate-images"})
    run = cli("generate", "x", "--base-url", scripted.url)
    assert run.exit_code == 6 and "too many redirects" in run.stderr
    assert len(scripted.seen) == 6


def test_same_prompt_twice_keeps_the_identical_default_file(cli, emulator) -> None:
    first = cli("generate", "twice", "--base-url", emulator.url)
    second = cli("generate", "twice", "--base-url", emulator.url)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
    assert "already had" in second.stderr


def test_retries_are_bounded_by_the_setting(cli, scripted) -> None:
    scripted.add(503, {"error": "busy"})
    run = cli("generate", "x", "--retries", "2", "--base-url", scripted.url)
    assert run.exit_code == 6 and "503" in run.stderr
    assert len(scripted.seen) == 3  # the first try and 2 retries


def test_an_empty_output_is_refused_before_any_request(cli, emulator, tmp_path, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for empty in ("", " "):
        run = cli("generate", "a fox", "-o", empty, "--base-url", emulator.url)
        assert run.exit_code == 2, run.stderr
        assert "error: -o is empty" in run.stderr
    assert emulator.request_count == 0
    assert list(here.iterdir()) == []


def test_an_openai_model_sent_to_another_provider_gets_a_note(cli, emulator, tmp_path) -> None:
    # The default -m is dall-e-3 (CLI.md); the template's replicate would fail it, after
    # the request was sent. The note comes first, and the request still goes out.
    run = cli("generate", "x", "-p", "replicate", "-o", str(tmp_path), "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    assert "note: dall-e-3 is an OpenAI model; replicate takes models such as" in run.stderr
    for quiet in (
        cli("generate", "x", "-p", "replicate", "-m", "black-forest-labs/flux-schnell",
            "-o", str(tmp_path), "--base-url", emulator.url),
        cli("generate", "x", "-o", str(tmp_path), "--base-url", emulator.url),
        cli("generate", "x", "-p", "replicate", "-q", "-o", str(tmp_path),
            "--base-url", emulator.url),
    ):  # fmt: skip
        assert quiet.exit_code == 0 and "OpenAI model" not in quiet.stderr


def test_a_base_url_holding_the_route_gets_a_hint_with_the_site(cli, emulator) -> None:
    for given in (f"{emulator.url}/api/generate-images", f"{emulator.url}/api"):
        run = cli("generate", "x", "--retries", "0", "--base-url", given)
        assert run.exit_code == 5, run.stderr
        assert (
            f"hint: the base URL holds the route; give the site alone: --base-url {emulator.url}\n"
            in run.stderr
        )


def test_verbose_shows_every_header_sent_with_credentials_redacted(cli, emulator) -> None:
    run = cli("-v", "generate", "x", "--force", "-o", "x.png", "--base-url", emulator.url)
    sent = [line for line in run.stderr.splitlines() if line.startswith("> ")]
    host = emulator.url.removeprefix("http://")
    for header in (f"Host: {host}", "User-Agent: gpti2/", "Connection: close", "Content-Length: "):
        assert any(line.startswith(f"> {header}") for line in sent), sent
    job = cli("-v", "job", "status", "nope", "--base-url", emulator.url, env={"GPTI2_TOKEN": TOKEN})
    sent = [line for line in job.stderr.splitlines() if line.startswith("> ")]
    assert f"> Host: {host}" in sent and "> Authorization: [redacted]" in sent, sent
    assert TOKEN not in job.stderr


def test_the_model_note_reads_the_model_name_in_any_case(cli, emulator, tmp_path) -> None:
    run = cli("generate", "x", "-p", "vertex", "-m", "DALL-E-3", "--dry-run")
    assert "note: DALL-E-3 is an OpenAI model; vertex takes" in run.stderr
