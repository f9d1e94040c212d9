"""`gpti2 batch` at scale: the lock's cost per image, large manifests, no-op reruns, a
2 GiB asset set, and four shards against one runner.

"before" is gpti2 as of BEFORE_REV (the lock re-rendered and fsync-written after every
image, every file hashed on every rerun), run from a `git archive` of that commit with
the same interpreter; "after" is this checkout. Compared commands run interleaved.

Run: python benchmarks/batch_scale.py [lock] [many] [noop] [big] [shards]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Serve, compile_bytecode, gpti2, interleaved, report, run

BEFORE_REV = os.environ.get("BEFORE_REV", "4cd61fd")
REPO = Path(__file__).resolve().parent.parent


def before_command(tmp: Path) -> list[str]:
    """gpti2 as of BEFORE_REV, from a git archive of its sources."""
    src = tmp / "before"
    if not src.exists():
        src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", BEFORE_REV, "src"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        import compileall

        compileall.compile_dir(src / "src", quiet=1)
    return ["env", f"PYTHONPATH={src / 'src'}", sys.executable, "-m", "gpti2"]


def manifest(count: int, prefix: str = "bench") -> str:
    return '[defaults]\noutput_dir = "out"\n' + "".join(
        f'[[images]]\nname = "img{i}"\nprompt = "{prefix} image {i}"\n' for i in range(count)
    )


# -- the lock's CPU per image ---------------------------------------------------------


def lock_cpu() -> None:
    """Client CPU spent keeping the lock safe, per finished image: re-rendering and
    fsync-writing the whole lock each time (before) against one journal line each and
    one render at the end (after)."""
    from gpti2 import files
    from gpti2.batch.lock import Lock, render

    def record(i: int) -> dict:
        return {
            "fingerprint": "sha256:" + f"{i:064x}",
            "inputs": {"prompt": f"catalogue picture {i}", "model": "dall-e-3"},
            "origin": "https://www.gpt-image2.dev",
            "path": f"assets/generated/img{i}.png",
            "sha256": f"{i * 7:064x}",
            "bytes": 123456,
            "generatedAt": "2026-11-28T09:00:00Z",
        }

    def before(folder: Path, n: int) -> float:
        path, records = folder / "assets.lock.json", {}
        started = time.process_time()
        for i in range(n):
            records[f"img{i}"] = record(i)
            text = json.dumps({"version": 1, "images": records}, indent=2, sort_keys=True)
            files.write_atomic(path, (text + "\n").encode(), force=True)
        return time.process_time() - started

    def after(folder: Path, n: int) -> float:
        lock = Lock(folder / "assets.lock.json", {})
        started = time.process_time()
        for i in range(n):
            lock.record(f"img{i}", record(i))
        lock.save()
        return time.process_time() - started

    print("lock: client CPU per finished image (median of 3 interleaved rounds)")
    for n in (256, 1024, 4096):
        times: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(3):
            for name, fn in (("before", before), ("after", after)):
                if name == "before" and n == 4096 and times["before"]:
                    continue  # one round is minutes of CPU already
                with tempfile.TemporaryDirectory() as tmp:
                    times[name].append(fn(Path(tmp), n))
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(
            f"  {n:5d} entries: before {b / n * 1000:7.3f} ms/image ({b:6.2f} s)"
            f"   after {a / n * 1000:6.3f} ms/image ({a:5.2f} s)   {b / a:6.1f}x less"
        )
    assert render({}) == b'{\n  "images": {},\n  "version": 1\n}\n'


# -- many entries against a latency-free emulator ------------------------------------


def many(tmp: Path) -> None:
    """Manifests of 500, 1,000 and 2,000 entries at -j 32 against `serve --latency 0`:
    wall and CPU per image, before and after (the lock's cost grew with the square)."""
    old = before_command(tmp)
    with Serve("--latency", "0") as emu:
        for count in (500, 1000, 2000):
            cmds = {}
            for name, exe in (("before", old), ("after", gpti2())):
                folder = tmp / f"many-{name}-{count}"
                folder.mkdir()
                (folder / "assets.toml").write_text(manifest(count, f"many {count}"))
                cmds[f"{name} {count}"] = (
                    [
                        *exe,
                        "batch",
                        "assets.toml",
                        "-j",
                        "32",
                        "-q",
                        "--force",
                        "--base-url",
                        emu.url,
                    ],
                    folder,
                )
            samples = {}
            for _ in range(2):
                for name, (cmd, folder) in cmds.items():
                    wall, cpu = run(cmd, cwd=folder)
                    samples.setdefault(name, []).append((wall, cpu))
            for name, pairs in samples.items():
                wall = statistics.median(w for w, _ in pairs)
                cpu = statistics.median(c for _, c in pairs)
                print(
                    f"  {name:12s} entries -j 32: {wall:6.2f} s wall ({wall / count * 1000:5.2f}"
                    f" ms/image), client CPU {cpu:6.2f} s ({cpu / count * 1000:5.2f} ms/image)"
                )


# -- no-op reruns ---------------------------------------------------------------------


def noop(tmp: Path) -> None:
    """A rerun and a --check of 2,000 up-to-date entries (small images)."""
    old = before_command(tmp)
    folders = {}
    with Serve("--latency", "0") as emu:
        for name, exe in (("before", old), ("after", gpti2())):
            folder = tmp / f"noop-{name}"
            folder.mkdir()
            (folder / "assets.toml").write_text(manifest(2000, "noop"))
            run([*exe, "batch", "assets.toml", "-j", "32", "-q", "--base-url", emu.url], cwd=folder)
            folders[name] = (exe, folder, emu.url)
        commands = {}
        for name, (exe, folder, url) in folders.items():
            cd = f"cd {folder} && "
            base = " ".join([*exe, "batch", "assets.toml", "-q", "--base-url", url])
            commands[f"{name} rerun"] = cd + base
            commands[f"{name} --check"] = cd + base + " --check"
        commands["after --check --deep"] = (
            f"cd {folders['after'][1]} && " + commands["after --check"].split("&& ")[1] + " --deep"
        )
        print("2,000 up-to-date entries:")
        report(interleaved(commands, 5), "before rerun")


def big(tmp: Path) -> None:
    """An unchanged 2 GiB asset set (16 files of 128 MiB, sparse): a rerun hashes
    every byte before; after, it trusts size and time seen at the last hash."""
    old = before_command(tmp)
    folder = tmp / "big"
    folder.mkdir()
    (folder / "assets.toml").write_text(manifest(16, "big"))
    run([*gpti2(), "batch", "assets.toml", "-q", "--base-url", "local"], cwd=folder)
    lock_path = folder / "assets.lock.json"
    data = json.loads(lock_path.read_text())
    size = 128 << 20
    for record in data["images"].values():
        path = folder / record["path"]
        head = path.read_bytes()
        with open(path, "r+b") as handle:  # the placeholder, then a sparse tail
            handle.truncate(size)
        digest = subprocess.run(
            ["sha256sum", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        record.update(sha256=digest, bytes=size)
        assert path.read_bytes()[: len(head)] == head
    lock_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    (folder / ".assets.lock.json.stat").unlink(missing_ok=True)
    cd = f"cd {folder} && "
    commands = {
        "before rerun": cd + " ".join([*old, "batch", "assets.toml", "-q", "--base-url", "local"]),
        "after rerun": cd
        + " ".join([*gpti2(), "batch", "assets.toml", "-q", "--base-url", "local"]),
        "after --check --deep": cd
        + " ".join(
            [*gpti2(), "batch", "assets.toml", "-q", "--check", "--deep", "--base-url", "local"]
        ),
    }
    print("an unchanged 2 GiB asset set (16 x 128 MiB):")
    report(interleaved(commands, 3), "before rerun")
    shutil.rmtree(folder)


def shards(tmp: Path) -> None:
    """1,024 entries on a 0.25 s-latency emulator at -j 8: four shards of ~256 run at once
    (four copies of the tree), the slowest plus the merge, against one unsharded run."""
    count, jobs = 1024, "8"
    with Serve("--latency", "0.25") as emu:
        source = tmp / "shard-src"
        source.mkdir()
        (source / "assets.toml").write_text(manifest(count, "shard"))
        copies = []
        for k in range(1, 5):
            copy = tmp / f"shard-{k}"
            shutil.copytree(source, copy)
            copies.append(copy)
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    *gpti2(),
                    "batch",
                    "assets.toml",
                    "-q",
                    "-j",
                    jobs,
                    "--shard",
                    f"{k}/4",
                    "--base-url",
                    emu.url,
                ],
                cwd=copy,
            )
            for k, copy in enumerate(copies, start=1)
        ]
        ends = []
        for proc in procs:
            proc.wait()
            ends.append(time.perf_counter() - started)
        final = tmp / "shard-final"
        shutil.copytree(source, final)
        (final / "out").mkdir()
        for k, copy in enumerate(copies, start=1):
            shutil.copy(copy / f"assets.lock.shard-{k}-of-4.json", final)
            for image in (copy / "out").iterdir():
                shutil.copy2(image, final / "out")
        merge_wall, _ = run(
            [*gpti2(), "batch", "assets.toml", "-q", "--merge", "--base-url", emu.url], cwd=final
        )
        whole = tmp / "shard-whole"
        shutil.copytree(source, whole)
        one, _ = run(
            [*gpti2(), "batch", "assets.toml", "-q", "-j", jobs, "--base-url", emu.url], cwd=whole
        )
    print(f"{count} entries, -j {jobs}, emulator --latency 0.25:")
    print(f"  shards (each ~{count // 4}): {', '.join(f'{e:.2f} s' for e in ends)}")
    slowest = max(ends)
    print(
        f"  slowest shard + merge: {slowest:.2f} + {merge_wall:.2f} = {slowest + merge_wall:.2f} s"
    )
    print(f"  one unsharded run:     {one:.2f} s  ({one / (max(ends) + merge_wall):.1f}x longer)")


def main() -> int:
    compile_bytecode()
    parts = sys.argv[1:] or ["lock", "many", "noop", "big", "shards"]
    with tempfile.TemporaryDirectory(prefix="gpti2-bench-") as name:
        tmp = Path(name)
        for part in parts:
            if part == "lock":
                lock_cpu()
            else:
                globals()[part](tmp)
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
