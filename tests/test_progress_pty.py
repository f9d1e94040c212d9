"""Progress that tells the truth, read frame by frame at a pseudo-terminal: a clock that
ticks during requests, something on screen before the first answer, download bars with
size and speed, a stable batch layout, and nothing left on screen after Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import TOKEN, gpti2_command

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")

COLUMNS = 100
_CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


@dataclass
class Screen:
    """Just enough of a terminal to read what rich draws: text, \\r, \\n, cursor up and
    down, erase line, cursor shown or hidden. `frames` holds the screen after each read."""

    lines: list[str] = field(default_factory=lambda: [""])
    row: int = 0
    col: int = 0
    cursor_visible: bool = True
    frames: list[list[str]] = field(default_factory=list)

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            match = _CSI.match(text, i)
            if match:
                self._control(match.group(1), match.group(2))
                i = match.end()
                continue
            char = text[i]
            i += 1
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row += 1
                self.col = 0
                while len(self.lines) <= self.row:
                    self.lines.append("")
            elif char >= " ":
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[: self.col] + char + line[self.col + 1 :]
                self.col += 1
        self.frames.append([line.rstrip() for line in self.lines])

    def _control(self, args: str, kind: str) -> None:
        count = int(args) if args.isdigit() else 1
        if kind == "A":
            self.row = max(0, self.row - count)
        elif kind == "B":
            self.row += count
        elif kind == "K" and args in ("2", ""):
            self.lines[self.row] = "" if args == "2" else self.lines[self.row][: self.col]
        elif args == "?25" and kind in "lh":
            self.cursor_visible = kind == "h"

    @property
    def text(self) -> list[str]:
        return [line.rstrip() for line in self.lines if line.strip()]


def at_terminal(
    argv: list[str],
    env: dict[str, str] | None = None,
    until: Callable[[Screen], bool] | None = None,
    then_signal: int | None = None,
    timeout: float = 30.0,
) -> tuple[Screen, subprocess.CompletedProcess]:
    """Run a command with stdin and stderr on a pseudo-terminal (stdout piped), reading
    every frame; optionally send a signal once `until` holds."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, COLUMNS, 0, 0))
    full_env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), **(env or {})}
    full_env.pop("CI", None)
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
        env=full_env,
        start_new_session=True,
    )
    os.close(slave)
    screen, sent, deadline = Screen(), False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the other side closed
                    break
                if not chunk:
                    break
                screen.feed(chunk.decode("utf-8", "replace"))
            if until and not sent and then_signal is not None and until(screen):
                proc.send_signal(then_signal)
                sent = True
            if proc.poll() is not None and not ready:
                break
        stdout, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return screen, subprocess.CompletedProcess(argv, proc.returncode, stdout, "")


def _clocks(screen: Screen, pattern: str) -> list[int]:
    """The seconds shown after lines matching `pattern`, in the order they were drawn."""
    seen: list[int] = []
    for frame in screen.frames:
        for line in frame:
            match = re.search(pattern + r".*\((\d+) s\)", line)
            if match and (not seen or seen[-1] != int(match.group(1))):
                seen.append(int(match.group(1)))
    return seen


def test_the_wait_clock_ticks_while_a_status_request_is_in_flight(make_emulator) -> None:
    emulator = make_emulator(latency=1.3, job_seconds=0.0)
    screen, run = at_terminal(
        [*gpti2_command(), "job", "start", "x", "--wait", "--base-url", emulator.url],
        env={"GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "5"},
    )
    assert run.returncode == 0, screen.text
    # Every response takes 1.3 s: the first status answer comes after more than 1 s, and
    # the clock on the "waiting" line moves meanwhile.
    assert _clocks(screen, r"job \S+: waiting")[:2] == [0, 1]
    # so does the one of the start request
    assert _clocks(screen, r"starting the job")[:2] == [0, 1]


def test_job_fetch_shows_a_line_before_the_first_status_answer(make_emulator, cli) -> None:
    emulator = make_emulator(job_seconds=0.0)
    start = cli(
        "job", "start", "x", "--wait", "--base-url", emulator.url, env={"GPTI2_TOKEN": TOKEN}
    )
    task_id = start.stdout.splitlines()[0]
    emulator.config.latency = 1.5
    screen, run = at_terminal(
        [*gpti2_command(), "job", "fetch", task_id, "--force", "--base-url", emulator.url],
        env={"GPTI2_TOKEN": TOKEN},
    )
    assert run.returncode == 0, screen.text
    first = next(frame for frame in screen.frames if any(line.strip() for line in frame))
    assert any(f"job {task_id}: asking for its status (0 s)" in line for line in first)


def test_download_bars_show_size_and_speed_and_stay_after_success(tmp_path: Path) -> None:
    program = (
        "import time\n"
        "from gpti2.cli.common import State, Ui\n"
        "with Ui(State()).downloads() as bars:\n"
        "    report = bars(1)\n"
        "    for done in range(0, 300_001, 50_000):\n"
        "        report(done, 300_000); time.sleep(0.1)\n"
    )
    screen, run = at_terminal([sys.executable, "-c", program])
    assert run.returncode == 0
    assert not any("?" in line for frame in screen.frames for line in frame)
    final = screen.text
    assert len(final) == 1 and final[0].startswith("image 1")
    assert re.search(r"300\.0/300\.0 kB\s+\d+(\.\d+)? kB/s$", final[0]), final
    assert screen.cursor_visible


def test_bars_are_removed_on_ctrl_c(tmp_path: Path) -> None:
    program = (
        "import time\n"
        "from gpti2.cli.common import State, Ui\n"
        "with Ui(State()).downloads() as bars:\n"
        "    report = bars(1); report(0, None); report(4096, None)\n"
        "    time.sleep(30)\n"
    )
    screen, run = at_terminal(
        [sys.executable, "-c", program],
        until=lambda s: any("4.1 kB" in line for line in s.text),
        then_signal=signal.SIGINT,
    )
    assert run.returncode != 0
    assert any("4.1 kB" in line for frame in screen.frames for line in frame)  # size, no "?"
    assert not any("image 1" in line for line in screen.text), screen.text
    assert screen.cursor_visible


def test_ctrl_c_during_generate_leaves_only_the_error_line(make_emulator) -> None:
    emulator = make_emulator(latency=10)
    screen, run = at_terminal(
        [*gpti2_command(), "generate", "a fox", "--base-url", emulator.url],
        until=lambda s: any("(1 s)" in line for line in s.text),
        then_signal=signal.SIGINT,
    )
    assert run.returncode == 130
    assert _clocks(screen, "generating with openai")[:2] == [0, 1]  # the spinner's clock
    assert screen.text == ["error: interrupted"]
    assert screen.cursor_visible


def test_batch_rows_keep_their_columns_and_say_when_jobs_exist(make_emulator, tmp_path) -> None:
    emulator = make_emulator(latency=0.4, job_seconds=1.0)
    manifest = tmp_path / "assets.toml"
    manifest.write_text(
        '[[images]]\nname = "a-rather-long-image-name"\nprompt = "one"\n'
        '[[images]]\nname = "b"\nprompt = "two"\n'
        '[[images]]\nname = "mascot"\nroute = "job"\nprompt = "three"\n'
    )
    screen, run = at_terminal(
        [*gpti2_command(), "batch", str(manifest), "-j", "1", "--base-url", emulator.url],
        env={"GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "0.2"},
    )
    assert run.returncode == 0, screen.text
    bar_starts = {
        line.index("━")
        for frame in screen.frames
        for line in frame
        if "━" in line and (line.lstrip("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ").startswith(("batch", "a-", "b", "mascot")))
    }
    assert len(bar_starts) == 1, bar_starts
    # after its start, a job row says so instead of "starting" until it is waited on
    assert any(re.search(r"mascot: started job \S+", line) for f in screen.frames for line in f)
