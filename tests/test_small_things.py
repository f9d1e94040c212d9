"""Small things that bite: binary on a terminal, a misleading extension, the dry run for
`local`, config list and unset, and `gpti2 serve` given two signals."""

from __future__ import annotations

import io
import os
import signal
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from conftest import gpti2_command
from gpti2.cli import app
from gpti2.cli.context import Environment


def test_image_bytes_are_not_written_to_a_terminal(emulator) -> None:
    env = Environment(stdout_isatty=True, stderr=io.StringIO())
    result = CliRunner().invoke(
        app, ["generate", "a fox", "-o", "-", "--base-url", emulator.url], environment=env
    )
    assert result.exit_code == 2
    assert "refusing to write the image's bytes to a terminal" in env.stderr.getvalue()
    assert "-o - > image.png" in env.stderr.getvalue()
    assert result.stdout_bytes == b""
    assert emulator.request_count == 0  # refused before spending anything


def test_png_bytes_under_a_jpg_name_are_written_with_a_note(cli, emulator) -> None:
    run = cli("generate", "a fox", "-o", "fox.jpg", "--base-url", emulator.url)
    assert run.exit_code == 0
    assert Path("fox.jpg").read_bytes().startswith(b"\x89PNG")
    assert "note: the server sent a PNG: fox.jpg holds PNG bytes under a .jpg name" in run.stderr
    quiet = cli("generate", "a fox", "-o", "fox.jpg", "--force", "-q", "--base-url", emulator.url)
    assert quiet.stderr == ""
    assert (
        "note:" not in cli("generate", "a fox", "-o", "fox.png", "--base-url", emulator.url).stderr
    )


def test_dry_run_for_local_prints_no_broken_url(cli) -> None:
    run = cli("generate", "a fox", "--dry-run", "--base-url", "local")
    assert run.stdout.splitlines()[0] == (
        "POST /api/generate-images on the built-in emulator (--base-url local)"
    )
    plan = cli("generate", "a fox", "--dry-run", "--json", "--base-url", "local").json
    assert plan["url"] is None and plan["baseUrl"] == "local"
    assert plan["path"] == "/api/generate-images"
    remote = cli("generate", "a fox", "--dry-run", "--json", "--base-url", "https://x.example").json
    assert remote["url"] == "https://x.example/api/generate-images"


def test_config_list_is_aligned(cli) -> None:
    assert cli("config", "set", "output_dir", "a/rather/long/folder/name").exit_code == 0
    lines = cli("config", "list").stdout.splitlines()
    assert len({line.index("(") for line in lines}) == 1, lines
    assert len({line.index(line.split()[1]) for line in lines}) == 1, lines


def test_config_unset_leaves_no_empty_table(cli) -> None:
    assert cli("config", "set", "retries", "5").exit_code == 0
    assert cli("--profile", "ci", "config", "set", "timeout", "30").exit_code == 0
    assert cli("config", "unset", "retries").exit_code == 0
    path = Path(cli("config", "path").stdout.strip())
    text = path.read_text()
    assert "[profiles.default]" not in text and "[profiles.ci]" in text


def test_serve_given_two_signals_exits_0_and_removes_its_temporary_folder(tmp_path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    proc = subprocess.Popen(
        [*gpti2_command(), "serve", "--port", "0", "--token", "t"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(temp)},
    )
    try:
        assert proc.stdout.readline().startswith("gpti2 emulator listening on")
        assert any(temp.iterdir())  # its database lives in a temporary folder
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGINT, signal.SIGTERM):
            proc.send_signal(signum)  # one after another: an impatient user, a supervisor
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()
    assert list(temp.iterdir()) == []
