"""Job waits and a job's downloads: how late `job start --wait` ends after its job, with
how many status polls, and `job fetch` of an 8-image job at 0.25 s latency.

Two builds run interleaved (A B A B) against the same emulator, held in this process so
its request counters can be read: this checkout, and with `--before SRC` another one
(a source tree's `src` folder, e.g. from `git archive <commit> src | tar -x -C DIR`).
Lateness is the time from the job's end (its creation plus its length, in the emulator's
store) to the status answer that reported it, from the emulator's request log.

Run: python benchmarks/job_wait.py [--before /tmp/gpti2-before/src] [--long | --lengths S ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import compile_bytecode

from gpti2.emulator import EmulatorConfig, running_emulator

TOKEN = "bench-token"


def command(src: Path | None) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "GPTI2_TOKEN": TOKEN, "GPTI2_NO_PROGRESS": "1"}
    env.pop("GPTI2_POLL_INTERVAL", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return [sys.executable, "-m", "gpti2"], env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, out.stdout


def waits(builds: dict[str, Path | None], lengths: list[float], runs: int, tmp: Path) -> None:
    print("job start --wait: seconds from the job's end to the status answer that said so")
    print("(median), and status polls per wait")
    answered: list[tuple[float, str]] = []  # (time, request line) of every request

    def log(line: str) -> None:
        answered.append((time.time(), line))

    for seconds in lengths:
        config = EmulatorConfig(port=0, tokens=[TOKEN], job_seconds=seconds, log=log)
        with running_emulator(config) as emu:
            late: dict[str, list[float]] = {name: [] for name in builds}
            polls: dict[str, list[int]] = {name: [] for name in builds}
            for round_no in range(runs):
                names = list(builds)
                names = names[round_no % len(names) :] + names[: round_no % len(names)]
                for name in names:
                    argv, env = command(builds[name])
                    answered.clear()
                    _, out = timed(
                        [
                            *argv,
                            "--base-url",
                            emu.url,
                            "job",
                            "start",
                            "x",
                            "--wait",
                            "--json",
                            "-q",
                            "-o",
                            str(tmp / name),
                            "--force",
                        ],
                        env,
                        tmp,
                    )
                    task_id = json.loads(out)["taskId"]
                    job = emu.store.job(TOKEN, task_id)
                    ended = job.created + job.duration
                    times = [t for t, line in answered if "/api/aiimage/status" in line]
                    late[name].append(times[-1] - ended)
                    polls[name].append(len(times))
        cells = [
            f"{name} {statistics.median(late[name]):5.2f} s late,"
            f" {statistics.median(polls[name]):4.1f} polls"
            for name in builds
        ]
        print(f"  {seconds:5.0f} s job: " + " | ".join(cells))


def downloads(builds: dict[str, Path | None], runs: int, tmp: Path) -> None:
    config = EmulatorConfig(port=0, tokens=[TOKEN], job_seconds=0, images_per_job=8, latency=0.25)
    with running_emulator(config) as emu:
        argv, env = command(None)
        _, out = timed([*argv, "--base-url", emu.url, "job", "start", "x", "-q"], env, tmp)
        task_id = out.strip()
        times: dict[str, list[float]] = {name: [] for name in builds}
        for round_no in range(runs + 1):  # the first round warms up
            names = list(builds)
            names = names[round_no % len(names) :] + names[: round_no % len(names)]
            for name in names:
                argv, env = command(builds[name])
                wall, _ = timed(
                    [
                        *argv,
                        "--base-url",
                        emu.url,
                        "job",
                        "fetch",
                        task_id,
                        "-q",
                        "-o",
                        str(tmp / f"fetch-{name}"),
                        "--force",
                    ],
                    env,
                    tmp,
                )
                if round_no:
                    times[name].append(wall)
    print(
        "job fetch, 8 images, emulator --latency 0.25: one status, then the images"
        " (0.50 s if all 8 go at once, as they do with jobs.DOWNLOADS = 8;"
        " 4 at a time: 0.75 s)"
    )
    base = statistics.median(next(iter(times.values())))
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"  {name:7} {median:5.2f} s  {median / base:4.2f}x   (fastest {min(samples):.2f} s)")
    print(
        f"  medians of {runs} interleaved runs (load average {os.getloadavg()[0]:.1f}"
        f" on {os.cpu_count()} CPUs)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="the src folder of the build to compare")
    parser.add_argument("--long", action="store_true", help="also 40 s and 90 s jobs")
    parser.add_argument(
        "--lengths", type=float, nargs="*", help="job lengths in seconds instead of 1 4 10"
    )
    parser.add_argument("--no-fetch", action="store_true", help="leave out the fetch figure")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    compile_bytecode()
    builds: dict[str, Path | None] = {}
    if args.before:
        builds["before"] = args.before.resolve()
    builds["after"] = None
    lengths = args.lengths or [0.0, 1.0, 4.0, 10.0] + ([40.0, 90.0] if args.long else [])
    with tempfile.TemporaryDirectory() as tmp:
        waits(builds, lengths, args.runs, Path(tmp))
        if not args.no_fetch:
            downloads(builds, max(args.runs, 5), Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
