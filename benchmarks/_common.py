"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Command = Sequence[str] | str  # an argv list, or a shell pipeline


def gpti2() -> list[str]:
    exe = Path(sys.executable).with_name("gpti2")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gpti2")
    return [found] if found else [sys.executable, "-m", "gpti2"]


def compile_bytecode() -> None:
    """Compile gpti2's modules, as pip does when it installs a package, so that timed runs
    measure the program and not Python compiling it (an editable checkout with
    PYTHONDONTWRITEBYTECODE set would compile every module on every run)."""
    import compileall

    import gpti2

    compileall.compile_dir(Path(gpti2.__file__).parent, quiet=1)


@dataclass
class Samples:
    """Times of the runs of one command: wall clock, and CPU (user + system, summed over
    all its processes; it moves less than the wall clock when the machine is busy)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def run(cmd: Command, **kwargs) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of `cmd` (a shell pipeline when a string); it must
    succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        cmd,
        shell=isinstance(cmd, str),
        executable="/bin/bash" if isinstance(cmd, str) else None,
        capture_output=True,
        check=True,
        **kwargs,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def interleaved(commands: Mapping[str, Command], runs: int, **kwargs) -> dict[str, Samples]:
    """Times of `runs` rounds in which every command runs once, A B A B ...

    One warm-up run of each first. The order rotates each round, so no command always
    runs first (or right after another); load that comes and goes hits all of them alike.
    """
    names = list(commands)
    for name in names:
        run(commands[name], **kwargs)
    samples = {name: Samples() for name in names}
    for round_no in range(runs):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = run(commands[name], **kwargs)
            samples[name].wall.append(wall)
            samples[name].cpu.append(cpu)
    return samples


def report(
    times: Mapping[str, Samples], base: str, budgets: Mapping[str, float] | None = None
) -> bool:
    """Print each command's median wall time and its ratio to `base`'s (also of the
    fastest runs, and of CPU time); False when the median ratio is over its budget."""
    budgets = budgets or {}
    median = {name: statistics.median(s.wall) for name, s in times.items()}
    fastest = {name: min(s.wall) for name, s in times.items()}
    cpu = {name: statistics.median(s.cpu) for name, s in times.items()}
    width = max(len(name) for name in times)
    ok = True
    for name in times:
        ratio = median[name] / median[base]
        verdict = ""
        if name in budgets:
            within = ratio <= budgets[name]
            ok = ok and within
            verdict = f"  budget {budgets[name]:g}x: " + ("ok" if within else "OVER")
        print(
            f"{name:{width}}  {median[name] * 1000:7.1f} ms {ratio:5.2f}x"
            f" | fastest {fastest[name] * 1000:6.1f} ms {fastest[name] / fastest[base]:5.2f}x"
            f" | CPU {cpu[name] * 1000:6.1f} ms {cpu[name] / cpu[base]:5.2f}x{verdict}"
        )
    print(
        f"medians of {len(times[base].wall)} interleaved runs; ratios to {base!r}"
        f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)"
    )
    return ok


# Measures one command from a small process of its own: a child's ru_maxrss starts at
# the high-water mark of the process it was forked from, so forking from the benchmark
# (which holds the test data) would inflate it.
_MAXRSS = """
import os, sys
pid = os.fork()
if pid == 0:
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024)
"""


def peak_rss(cmd: Sequence[str]) -> tuple[int, int]:
    """(exit code, peak resident size in bytes) of one run of `cmd`: the kernel's
    ru_maxrss for that process, everything it ever held (imports included). Linux."""
    out = subprocess.run(
        [sys.executable, "-c", _MAXRSS, *cmd], capture_output=True, text=True, check=True
    )
    code, peak = out.stdout.split()
    return int(code), int(peak)


class Serve:
    """`gpti2 serve --port 0 ...` in a subprocess, for the length of a `with` block."""

    def __init__(self, *flags: str) -> None:
        env = {**os.environ, "GPTI2_EMULATOR_TOKENS": "bench-token"}
        self.proc = subprocess.Popen(
            [*gpti2(), "serve", "--port", "0", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        line = self.proc.stdout.readline().strip()
        self.url = line.rsplit(" ", 1)[1]
        self.token = "bench-token"

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
