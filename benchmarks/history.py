"""`gpti2 history` over 100,000 rows, and what recording costs `gpti2 generate`.

1. A history of 100,000 rows (varied prompts, models, some failures). Listing (`-n 20`),
   a full-text search (`-q`), a search with filters, and the full `--json` listing are
   timed against `gpti2 history path` (the same start-up, no query). Budget (issue 11):
   listing and search each under 100 ms above start-up.
2. `gpti2 generate` against `gpti2 serve`, with the history on and with
   GPTI2_NO_HISTORY=1, interleaved: the difference is what recording one image costs.
   Also the cost in-process: opening the history once, then one row.

Run: python benchmarks/history.py
"""

from __future__ import annotations

import os
import random
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import Serve, compile_bytecode, gpti2, interleaved, report

ROWS = 100_000
RUNS = 21
BUDGET_MS = 100.0
WORDS = (
    "red",
    "fox",
    "snow",
    "lighthouse",
    "dawn",
    "city",
    "skyline",
    "moonlit",
    "poster",
    "minimalist",
    "watercolor",
    "paper",
    "plane",
    "icon",
    "banner",
    "rolling",
    "hills",
    "castle",
    "forest",
    "river",
    "mountain",
    "portrait",
    "studio",
    "light",
    "neon",
    "rain",
    "street",
    "cat",
    "dog",
    "owl",
    "dragon",
    "garden",
    "sunset",
    "ocean",
    "wave",
    "bridge",
    "train",
    "station",
)
MODELS = [
    ("openai", "dall-e-3"),
    ("replicate", "flux-schnell"),
    ("fireworks", "flux-1"),
    (None, "gpt-image-2-t2i"),
]


def fill(db: Path) -> None:
    """100,000 rows through the history's own schema, in one transaction."""
    from gpti2 import history

    store = history._store(db)
    rng = random.Random(11)
    names = [n for n in history.FIELDS if n != "id"]
    rows = []
    for n in range(ROWS):
        provider, model = MODELS[n % len(MODELS)]
        prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
        failed = n % 50 == 0
        row = dict.fromkeys(names)
        row.update(
            time=f"2026-{1 + n * 11 // ROWS:02d}-{1 + n % 28:02d}T10:00:00.000Z",
            command="generate",
            route="job" if provider is None else "quick",
            origin="https://www.gpt-image2.dev",
            provider=provider,
            model=model,
            prompt=prompt,
            requestedAspectRatio="1:1",
            elapsedMs=rng.randint(800, 9000),
            exitCode=6 if failed else 0,
            error="server error" if failed else None,
        )
        if not failed:
            row.update(
                aspectRatio="1:1",
                path=f"/home/user/images/img-{n}.png",
                sha256=f"{n:064x}",
                bytes=1_500_000,
                format="png",
                width=1024,
                height=1024,
            )
        rows.append([row[k] for k in names])
    sql = f"INSERT INTO history ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    with store.lock:
        store.db.execute("BEGIN")
        store.db.executemany(sql, rows)
        store.db.execute("COMMIT")
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    history.close_all()


def listing(data: Path) -> bool:
    env = {**os.environ, "GPTI2_DATA_DIR": str(data)}
    exe = shlex.join(gpti2())
    times = interleaved(
        {
            "history path (start-up)": f"{exe} history path",
            "history (-n 20)": f"{exe} history",
            "history -q fox": f"{exe} history -q fox",
            "history -q 'red fox' --model dall-e-3 --since 2026-06-01": (
                f"{exe} history -q 'red fox' --model dall-e-3 --since 2026-06-01"
            ),
            "history --failed --json": f"{exe} history --failed --json",
            "history -n 0 --json (all 100,000)": f"{exe} history -n 0 --json",
        },
        RUNS,
        env=env,
    )
    report(times, "history path (start-up)")
    base = statistics.median(times["history path (start-up)"].wall)
    ok = True
    print(f"\nabove start-up (budget {BUDGET_MS:.0f} ms for listing and search):")
    for name, samples in times.items():
        above = (statistics.median(samples.wall) - base) * 1000
        budgeted = name in ("history (-n 20)", "history -q fox")
        verdict = ("  ok" if above <= BUDGET_MS else "  OVER") if budgeted else ""
        ok = ok and (above <= BUDGET_MS or not budgeted)
        print(f"  {name:58} {above:7.1f} ms{verdict}")
    return ok


def recording_cost(data: Path, tmp: Path) -> None:
    exe = shlex.join(gpti2())
    with Serve() as emu:
        ours = f"{exe} generate bench --force --base-url {emu.url} -q -o {tmp}/g.png"
        times = interleaved(
            {
                "generate, history off": f"GPTI2_NO_HISTORY=1 {ours}",
                "generate, history on": ours,
            },
            RUNS,
            env={**os.environ, "GPTI2_DATA_DIR": str(data)},
        )
    print("\ngpti2 generate (512x512) against gpti2 serve, history of 100,000 rows")
    report(times, "generate, history off")
    on = statistics.median(times["generate, history on"].wall)
    off = statistics.median(times["generate, history off"].wall)
    print(f"  recording one image: {(on - off) * 1000:+.1f} ms of wall time (median)")

    from gpti2 import history
    from gpti2.emulator.art import placeholder_png
    from gpti2.images import describe

    info = describe(placeholder_png("bench", 512, 512))
    recorder = history.Recorder(data / "history.db")
    attempt = history.Attempt(recorder, "generate", "quick", "local", "bench", "dall-e-3")
    started = time.perf_counter()
    attempt.wrote(tmp / "g.png", info)
    first = time.perf_counter() - started
    laps = []
    for _ in range(200):
        started = time.perf_counter()
        attempt.wrote(tmp / "g.png", info)
        laps.append(time.perf_counter() - started)
    print(
        f"  in-process: first row (import sqlite3, open, WAL) {first * 1000:.2f} ms;"
        f" each further row {statistics.median(laps) * 1000:.3f} ms (median of 200)"
    )


def main() -> int:
    compile_bytecode()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        started = time.perf_counter()
        fill(data / "history.db")
        size = (data / "history.db").stat().st_size
        print(
            f"{ROWS:,} rows written in {time.perf_counter() - started:.1f} s"
            f" ({size / 1024 / 1024:.1f} MiB with its full-text index)\n"
        )
        ok = listing(data)
        recording_cost(data, Path(tmp))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
