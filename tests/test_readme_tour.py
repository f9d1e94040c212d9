"""The README's tour runs offline as written: every command of its `sh` blocks, in order,
in one shell, against the built-in emulator (the tour's first line exports
GPTI2_BASE_URL=local).

What the README marks, and how this test treats it:
- a line whose comment says `[server]` needs a server that outlives one command (the real
  service and a token, or a `gpti2 serve` of one's own): it is not run;
- a line whose comment says `[until Ctrl-C]` is started, its first line of output awaited,
  then interrupted with Ctrl-C, and must exit 0 (`gpti2 serve` without `--port` gets
  `--port 0` here, as the tests never take a fixed port);
- a `toml` block whose first line is `# NAME` is written to NAME where it stands.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)


def tour() -> list[tuple[str, str]]:
    """(kind, text) in order: ("run", command), ("serve", command) or ("file", name\\n...)."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## A short tour", 1)[1].split("\n## ", 1)[0]
    steps: list[tuple[str, str]] = []
    for kind, body in _BLOCK.findall(section):
        if kind == "toml" and body.startswith("# "):
            steps.append(("file", body))
        elif kind == "sh":
            for line in body.splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if "[server]" in line:
                    continue
                steps.append(("serve" if "[until Ctrl-C]" in line else "run", line))
    return steps


def _script(steps: list[tuple[str, str]]) -> str:
    lines = ["set -u", 'report() { printf "TOUR BROKE at: %s\\n" "$1" >&2; exit 1; }']
    for kind, text in steps:
        if kind == "file":
            name, _, body = text.partition("\n")
            name = name[2:].split()[0]
            lines.append(f"printf %s {shlex.quote(body)} > {shlex.quote(name)}")
            continue
        if kind == "run":
            lines.append(f"{{ {text}\n}} || report {shlex.quote(text)}")
            continue
        command = text.split(" #", 1)[0].strip()
        if "--port" not in command:
            command += " --port 0"
        lines += [
            "rm -f serve.out",  # else the last server's line could pass for this one's
            f"{command} > serve.out 2> serve.err & pid=$!",
            "for _ in $(seq 100); do [ -s serve.out ] && break; sleep 0.1; done",
            f"[ -s serve.out ] || report {shlex.quote(text)}",
            'kill -INT "$pid"',
            f'wait "$pid" || report {shlex.quote(text)}',
        ]
    lines.append("echo TOUR DONE")
    return "\n".join(lines) + "\n"


def test_the_tour_has_the_offline_switch_first_and_marks_what_it_skips() -> None:
    steps = tour()
    assert steps[0] == ("run", steps[0][1]) and steps[0][1].startswith(
        "export GPTI2_BASE_URL=local"
    )
    text = README.read_text(encoding="utf-8").split("## A short tour", 1)[1]
    assert "[server]" in text and "[until Ctrl-C]" in text
    assert len([s for s in steps if s[0] == "run"]) >= 20


def test_every_command_of_the_tour_runs_offline(tmp_path: Path) -> None:
    steps = tour()
    # Never the real service from a test: the tour must switch to the emulator first.
    assert steps[0][1].startswith("export GPTI2_BASE_URL=local"), steps[0]
    work = tmp_path / "tour"
    work.mkdir()
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env.pop("GPTI2_BASE_URL", None)  # the tour sets it itself
    run = subprocess.run(
        ["bash", "-c", _script(steps)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0 and "TOUR DONE" in run.stdout, run.stderr[-3000:]
    assert list(work.glob("a-red-fox-in-snow-*.png"))
    assert list((work / "out").glob("*-1.png"))
    assert (work / "assets.lock.json").exists()
