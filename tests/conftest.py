"""Fixtures: an isolated user, the project's emulator on a free loopback port, a scripted
server for the failures the emulator does not produce, and a runner for the CLI."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gpti2.cli import app
from gpti2.emulator import EmulatorConfig, running_emulator

TOKEN = "tok_test_7f3a9c1e5b2d4f60a8e1"
OTHER_TOKEN = "tok_other_0c4e8a2f6b1d3e5a7c9f"
TESTS = Path(__file__).parent

# A shell's background job (a CI runner, `cmd &`) starts with SIGINT ignored, and ignored
# signals stay ignored across exec: every gpti2 the tests start would then shrug off the
# Ctrl-C they send it. A user's terminal delivers it, so the tests restore that.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_user(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh HOME and config folder, no GPTI2_* variables, the test keyring backend."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("GPTI2_") or name in ("CI", "NO_COLOR"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    # The history lives outside tmp_path, so tests that compare a folder tree see only
    # the files a command wrote there.
    data = tmp_path_factory.mktemp("data") / "gpti2"
    monkeypatch.setenv("GPTI2_DATA_DIR", str(data))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    use_keyring("fake_keyring.MemoryKeyring", monkeypatch)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


def use_keyring(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Choose the keyring backend for this process and for the subprocesses it starts."""
    import importlib

    import keyring

    module, _, name = path.rpartition(".")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", path)
    keyring.set_keyring(getattr(importlib.import_module(module), name)())


@pytest.fixture
def emulator():
    """The project's emulator on 127.0.0.1, port 0, with two known tokens."""
    config = EmulatorConfig(port=0, tokens=[TOKEN, OTHER_TOKEN], job_seconds=0.6, seed=7)
    with running_emulator(config) as emu:
        yield emu


@pytest.fixture
def make_emulator():
    """Start emulators with custom flags; all are stopped after the test."""
    stack = []

    def start(**kwargs: Any):
        kwargs.setdefault("tokens", [TOKEN, OTHER_TOKEN])
        kwargs.setdefault("port", 0)
        manager = running_emulator(EmulatorConfig(**kwargs))
        stack.append(manager)
        return manager.__enter__()

    yield start
    for manager in reversed(stack):
        manager.__exit__(None, None, None)


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    stdout_bytes: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli():
    """Run gpti2 in-process: cli("generate", "x", input=..., env={...})."""
    runner = CliRunner()

    def run(*args: str, input: str | bytes | None = None, env: dict[str, str] | None = None):
        result = runner.invoke(app, list(args), input=input, env=env)
        return Run(result.exit_code, result.stdout, result.stderr, result.stdout_bytes)

    return run


@dataclass
class Canned:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    cut_after: int | None = None  # send only this many body bytes, then drop the connection


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """A loopback HTTP server answering from a script; the last answer repeats."""

    def __init__(self) -> None:
        self.script: list[Canned] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with outer._lock:
                    outer.seen.append(Seen(self.command, self.path, dict(self.headers), body))
                    canned = outer.script.pop(0) if len(outer.script) > 1 else outer.script[0]
                if canned.delay:
                    time.sleep(canned.delay)
                self.send_response(canned.status)
                for name, value in canned.headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in canned.headers:
                    self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                if canned.cut_after is not None:
                    self.wfile.write(canned.body[: canned.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(canned.body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # dropped connections are the point
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, status: int = 200, body: bytes | str | Any = b"", **kwargs: Any) -> None:
        headers = kwargs.pop("headers", {})
        if not isinstance(body, bytes | str):
            body = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        self.script.append(Canned(status, body, headers, **kwargs))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted():
    server = ScriptedServer()
    yield server
    server.close()


def gpti2_command() -> list[str]:
    """The installed console script, as a user runs it."""
    exe = Path(sys.executable).with_name("gpti2")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gpti2"]
