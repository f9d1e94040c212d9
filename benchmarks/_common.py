"""Helpers shared by the benchmark scripts (not part of the package)."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def gpti2() -> list[str]:
    exe = Path(sys.executable).with_name("gpti2")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gpti2")
    return [found] if found else [sys.executable, "-m", "gpti2"]


def median_seconds(cmd: Sequence[str] | str, runs: int, **kwargs) -> float:
    """Median wall time of running `cmd` `runs` times (after one warm-up)."""
    shell = isinstance(cmd, str)
    subprocess.run(cmd, shell=shell, capture_output=True, **kwargs)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, shell=shell, capture_output=True, check=True, **kwargs)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class Serve:
    """`gpti2 serve --port 0 ...` in a subprocess, for the length of a `with` block."""

    def __init__(self, *flags: str) -> None:
        env = {**os.environ, "GPTI2_EMULATOR_TOKENS": "bench-token"}
        self.proc = subprocess.Popen(
            [*gpti2(), "serve", "--port", "0", *flags],
            stdout=subprocess.PIPE,
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
