"""Hostile servers and bad input (issue 7): nothing written outside the chosen folder, no
secret in any message, no corrupt image on disk, no internal error.

Each test serves one hostile answer from a raw-socket server on 127.0.0.1, runs the CLI
end to end, and checks the exit code, the files on disk inside and outside the output
folder, and every line of output.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import socket
import stat
import tomllib
from pathlib import Path

import pytest

from conftest import TOKEN
from gpti2.emulator.art import placeholder_png
from hostile_server import HostileServer, envelope, gzipped, response

PNG = placeholder_png("hostile", 32, 32)
STATUS = "/api/aiimage/status"
START = "/api/aiimage/start"
QUICK = "/api/generate-images"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\x9d", "\x00", "\r")


@pytest.fixture(autouse=True)
def signed_in(monkeypatch):
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    monkeypatch.setenv("GPTI2_POLL_INTERVAL", "0.01")


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Any connection these tests make goes to loopback: a regression that lets a hostile
    URL through fails here instead of reaching out (169.254.169.254 and the like)."""
    import ipaddress

    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        host = address[0]
        host = host.decode("ascii") if isinstance(host, bytes) else host  # http1 sends bytes
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"a test tried to connect to {host}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def hostile():
    server = HostileServer()
    yield server
    server.close()


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """A folder holding the output folder `out` (and nothing else at first)."""
    root = tmp_path / "sandbox"
    (root / "out").mkdir(parents=True)
    return root


def tree(root: Path) -> set[str]:
    """Every path under `root` (links not followed), relative."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(str((Path(folder) / name).relative_to(root)))
    return found


def assert_clean(run, *, errors: int = 1) -> None:
    """No token (not even its start), no control character, no traceback; `errors` lines
    `error: ...`, and every stderr line one of ours."""
    text = run.stdout + run.stderr
    assert TOKEN[:10] not in text
    for char in RAW_CONTROLS:
        assert char not in text, repr(text)
    assert "Traceback" not in text and "internal error" not in text
    lines = run.stderr.splitlines()
    assert sum(line.startswith("error: ") for line in lines) == errors, run.stderr
    for line in lines:
        assert line.split(":", 1)[0] in ("error", "hint", "warning", "note"), line


def job(task_id: str = "t1", images: list | None = None, **extra) -> bytes:
    data = {"taskId": task_id, "status": "success", "images": images or ["/f/1.png"], **extra}
    return response(200, envelope(data))


def fetch(cli, server, folder: Path, task_id: str = "t1", *args: str):
    return cli("job", "fetch", task_id, "-o", str(folder), "--base-url", server.url, *args)


# -- 1. path traversal from the server ---------------------------------------------------


@pytest.mark.parametrize(
    "evil", ["../../escaped", "/tmp/gpti2-abs", "..", "a/b", "a\nb", "a\x00b", "x" * 10_000]
)
def test_a_server_job_id_never_names_a_file_outside_the_folder(cli, hostile, sandbox, evil):
    hostile.route(START, response(200, envelope({"taskId": evil, "status": "queued"})))
    hostile.route(STATUS, job(evil))
    hostile.route("/f/1.png", response(200, PNG))
    before = tree(sandbox.parent)
    run = cli("job", "start", "x", "--wait", "-o", str(sandbox / "out"), "--base-url", hostile.url)
    assert run.exit_code == 6
    assert "job id" in run.stderr
    assert run.stdout == ""  # the unsafe id is not printed either
    assert tree(sandbox.parent) == before
    assert not Path("/tmp/gpti2-abs-1.png").exists()
    assert_clean(run)


def test_fetch_names_files_after_the_id_the_user_typed(cli, hostile, sandbox) -> None:
    hostile.route(STATUS, job("../../escaped", images=["/f/1.png"]))
    hostile.route("/f/1.png", response(200, PNG))
    run = fetch(cli, hostile, sandbox / "out", "t1", "--force")
    assert run.exit_code == 0, run.stderr
    assert tree(sandbox) == {"out", "out/t1-1.png"}
    assert run.stdout == f"{sandbox / 'out' / 't1-1.png'}\n"


@pytest.mark.parametrize("typed", ["../x", "a/b", "a\x00b", "x" * 10_000, "a\x1b[2Jb"])
def test_an_unsafe_typed_id_is_refused_before_any_request(cli, hostile, sandbox, typed):
    for command in (["job", "fetch", typed, "-o", str(sandbox / "out")], ["job", "status", typed]):
        run = cli(*command, "--base-url", hostile.url)
        assert run.exit_code == 2, run.stderr
        assert "bad job id" in run.stderr
        assert_clean(run)
    assert hostile.requests == []
    assert tree(sandbox) == {"out"}


# -- 2. the token in messages --------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["tok_abcdef\r\nX-Evil: 1", "tok_abc\tdef123", "tok_ÄÖÜ_nonascii", "tok_a b c"]
)
def test_a_token_a_header_cannot_carry_is_refused_before_sending(
    cli, hostile, monkeypatch, token
) -> None:
    monkeypatch.setenv("GPTI2_TOKEN", token)
    run = cli("job", "status", "t1", "--base-url", hostile.url, "-v")
    assert run.exit_code == 3, run.stderr
    assert "cannot be sent in an HTTP header" in run.stderr
    assert "Illegal header" not in run.stderr
    for part in token.split():
        assert len(part) < 6 or part not in run.stdout + run.stderr
    assert hostile.requests == []


def test_auth_login_refuses_a_non_ascii_token(cli) -> None:
    run = cli("auth", "login", "--with-token", input="tok_ünïcode_1234\n")
    assert run.exit_code == 2
    assert "non-ASCII" in run.stderr and "tok_" not in run.stderr


@pytest.mark.parametrize("name", ["bad\r\nname", "bad\tname", "nämé", "a;b"])
def test_a_cookie_name_a_header_cannot_carry_is_refused(cli, hostile, name) -> None:
    run = cli("config", "set", "cookie_name", name)
    assert run.exit_code == 2
    assert_clean(run)
    config = Path(cli("config", "path").stdout.strip())
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[profiles.default]\nauth_scheme = "cookie"\ncookie_name = {json.dumps(name)}\n'
    )
    run = cli("job", "status", "t1", "--base-url", hostile.url)
    assert run.exit_code == 2
    assert "cookie_name" in run.stderr
    assert hostile.requests == []


def test_an_echoed_token_is_redacted_before_the_message_is_cut(cli, hostile) -> None:
    """The token sits across the 200-character cut of the error text."""
    message = "x" * 180 + " " + TOKEN + " tail"
    hostile.route(STATUS, response(400, message, headers={"Content-Type": "text/plain"}))
    run = cli("job", "status", "t1", "--base-url", hostile.url)
    assert run.exit_code == 5
    assert "[redacted]" in run.stderr or "[reda" in run.stderr
    assert_clean(run)


def test_an_echoed_token_is_redacted_before_the_verbose_dump_cuts_strings(cli, hostile) -> None:
    long_value = "y" * 50 + TOKEN + "z" * 100
    hostile.route(
        STATUS, response(200, envelope({"taskId": "t1", "status": "queued", "note": long_value}))
    )
    run = cli("job", "status", "t1", "--base-url", hostile.url, "-v")
    assert run.exit_code == 0, run.stderr
    assert TOKEN[:10] not in run.stderr and "[redacted]" in run.stderr


# -- 7. terminal and stdout injection --------------------------------------------------------

ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\x9b31mred\r\n"


def test_escape_sequences_from_the_server_never_reach_the_terminal(cli, hostile) -> None:
    hostile.route(STATUS, response(500, {"error": f"boom {ESCAPES} end"}, reason="Oops"))
    run = cli("job", "status", "t1", "--base-url", hostile.url, "--retries", "0", "-v")
    assert run.exit_code == 6
    assert "boom" in run.stderr and "end" in run.stderr
    for char in RAW_CONTROLS:
        assert char not in run.stderr


def test_a_failed_jobs_error_and_an_odd_status_are_shown_clean(cli, hostile) -> None:
    hostile.route(
        STATUS,
        response(200, envelope({"taskId": "t1", "status": "failed", "error": ESCAPES})),
    )
    run = cli("job", "status", "t1", "--base-url", hostile.url)
    assert run.exit_code == 7
    assert run.stdout == "failed\n"
    assert_clean(run)
    hostile.route(STATUS, response(200, envelope({"taskId": "t1", "status": ESCAPES})))
    run = cli("job", "status", "t1", "--base-url", hostile.url, "--json")
    assert run.exit_code == 0
    assert json.loads(run.stdout)["rawStatus"] == ESCAPES  # exact for scripts, escaped
    assert_clean(run, errors=0)


# -- 4. --force over special files, 8. a dangling link -----------------------------------------


def test_force_never_replaces_a_fifo_or_a_socket(cli, hostile, sandbox) -> None:
    hostile.route(QUICK, response(200, {"image": base64.b64encode(PNG).decode()}))
    fifo = sandbox / "out" / "pipe.png"
    os.mkfifo(fifo)
    sock_path = sandbox / "out" / "s.png"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock_path))
    try:
        for target in (fifo, sock_path):
            run = cli("generate", "x", "-o", str(target), "--force", "--base-url", hostile.url)
            assert run.exit_code == 2, run.stderr
            assert "not a regular file" in run.stderr
            assert_clean(run)
    finally:
        listener.close()
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and stat.S_ISSOCK(os.lstat(sock_path).st_mode)
    assert hostile.requests == []  # found before spending anything


def test_a_link_to_a_device_is_refused_even_with_force(cli, hostile, sandbox) -> None:
    link = sandbox / "out" / "null.png"
    link.symlink_to("/dev/null")
    run = cli("generate", "x", "-o", str(link), "--force", "--base-url", hostile.url)
    assert run.exit_code == 2 and "character device" in run.stderr
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert hostile.requests == []


def test_a_dangling_link_as_output_is_refused_before_the_request(cli, hostile, sandbox) -> None:
    link = sandbox / "out" / "gone.png"
    link.symlink_to(sandbox / "nowhere" / "x.png")
    run = cli("generate", "x", "-o", str(link), "--base-url", hostile.url)
    assert run.exit_code == 2
    assert "does not exist" in run.stderr
    assert hostile.requests == []
    assert tree(sandbox) == {"out", "out/gone.png"}
    assert_clean(run)


def test_a_full_disk_is_exit_2_naming_the_folder_with_nothing_left(
    cli, hostile, sandbox, monkeypatch
) -> None:
    import gpti2.files

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    hostile.route(QUICK, response(200, {"image": base64.b64encode(PNG).decode()}))
    hostile.route(STATUS, job("t1"))
    hostile.route("/f/1.png", response(200, PNG))
    monkeypatch.setattr(gpti2.files.os, "fsync", full)
    out = sandbox / "out"
    for run in (
        cli("generate", "x", "-o", str(out), "--base-url", hostile.url),
        fetch(cli, hostile, out),
    ):
        assert run.exit_code == 2, run.stderr
        assert f"no space left on the device holding {out}" in run.stderr
        assert_clean(run)
        assert tree(sandbox) == {"out"}


# -- 9. temporary files and signals ----------------------------------------------------------


def test_an_interrupt_right_after_the_temporary_file_exists_leaves_nothing(
    cli, hostile, sandbox, monkeypatch
) -> None:
    """The signal lands between creating the temporary file and using it."""
    import gpti2.files

    real_fdopen = os.fdopen

    def interrupted(fd: int, *args, **kwargs):
        real_fdopen(fd, *args, **kwargs).close()
        raise KeyboardInterrupt

    hostile.route(STATUS, job("t1", images=["/f/1.png", "/f/2.png"]))
    hostile.route("/f/1.png", response(200, PNG))
    hostile.route("/f/2.png", response(200, PNG))
    monkeypatch.setattr(gpti2.files.os, "fdopen", interrupted)
    run = fetch(cli, hostile, sandbox / "out")
    assert run.exit_code == 130
    assert tree(sandbox) == {"out"}


# -- 10. loopback means loopback ------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.localhost", "localhost.evil.example", "127.0.0.1.nip.io"])
def test_only_real_loopback_hosts_get_credentials_over_plain_http(cli, host) -> None:
    run = cli("job", "status", "t1", "--base-url", f"http://{host}:9")
    assert run.exit_code == 2
    assert "plain http" in run.stderr
    assert_clean(run)


def test_loopback_rule() -> None:
    from gpti2.client import is_loopback

    assert all(map(is_loopback, ["localhost", "127.0.0.1", "127.8.9.10", "[::1]", "LOCALHOST"]))
    assert not any(map(is_loopback, ["evil.localhost", "localhost.", "128.0.0.1", "::2"]))


def test_the_config_file_stays_valid_toml_after_a_refused_control_character(cli) -> None:
    assert cli("config", "set", "model", "dall-e-3").exit_code == 0
    for value in ("bad\x7fmodel", "bad\x1b[2Jmodel", "two\nlines"):
        run = cli("config", "set", "model", value)
        assert run.exit_code == 2
        assert_clean(run)
    path = Path(cli("config", "path").stdout.strip())
    assert tomllib.loads(path.read_text())["profiles"]["default"]["model"] == "dall-e-3"


# -- 3. corrupt images are never kept ----------------------------------------------------------


def _quick(image: str) -> bytes:
    return response(200, {"provider": "openai", "image": image})


@pytest.mark.parametrize(
    "image",
    [
        base64.b64encode(PNG[: len(PNG) // 2]).decode(),  # a truncated PNG
        base64.b64encode(PNG[:-12]).decode(),  # no IEND
        base64.b64encode(PNG[:40] + b"\x00" * 8 + PNG[48:]).decode(),  # a bad CRC
        "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"junk" * 9).decode(),
        base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 40).decode(),  # JPEG, no SOF/EOI
        base64.b64encode(b"GIF89a" + b"\x01" * 20).decode(),  # no trailer
        base64.b64encode(b"RIFF\xff\x00\x00\x00WEBPVP8 " + b"\x00" * 20).decode(),
    ],
)
def test_a_corrupt_quick_image_is_never_written(cli, hostile, sandbox, image) -> None:
    hostile.route(QUICK, _quick(image))
    run = cli("generate", "x", "-o", str(sandbox / "out"), "--base-url", hostile.url)
    assert run.exit_code == 6, run.stderr
    assert "malformed response" in run.stderr
    assert tree(sandbox) == {"out"}
    assert_clean(run)


def test_url_safe_base64_is_read_as_such(cli, hostile, sandbox) -> None:
    image = placeholder_png("urlsafe", 300, 200)
    encoded = base64.urlsafe_b64encode(image).decode()
    assert "-" in encoded or "_" in encoded
    hostile.route(QUICK, _quick(encoded))
    target = sandbox / "out" / "u.png"
    run = cli("generate", "x", "-o", str(target), "--base-url", hostile.url)
    assert run.exit_code == 0, run.stderr
    assert target.read_bytes() == image


CUT = PNG[: len(PNG) // 2]


@pytest.mark.parametrize(
    "answer",
    [
        response(
            206,
            CUT,
            reason="Partial Content",
            headers={"Content-Range": f"bytes 0-{len(CUT) - 1}/{len(PNG)}"},
        ),
        response(200, CUT, length=None),  # cut, no Content-Length: the end of the stream
        response(200, CUT, length=len(CUT) - 10),  # a Content-Length shorter than the body
        response(200, gzipped(PNG)[:-20], headers={"Content-Encoding": "gzip"}),
        response(200, PNG, headers={"Content-Encoding": "gzip"}),  # not gzip at all
        response(304, b"", reason="Not Modified"),
        response(300, b"", reason="Multiple Choices"),
        response(302, b"", reason="Found"),  # no Location
        response(302, b"", reason="Found", headers={"Location": "http://127.0.0.1:99999/x"}),
        response(302, b"", reason="Found", headers={"Location": "http://127.0.0.1:+80/x"}),
        response(302, b"", reason="Found", headers={"Location": "http://[::1/x"}),
        response(302, b"", reason="Found", headers={"Location": "http://169.254.169.254/x"}),
        response(307, b"", reason="Temporary", headers={"Location": "ftp://127.0.0.1/x"}),
    ],
)
def test_a_bad_download_is_exit_6_with_nothing_on_disk(cli, hostile, sandbox, answer) -> None:
    hostile.route(STATUS, job("t1"))
    hostile.route("/f/1.png", answer)
    run = fetch(cli, hostile, sandbox / "out", "t1", "--retries", "0")
    assert run.exit_code == 6, run.stderr
    assert tree(sandbox) == {"out"}
    assert_clean(run)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:99999/a.png",
        "http://127.0.0.1:+80/a.png",
        "http://[::1/a.png",
        "ftp://127.0.0.1/a.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/a.png",
    ],
)
def test_a_bad_or_link_local_image_url_is_exit_6(cli, hostile, sandbox, url) -> None:
    hostile.route(STATUS, job("t1", images=[url]))
    run = fetch(cli, hostile, sandbox / "out", "t1", "--retries", "0")
    assert run.exit_code == 6, run.stderr
    assert tree(sandbox) == {"out"}
    assert_clean(run)


def test_gzip_on_a_plain_json_body_is_exit_6(cli, hostile) -> None:
    hostile.route(
        STATUS, response(200, envelope({"taskId": "t1"}), headers={"Content-Encoding": "gzip"})
    )
    run = cli("job", "status", "t1", "--base-url", hostile.url, "--retries", "0")
    assert run.exit_code == 6
    assert "Content-Encoding" in run.stderr
    assert_clean(run)


# -- 6. the timeout bounds the whole request -----------------------------------------------------


def test_a_dripping_body_fails_at_the_timeout(cli, hostile, sandbox) -> None:
    import time

    hostile.route(STATUS, job("t1"))
    head = response(200, b"", length=len(PNG))
    hostile.route("/f/1.png", [(head, 0.0)] + [(PNG[i : i + 1], 0.2) for i in range(40)])
    began = time.monotonic()
    run = fetch(cli, hostile, sandbox / "out", "t1", "--timeout", "1", "--retries", "0")
    took = time.monotonic() - began
    assert run.exit_code == 6, run.stderr
    assert took < 2.5
    assert "within 1 s" in run.stderr
    assert tree(sandbox) == {"out"}
    assert_clean(run)


# -- exit 1 on outside input: each its documented code --------------------------------------------


def test_infinite_credits_are_read_as_unknown(cli, hostile) -> None:
    hostile.route(
        START,
        response(
            200,
            '{"code":0,"data":{"taskId":"t1","status":"queued",'
            '"creditsRemaining":Infinity,"progress":NaN}}',
        ),
    )
    run = cli("job", "start", "x", "--json", "--base-url", hostile.url)
    assert run.exit_code == 0, run.stderr
    assert json.loads(run.stdout)["creditsRemaining"] is None
    assert "Infinity" not in run.stdout


def test_deeply_nested_json_is_a_malformed_response(cli, hostile) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    hostile.route(STATUS, response(200, deep, headers={"Content-Type": "application/json"}))
    hostile.route(QUICK, response(200, deep, headers={"Content-Type": "application/json"}))
    for run in (
        cli("job", "status", "t1", "--base-url", hostile.url, "--retries", "0"),
        cli("generate", "x", "--base-url", hostile.url, "--retries", "0"),
    ):
        assert run.exit_code == 6, run.stderr
        assert "malformed response" in run.stderr
        assert_clean(run)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:99999", "http://127.0.0.1:+80", "http://[::1", "http://h:-1"]
)
def test_a_bad_base_url_is_exit_2(cli, url) -> None:
    run = cli("job", "status", "t1", "--base-url", url)
    assert run.exit_code == 2, run.stderr
    assert "--base-url" in run.stderr
    assert_clean(run)


def _manifest(folder: Path) -> Path:
    path = folder / "assets.toml"
    path.write_text('[defaults]\noutput_dir = "gen"\n\n[[images]]\nname = "hero"\nprompt = "x"\n')
    return path


@pytest.mark.parametrize("content", ["[]", '"x"', "5", "null", "[" * 100_000 + "]" * 100_000])
def test_a_lock_file_of_the_wrong_shape_is_exit_2(cli, emulator, sandbox, content) -> None:
    manifest = _manifest(sandbox)
    (sandbox / "assets.lock.json").write_text(content)
    run = cli("batch", str(manifest), "--base-url", emulator.url)
    assert run.exit_code == 2, run.stderr
    assert "lock file" in run.stderr
    assert_clean(run)


def test_an_output_linked_outside_the_manifest_folder_is_never_followed(
    cli, emulator, sandbox
) -> None:
    manifest = _manifest(sandbox)
    outside = sandbox.parent / "outside.png"
    outside.write_bytes(b"precious")
    (sandbox / "gen").mkdir()
    (sandbox / "gen" / "hero.png").symlink_to(outside)
    run = cli("batch", str(manifest), "--base-url", emulator.url)
    assert run.exit_code == 2, run.stderr
    assert "already exists" in run.stderr
    assert outside.read_bytes() == b"precious"
    assert_clean(run)
    run = cli("batch", str(manifest), "--force", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    assert outside.read_bytes() == b"precious"  # the link was replaced, not followed
    assert not (sandbox / "gen" / "hero.png").is_symlink()


def _big_png() -> bytes:
    """A valid PNG of about 1 MiB (random IDAT bytes with a correct checksum), larger than
    a pipe's buffer."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 512, 512, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", os.urandom(1 << 20))
        + chunk(b"IEND", b"")
    )


def test_a_closed_stdout_pipe_is_a_quiet_exit(hostile) -> None:
    import subprocess

    from conftest import gpti2_command

    hostile.route(QUICK, _quick(base64.b64encode(_big_png()).decode()))
    command = " ".join(gpti2_command())
    proc = subprocess.run(
        [
            "bash",
            "-c",
            f"{command} generate x -o - --base-url {hostile.url}"
            ' | head -c 10 > /dev/null; echo "status=${PIPESTATUS[0]}" >&2',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stderr.strip() == "status=141", proc.stderr


# -- limits ----------------------------------------------------------------------------------


def test_images_taken_from_one_job_are_capped(cli, hostile, sandbox) -> None:
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    hostile.route(STATUS, job("t1", images=[data_url] * 7))
    assert cli("config", "set", "max_images", "3").exit_code == 0
    run = fetch(cli, hostile, sandbox / "out")
    assert run.exit_code == 0, run.stderr
    assert tree(sandbox) == {"out", "out/t1-1.png", "out/t1-2.png", "out/t1-3.png"}
    assert "lists 7 images; took the first 3" in run.stderr
    assert_clean(run, errors=0)


def test_a_token_file_readable_by_others_is_warned_about_once(cli, hostile, monkeypatch) -> None:
    monkeypatch.delenv("GPTI2_TOKEN")
    login = cli(
        "auth",
        "login",
        "--with-token",
        "--insecure-storage",
        "--base-url",
        hostile.url,
        input=TOKEN + "\n",
    )
    assert login.exit_code == 0, login.stderr
    from gpti2.credentials import token_file

    assert stat.S_IMODE(token_file().stat().st_mode) == 0o600
    token_file().chmod(0o644)
    hostile.route(STATUS, job("t1"))
    run = cli("job", "status", "t1", "--base-url", hostile.url)
    assert run.exit_code == 0, run.stderr
    assert run.stderr.count("can be read by other users") == 1
    assert_clean(run, errors=0)


# -- the emulator ------------------------------------------------------------------------------


def test_the_emulator_refuses_a_huge_aspect_ratio_before_charging(cli, emulator) -> None:
    huge = "1:" + "9" * 5000
    for command in (["generate", "x"], ["job", "start", "x"]):
        run = cli(*command, "-a", huge, "--base-url", emulator.url)
        assert run.exit_code == 5, run.stderr
        assert_clean(run)
    assert emulator.store.credits(TOKEN) == 100


@pytest.mark.parametrize("length", ["-1", "abc", "+5", str(10**12)])
def test_the_emulator_answers_a_bad_content_length_at_once(emulator, length) -> None:
    host, port = emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=2) as conn:
        conn.sendall(
            b"POST /api/generate-images HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {length}\r\n\r\n".encode()
        )
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer


def test_a_client_that_leaves_is_one_log_line_and_no_traceback(make_emulator, capfd) -> None:
    lines: list[str] = []
    emu = make_emulator(log=lines.append, image_size=2048)
    host, port = emu.url.removeprefix("http://").split(":")
    body = b'{"prompt": "x", "provider": "openai", "modelId": "m"}'
    for _ in range(3):
        conn = socket.create_connection((host, int(port)), timeout=2)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.sendall(
            b"POST /api/generate-images HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        conn.close()  # before the answer: a reset
    import time

    time.sleep(0.5)
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert all("\n" not in line for line in lines)
    assert len([line for line in lines if "disconnected" in line]) <= 3


@pytest.mark.parametrize("signum", [2, 15])
def test_a_signal_mid_download_leaves_no_part_file(hostile, sandbox, signum) -> None:
    import subprocess
    import time

    from conftest import gpti2_command

    hostile.route(STATUS, job("t1"))
    head = response(200, b"", length=len(PNG))
    # Ten slow pieces, then the connection held open: the signal, not the server, ends it,
    # however late a loaded machine delivers it.
    drip = [(PNG[i : i + 64], 0.1) for i in range(0, 640, 64)]
    hostile.route("/f/1.png", [(head, 0.0), *drip, (b"", 30.0)])
    out = sandbox / "out"
    proc = subprocess.Popen(
        [*gpti2_command(), "job", "fetch", "t1", "-o", str(out), "--base-url", hostile.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 10
    while not list(out.glob(".*.part")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(out.glob(".*.part")), "the download never started"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 128 + signum, err
    assert tree(sandbox) == {"out"}
    assert "Traceback" not in err


def test_server_text_in_the_batch_summary_is_not_markup(cli, hostile, sandbox) -> None:
    manifest = sandbox / "m.toml"
    manifest.write_text('[[images]]\nname = "hero"\nprompt = "x"\n')
    hostile.route(QUICK, response(400, {"error": f"bad [/x] [bold]thing {ESCAPES}"}))
    run = cli("batch", str(manifest), "--base-url", hostile.url)
    assert run.exit_code == 5, run.stderr
    assert "bad [/x] [bold]thing" in run.stderr
    for char in RAW_CONTROLS:
        assert char not in run.stderr
    assert "internal error" not in run.stderr


def test_a_really_full_disk_leaves_nothing(cli, hostile, tmp_path) -> None:
    """A 64 KiB tmpfs (needs root and mount rights; skipped elsewhere) and a 1 MiB image."""
    import subprocess

    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        hostile.route(QUICK, _quick(base64.b64encode(_big_png()).decode()))
        run = cli("generate", "x", "-o", str(small), "--base-url", hostile.url)
        assert run.exit_code == 2, run.stderr
        assert f"no space left on the device holding {small}" in run.stderr
        assert os.listdir(small) == []
        assert_clean(run)
    finally:
        subprocess.run(["umount", str(small)], check=False)


# -- the rules, unit-tested ------------------------------------------------------------------


def test_shown_text_is_redacted_before_it_is_cut_or_collapsed() -> None:
    from gpti2.display import add_secret, shown

    secret = "sek_" + "q" * 30
    add_secret(secret)
    assert secret[:8] not in shown("x" * 190 + secret, 200)
    assert shown(f"a\t{secret}\nb") == "a [redacted] b"
    assert shown("\x1b]52;c;ZXZpbA==\x07ok\x1b[2J \x9b31mred") == "ok red"
    assert shown("id\nsecond line") == "id second line"


def _jpeg(scan: bytes = b"\x12\x34", end: bytes = b"\xff\xd9") -> bytes:
    sof = b"\xff\xc0\x00\x0b\x08\x00\x10\x00\x20\x01\x01\x11\x00"
    sos = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + b"\xff\xe0\x00\x04ab" + sof + sos + scan + end


def _webp(body: bytes = b"VP8L" + b"\x05\x00\x00\x00" + b"\x2f" + b"\x00" * 5) -> bytes:
    return b"RIFF" + (4 + len(body)).to_bytes(4, "little") + b"WEBP" + body


@pytest.mark.parametrize(
    ("good", "cut"),
    [
        (PNG, PNG[:-1]),
        (_jpeg(), _jpeg(end=b"")),
        (_jpeg() + b"trailing", _jpeg(scan=b"\x12")[:-2]),
        (b"GIF89a" + b"\x00" * 7 + b"\x3b", b"GIF89a" + b"\x00" * 8),
        (_webp(), _webp()[:-3]),
    ],
)
def test_image_structure_rule(good: bytes, cut: bytes) -> None:
    from gpti2.images import sniff_format, structure_problem

    fmt = sniff_format(good)
    assert structure_problem(good, fmt) is None
    assert structure_problem(cut, fmt) is not None


def _chunked_forever(piece: bytes, every: float, count: int = 400) -> list:
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    return [(head, 0.0)] + [(chunk, every)] * count


@pytest.mark.parametrize("kind", ["drip", "endless chunked"])
def test_the_quick_route_timeout_bounds_the_body_too(cli, hostile, sandbox, kind) -> None:
    import time

    if kind == "drip":
        body = json.dumps({"image": base64.b64encode(PNG).decode()}).encode()
        head = response(200, b"", length=len(body), headers={"Content-Type": "application/json"})
        answer = [(head, 0.0)] + [(body[i : i + 1], 0.2) for i in range(40)]
    else:
        answer = _chunked_forever(b'{"image": "' + b"A" * 100, 0.02)
    hostile.route(QUICK, answer)
    began = time.monotonic()
    run = cli(
        "generate", "x", "-o", str(sandbox / "out"), "--timeout", "1", "--base-url", hostile.url
    )
    assert run.exit_code == 6, run.stderr
    assert time.monotonic() - began < 2.5
    assert tree(sandbox) == {"out"}
    assert_clean(run)


def test_an_endless_chunked_download_stops_at_the_timeout(cli, hostile, sandbox) -> None:
    import time

    hostile.route(STATUS, job("t1"))
    hostile.route("/f/1.png", _chunked_forever(PNG[:100], 0.02))
    began = time.monotonic()
    run = fetch(cli, hostile, sandbox / "out", "t1", "--timeout", "1", "--retries", "0")
    assert run.exit_code == 6, run.stderr
    assert time.monotonic() - began < 2.5
    assert tree(sandbox) == {"out"}
    assert_clean(run)


@pytest.mark.parametrize("route", ["status", "quick"])
def test_headers_dripping_in_stop_at_the_timeout(cli, hostile, route) -> None:
    import time

    head = b"HTTP/1.1 200 OK\r\nX-Slow: "
    hostile.route(
        STATUS if route == "status" else QUICK, [(head, 0.0)] + [(b"a", 0.2) for _ in range(50)]
    )
    command = ["job", "status", "t1"] if route == "status" else ["generate", "x"]
    began = time.monotonic()
    run = cli(*command, "--timeout", "1", "--retries", "0", "--base-url", hostile.url)
    assert run.exit_code == 6, run.stderr
    assert time.monotonic() - began < 2.5
    assert "within 1 s" in run.stderr
    assert_clean(run)


# -- the quick route's own HTTP/1.1 reading (gpti2/http1.py) ---------------------------

QUICK_OK = json.dumps({"provider": "openai", "image": base64.b64encode(PNG).decode()}).encode()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 \xb2\xb2\xb2 OK\r\nContent-Length: 0\r\n\r\n",  # superscript digits
        b"HTTP/1.1 099 Low\r\nContent-Length: %d\r\n\r\n%s" % (len(QUICK_OK), QUICK_OK),
        b"HTTP/1.1 000 Zero\r\nContent-Length: %d\r\n\r\n%s" % (len(QUICK_OK), QUICK_OK),
        b"HTTP/1.1 101 Switching Protocols\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d"
        b"\r\n\r\n%s" % (len(QUICK_OK), QUICK_OK),
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\n" + QUICK_OK,
        b"HTTP/1.1 200 OK\r\nContent-Length: \xa0%d\r\n\r\n%s" % (len(QUICK_OK), QUICK_OK),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\x0b\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
        % (len(QUICK_OK), QUICK_OK),
        b"HTTP/1.1 200 OK\r\nX-Fold: a\r\n"  # one header folded over 300 lines
        + b"".join(b" %s\r\n" % (b"c" * 1000) for _ in range(300))
        + b"Content-Length: %d\r\n\r\n%s" % (len(QUICK_OK), QUICK_OK),
        b"HTTP/1.1 302 Found\r\nLocation: http://[::1/x\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=[
        "superscript-status",
        "status-099",
        "status-000",
        "unasked-101",
        "superscript-length",
        "nbsp-length",
        "vtab-coding",
        "endless-folding",
        "unclosed-ipv6-location",
    ],
)
def test_a_quick_answer_http1_cannot_read_is_exit_6(cli, hostile, sandbox, answer) -> None:
    hostile.route(QUICK, answer)
    out = sandbox / "out" / "x.png"
    run = cli("generate", "x", "-o", str(out), "--retries", "0", "--base-url", hostile.url)
    assert run.exit_code == 6, run.stderr
    assert tree(sandbox) == {"out"}
    assert_clean(run, errors=1)


def test_a_utf8_location_is_followed_as_utf8(cli, hostile, sandbox) -> None:
    hostile.route(QUICK, b"HTTP/1.1 307 T\r\nLocation: /caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n")
    hostile.route("/caf%C3%A9", response(200, QUICK_OK, headers={"Content-Type": "x/json"}))
    out = sandbox / "out" / "x.png"
    run = cli("generate", "x", "-o", str(out), "--retries", "0", "--base-url", hostile.url)
    assert run.exit_code == 0, run.stderr
    assert out.read_bytes() == PNG


@pytest.mark.parametrize("command", [["generate", "x"], ["job", "status", "x"]])
@pytest.mark.parametrize(
    ("var", "kind"), [("SSL_CERT_FILE", "missing"), ("SSL_CERT_FILE", "empty"),
                      ("SSL_CERT_FILE", "folder"), ("SSL_CERT_DIR", "missing")],
)  # fmt: skip
def test_unreadable_certificates_are_named_as_a_local_problem(
    cli, sandbox, tmp_path, command, var, kind
) -> None:
    given = tmp_path / "certs"
    if kind == "empty":
        given.write_text("")
    elif kind == "folder":
        given.mkdir()
    run = cli(
        *command, "--retries", "0", "--base-url", "https://127.0.0.1:9",
        env={"SSL_CERT_FILE": "", var: str(given), "GPTI2_TOKEN": TOKEN},
    )  # fmt: skip
    assert run.exit_code == 2, run.stderr
    assert var in run.stderr and str(given) in run.stderr
    assert f"hint: point {var} at" in run.stderr
    assert_clean(run)


@pytest.fixture
def blackhole():
    """A loopback port whose accept queue is full: the kernel drops further SYNs, so a
    connect hangs until the client gives up."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}"
    for sock in [*fillers, listener]:
        sock.close()


@pytest.mark.parametrize("command", [["generate", "x"], ["job", "start", "x"]])
def test_a_connect_that_outlives_the_timeout_was_not_sent_and_is_retried(
    cli, sandbox, blackhole, command
) -> None:
    # --timeout 1 is under the 15 s connect cap: the whole-request deadline is what ends
    # the connect, and still nothing was sent (generate: http1; job start: httpx).
    out = sandbox / "out" / "x.png"
    run = cli(
        *command, "-o", str(out), "--timeout", "1", "--retries", "1", "-v",
        "--base-url", blackhole, env={"GPTI2_TOKEN": TOKEN},
    )  # fmt: skip
    assert run.exit_code == 6, run.stderr
    assert "retry 1/1" in run.stderr
    assert "cannot connect to 127.0.0.1" in run.stderr
    assert "may have been generated" not in run.stderr
    assert tree(sandbox) == {"out"}


@pytest.mark.parametrize("command", [["generate", "x"], ["job", "start", "x"]])
def test_a_redirect_hop_that_never_connects_is_not_sent_either(
    cli, hostile, blackhole, command
) -> None:
    # The first hop uses most of the time; the hop to the full accept queue must still
    # end as a connect timeout (its own connect limit is what is left of the deadline).
    route = QUICK if command[0] == "generate" else "/api/aiimage/start"
    moved = response(307, b"", reason="Moved", headers={"Location": f"{blackhole}/x"})
    hostile.route(route, [(b"", 0.8), (moved, 0.0)])
    run = cli(
        *command, "--timeout", "1.5", "--retries", "1", "-v", "--base-url", hostile.url,
        env={"GPTI2_TOKEN": TOKEN},
    )  # fmt: skip
    assert run.exit_code == 6, run.stderr
    assert "retry 1/1" in run.stderr
    assert "cannot connect to 127.0.0.1" in run.stderr
    assert "may have been" not in run.stderr


@pytest.mark.parametrize(
    ("command", "url", "complaint"),
    [
        (["generate", "x"], "http://ä..example", "not a valid domain name"),
        (["job", "status", "x"], "https://☃.example", "not a valid domain name"),
        (["generate", "x"], "https://☃.example", "not a valid domain name"),
        (["job", "status", "x"], "http://[::1]x/", "after its [IPv6] address"),
        (["generate", "x"], "http://[::1]x/", "after its [IPv6] address"),
    ],
)
def test_a_host_no_http_client_can_reach_is_a_bad_base_url(cli, command, url, complaint) -> None:
    run = cli(*command, "--base-url", url, env={"GPTI2_TOKEN": TOKEN})
    assert run.exit_code == 2, run.stderr
    assert complaint in run.stderr
    assert_clean(run)


def test_verbose_says_where_it_cuts_a_long_body(cli, hostile) -> None:
    page = "<html><title>Not here</title><body>" + "<div>x</div>" * 1000 + "</body></html>"
    hostile.route(QUICK, response(404, page, headers={"Content-Type": "text/html"}))
    run = cli("-v", "generate", "x", "--retries", "0", "--base-url", hostile.url)
    assert run.exit_code == 5, run.stderr
    [body] = [line for line in run.stderr.splitlines() if line.startswith("< <html>")]
    assert body.endswith(f"… (body of {len(page)} bytes)")
    assert len(body) < 2100


def test_only_a_404_blames_a_base_url_that_ends_in_api(cli, hostile) -> None:
    # A server that serves its routes under /api/... : a 422 there is about the request.
    hostile.route("/api/api/generate-images", response(422, {"error": "unsafe prompt"}))
    run = cli("generate", "x", "--retries", "0", "--base-url", f"{hostile.url}/api")
    assert run.exit_code == 5, run.stderr
    assert "unsafe prompt" in run.stderr and "holds the route" not in run.stderr


def test_a_failed_redirect_hop_is_named_by_its_own_host(cli, hostile, blackhole) -> None:
    target = blackhole.replace("127.0.0.1", "localhost")
    moved = response(307, b"", reason="Moved", headers={"Location": f"{target}/x"})
    hostile.route(QUICK, moved)
    run = cli("generate", "x", "--timeout", "1", "--retries", "0", "--base-url", hostile.url)
    assert run.exit_code == 6, run.stderr
    assert f"cannot connect to {target.removeprefix('http://')}" in run.stderr
