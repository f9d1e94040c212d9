"""`gpti2 batch` throughput: 64 images at -j 8 against the emulator with --latency 0.25.

Ideal: 64 / 8 x 0.25 s = 2 s (budget: 1.25x that, plus start-up). Printed next to a
shell loop of the README's own `gpti2 generate` calls, and the same loop run with
`xargs -P 8`, against the same emulator in the same run.
Run: python benchmarks/batch_throughput.py
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Serve, gpti2

IMAGES, JOBS, LATENCY = 64, 8, 0.25


def timed(cmd: str | list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, shell=isinstance(cmd, str), cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    exe = shlex.join(gpti2())
    with Serve("--latency", str(LATENCY)) as emu, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for sub in ("batch", "loop", "xargs"):
            (root / sub).mkdir()
        manifest = "".join(
            f'[[images]]\nname = "img{i}"\nprompt = "benchmark image {i}"\n' for i in range(IMAGES)
        )
        (root / "batch" / "assets.toml").write_text(manifest)
        batch = timed(
            [*gpti2(), "batch", "assets.toml", "-j", str(JOBS), "--base-url", emu.url, "-q"],
            root / "batch",
        )
        again = timed(
            [*gpti2(), "batch", "assets.toml", "-j", str(JOBS), "--base-url", emu.url, "-q"],
            root / "batch",
        )
        loop = timed(
            f'for i in $(seq 0 {IMAGES - 1}); do {exe} generate "benchmark image $i" '
            f"--base-url {emu.url} -q >/dev/null; done",
            root / "loop",
        )
        xargs = timed(
            f'seq 0 {IMAGES - 1} | xargs -P {JOBS} -I{{}} {exe} generate "benchmark image {{}}" '
            f"--base-url {emu.url} -q",
            root / "xargs",
        )
    ideal = IMAGES / JOBS * LATENCY
    print(f"{IMAGES} images, -j {JOBS}, emulator --latency {LATENCY}: ideal {ideal:.2f} s")
    print(f"gpti2 batch                  {batch:6.2f} s  ({batch / ideal:.2f}x ideal)")
    print(f"gpti2 batch, second run      {again:6.2f} s  (nothing to do)")
    print(f"shell loop of generate       {loop:6.2f} s")
    print(f"xargs -P {JOBS} of generate       {xargs:6.2f} s")
    budget = 1.25 * ideal + again  # start-up: the same command with nothing to do
    verdict = "ok" if batch <= budget else "OVER"
    print(f"budget 1.25 x ideal + start-up ({again:.2f} s) = {budget:.2f} s: {verdict}")
    return 0 if batch <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
