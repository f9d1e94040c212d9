"""`gpti2 generate` without typer (the fast path for scripts) behaves exactly like the full
command line: same stdout, stderr, exit code and files, for simple and odd argv alike."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpti2.cli.generate import COMMAND_FIELDS, ROOT_FIELDS, parse_simple

FAST = "import sys\nfrom gpti2.__main__ import main\nmain(sys.argv[1:])\n"
FULL = "import sys\nfrom gpti2.cli import app\napp(args=sys.argv[1:], prog_name='gpti2')\n"


def _matrix(url: str) -> list[list[str]]:
    return [
        ["generate", "a red fox", "--base-url", url],
        ["--base-url", url, "generate", "a red fox", "-o", "fox.png"],
        ["generate", "-o", "fox.png", "a red fox", "--json", f"--base-url={url}"],
        ["--json", "generate", "x", "--base-url", url, "-p", "replicate", "-m", "m", "-a", "16:9"],
        ["-q", "generate", "x", "--base-url", url, "-o", "sub/dir/"],
        ["generate", "x", "--quiet", "--no-progress", "--base-url", url, "--output", "o.png"],
        ["generate", "x", "-o", "-", "--base-url", url],
        ["generate", "x", "--dry-run", "--base-url", url],
        ["generate", "x", "--dry-run", "--json"],
        ["generate", "x", "-v", "--base-url", url, "--force", "-o", "exists.png"],
        ["generate", "x", "--base-url", url, "-o", "exists.png"],  # refused: exists
        ["generate", "x", "-p", "nope", "--base-url", url],  # server 400: exit 5
        ["generate", "x", "-p", "nope", "--base-url", url, "--json"],
        ["generate", "  ", "--base-url", url],  # empty prompt
        ["generate", "x", "-o", "-", "--json"],
        ["generate", "x", "--timeout", "soon", "--base-url", url],
        ["generate", "x", "--retries", "-1", "--base-url", url],  # not simple: full path
        ["generate", "x", "--base-url", "http://127.0.0.1:9", "--retries", "0"],
        ["generate", "x", "--profile", "missing", "--base-url", url],
        ["generate", "x", "-a", "16x9", "--base-url", url],
        ["generate", "x", "y", "--base-url", url],  # not simple: extra argument
        ["generate", "--base-url", url],  # not simple: no prompt
        ["generate", "x", "--force=yes"],  # not simple
        ["generate", "x", "--colour"],  # not simple: unknown option
        ["generate", "--help"],
    ]


def _normalise(text: str) -> str:
    text = re.sub(r"\d+ ms\b", "N ms", text)
    text = re.sub(r'"elapsedMs": \d+', '"elapsedMs": N', text)
    return re.sub(r"(?m)^< date: .*$", "< date: D", text)


def _run_all(argvs: list[list[str]], program: str, root: Path) -> list[tuple]:
    procs = []
    for n, argv in enumerate(argvs):
        cwd = root / str(n)
        cwd.mkdir(parents=True)
        (cwd / "exists.png").write_bytes(b"not an image")
        procs.append(
            (
                cwd,
                subprocess.Popen(
                    [sys.executable, "-c", program, *argv],
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env={**os.environ, "NO_COLOR": "1"},
                ),
            )
        )
    results = []
    for cwd, proc in procs:
        out, err = proc.communicate(timeout=60)
        files = {
            str(p.relative_to(cwd)): p.read_bytes() for p in sorted(cwd.rglob("*")) if p.is_file()
        }
        results.append(
            (
                proc.returncode,
                _normalise(out.decode(errors="replace")),
                _normalise(err.decode()),
                files,
            )
        )
    return results


def test_fast_path_and_full_command_line_give_identical_results(emulator, tmp_path) -> None:
    argvs = _matrix(emulator.url)
    fast = _run_all(argvs, FAST, tmp_path / "fast")
    full = _run_all(argvs, FULL, tmp_path / "full")
    for argv, a, b in zip(argvs, fast, full, strict=True):
        assert a == b, argv
    codes = {tuple(argv): result[0] for argv, result in zip(argvs, fast, strict=True)}
    assert codes[tuple(argvs[0])] == 0 and codes[tuple(argvs[11])] == 5  # the matrix bites
    assert codes[tuple(argvs[10])] == 2 and codes[tuple(argvs[17])] == 6


def test_a_simple_generate_does_not_load_typer(emulator, tmp_path) -> None:
    # Nor what made it slow: http.client (with the email package) and dataclasses (inspect).
    probe = (
        "import sys\nfrom gpti2.cli.generate import fast_main\n"
        "code = fast_main(sys.argv[1:])\n"
        "heavy = [m for m in ('typer', 'click', 'rich', 'httpx', 'http.client', 'email',"
        " 'dataclasses', 'inspect', 'pydantic', 'keyring') if m in sys.modules]\n"
        "print('CODE', code, heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, "generate", "x", "--base-url", emulator.url, "-o", "x.png"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "CODE 0 []" in out.stdout, out.stdout + out.stderr
    assert (tmp_path / "x.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["job", "start", "generate"],
        ["generate"],
        ["generate", "a", "b"],
        ["generate", "-", "--", "x"],
        ["generate", "x", "-h"],
        ["generate", "x", "--version"],
        ["generate", "x", "-qv"],
        ["generate", "x", "-ofile.png"],
        ["generate", "x", "-o"],
        ["generate", "x", "-o", "--json"],
        ["generate", "x", "-v=1"],
        ["-o", "x.png", "generate", "x"],  # a command option before the command
        ["--base-url", "generate"],
    ],
)
def test_anything_but_a_simple_command_line_goes_to_typer(argv: list[str]) -> None:
    assert parse_simple(argv) is None


def test_simple_command_lines_are_read_like_click_reads_them() -> None:
    fields, prompt = parse_simple(
        ["--profile", "a", "generate", "-", "-o", "-", "--profile=b", "-v", "--json"]
    )
    assert prompt == "-"
    assert fields == {"profile": "b", "output": "-", "verbose": True, "json_out": True}


def _options(command) -> dict[str, bool]:
    """Option name -> takes a value, from a click command."""
    return {
        name: not param.is_flag
        for param in command.params
        if param.param_type_name == "option"
        for name in param.opts
    }


def test_fast_tables_match_the_typer_commands() -> None:
    import typer.main

    from gpti2.cli import app
    from gpti2.cli.main import ROOT_OPTIONS

    group = typer.main.get_command(app)
    root = _options(group)
    for name in ("--version", "-h", "--help"):
        root.pop(name, None)
    assert {name: value for name, (_, value) in ROOT_FIELDS.items()} == root
    ctx = group.context_class(group, info_name="gpti2")
    generate = _options(group.get_command(ctx, "generate"))
    for name in ("-h", "--help"):
        generate.pop(name, None)
    assert {name: value for name, (_, value) in COMMAND_FIELDS.items()} == generate
    # Every root option is understood after the command too: moved there, or its own.
    for name, (field, _) in ROOT_FIELDS.items():
        assert name in ROOT_OPTIONS or COMMAND_FIELDS.get(name, (None,))[0] == field, name


def test_quick_route_connection_cut_mid_body_exits_6_without_sending_again(cli, scripted) -> None:
    body = b'{"image": "' + b"A" * 5000 + b'"}'
    scripted.add(200, body, headers={"Content-Type": "application/json"}, cut_after=100)
    run = cli("generate", "x", "--retries", "1", "--base-url", scripted.url)
    assert run.exit_code == 6
    assert "connection to 127.0.0.1" in run.stderr and "failed" in run.stderr
    assert "may have been generated" in run.stderr
    assert len(scripted.seen) == 1  # the image was paid for: never asked for twice


def test_verbose_dump_of_the_quick_route_shows_headers_like_before(cli, scripted) -> None:
    import base64

    from gpti2.emulator.art import placeholder_png

    image = base64.b64encode(placeholder_png("v", 8, 8)).decode()
    scripted.add(200, {"provider": "openai", "image": image}, headers={"X-Trace": "t1"})
    run = cli("generate", "x", "-v", "-o", "v.png", "--base-url", scripted.url)
    assert run.exit_code == 0, run.stderr
    assert f"> POST {scripted.url}/api/generate-images" in run.stderr
    assert "< 200 OK (" in run.stderr
    assert "< x-trace: t1" in run.stderr  # lower-case names, as httpx showed them
    seen = {k.lower(): v for k, v in scripted.seen[0].headers.items()}
    assert seen["user-agent"].startswith("gpti2/") and "authorization" not in seen


@pytest.fixture
def tls_server(tmp_path):
    """A loopback https server answering the quick route, with a self-signed certificate
    for 127.0.0.1; yields (url, certificate file)."""
    import base64
    import shutil
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from gpti2.emulator.art import placeholder_png

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    body = json.dumps(
        {"provider": "openai", "image": base64.b64encode(placeholder_png("tls", 8, 8)).decode()}
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.handle_error = lambda *args: None  # a refused handshake is the point of one test
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert
    server.shutdown()
    server.server_close()


def test_https_on_the_quick_route_verifies_certificates_like_httpx(cli, tls_server) -> None:
    url, cert = tls_server
    trusted = cli(
        "generate", "x", "-o", "t.png", "--base-url", url, env={"SSL_CERT_FILE": str(cert)}
    )
    assert trusted.exit_code == 0, trusted.stderr
    assert Path("t.png").read_bytes().startswith(b"\x89PNG")
    refused = cli("generate", "x", "-o", "u.png", "--retries", "0", "--base-url", url)
    assert refused.exit_code == 6
    assert "cannot connect to 127.0.0.1" in refused.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr
    assert not Path("u.png").exists()
