"""Edges of `gpti2 batch`: --only with --shard, the bound on a shard total, one run lock
per manifest whether sharded or not, and no temporary file left by an interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import TOKEN, gpti2_command
from gpti2.batch import shard
from hostile_server import HostileServer, envelope, response

MAX_TOTAL = 1000  # the bound --help and the README give
NAMES = ("hero", "icon", "mascot", "banner", "logo", "footer")


def write_manifest(folder, names=NAMES, route: str = "quick") -> None:
    head = f'[defaults]\noutput_dir = "art"\nroute = "{route}"\n'
    body = "".join(f'[[images]]\nname = "{n}"\nprompt = "picture of {n}"\n' for n in names)
    (folder / "assets.toml").write_text(head + body)


def split(total: int, index: int) -> tuple[list[str], list[str]]:
    """(names shard index/total holds, names it does not)."""
    mine = [n for n in NAMES if shard.shard_of(n, total) == index]
    return mine, [n for n in NAMES if n not in mine]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder holding assets.toml (six quick images), the current folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    write_manifest(folder)
    monkeypatch.chdir(folder)
    return folder


# -- 1. --only a name that another shard holds --------------------------------------------


def test_only_a_name_of_another_shard_is_named_with_its_shard_and_exits_0(
    cli, project, emulator
) -> None:
    mine, theirs = split(3, 1)
    assert mine and theirs  # the names are spread over the shards
    other = theirs[0]
    home = shard.shard_of(other, 3)
    run = cli("batch", "assets.toml", "--shard", "1/3", "--only", other, "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    assert f"note: {other} is in shard {home}/3, not this one\n" in run.stderr
    assert emulator.request_count == 0

    # with a name of this shard too: that one is made, the other named
    both = ("--only", mine[0], "--only", other, "--json")
    run = cli("batch", "assets.toml", "--shard", "1/3", *both, "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    document = run.json  # stdout stays one JSON document
    assert [(i["name"], i["status"]) for i in document["images"]] == [(mine[0], "generated")]
    assert f"note: {other} is in shard {home}/3, not this one\n" in run.stderr

    # --check and --dry-run say it too, and send nothing
    sent = emulator.request_count
    for mode in ("--check", "--dry-run"):
        run = cli(
            "batch", "assets.toml", "--shard", "1/3", "--only", other, mode,
            "--base-url", emulator.url,
        )  # fmt: skip
        assert run.exit_code == 0, run.stderr
        assert f"note: {other} is in shard {home}/3, not this one\n" in run.stderr
    assert emulator.request_count == sent


def test_only_a_name_not_in_the_manifest_is_still_exit_2(cli, project, emulator) -> None:
    run = cli(
        "batch", "assets.toml", "--shard", "1/3", "--only", "nope", "--base-url", emulator.url
    )
    assert run.exit_code == 2
    assert "error: --only 'nope': no such image in assets.toml" in run.stderr
    assert "note:" not in run.stderr
    assert emulator.request_count == 0


# -- 2. the bound on --shard ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (f"1/{MAX_TOTAL + 1}", f"N may be at most {MAX_TOTAL}"),
        ("1/100000000", f"N may be at most {MAX_TOTAL}"),
        ("1/" + "9" * 300, f"N may be at most {MAX_TOTAL}"),  # a file name too long
        ("1/" + "1" * 5000, f"N may be at most {MAX_TOTAL}"),  # past int()'s own limit
        ("9" * 5000 + "/3", "K must be between 1 and N"),
        ("0/3", "K must be between 1 and N"),
        ("4/3", "K must be between 1 and N"),
        ("1/0", "K must be between 1 and N"),
        ("a/b", "expected K/N"),
        ("3", "expected K/N"),
        ("１/２", "expected K/N"),  # full-width digits: \d would take them
    ],
)
def test_a_bad_or_huge_shard_is_exit_2_with_a_hint_before_any_request(
    cli, project, emulator, spec: str, says: str
) -> None:
    run = cli("batch", "assets.toml", "--shard", spec, "--base-url", emulator.url)
    assert run.exit_code == 2, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: --shard ") and says in lines[0]
    assert lines[1].startswith("hint: ")
    assert emulator.request_count == 0
    assert sorted(p.name for p in project.iterdir()) == ["assets.toml"]


def test_the_largest_shard_total_still_runs(cli, project, emulator) -> None:
    total = MAX_TOTAL
    run = cli("batch", "assets.toml", "--shard", f"{total}/{total}", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    fragment = json.loads((project / f"assets.lock.shard-{total}-of-{total}.json").read_text())
    assert fragment["shard"] == f"{total}/{total}"


def test_help_gives_the_bound(cli) -> None:
    run = cli("batch", "--help", env={"COLUMNS": "200"})
    assert f"(N at most {MAX_TOTAL})" in " ".join(run.stdout.split())
    assert shard.MAX_TOTAL == MAX_TOTAL


# -- 4. no temporary file left by an interruption, whatever the name's length -------------

LONG = "n" * 150  # temporary file names keep the first 100 characters of a name


def test_the_interrupt_clean_up_removes_this_process_s_temporary_files_only(tmp_path) -> None:
    from gpti2 import files

    tmp_path = tmp_path / "art"
    tmp_path.mkdir()

    mine = [files.Scratch(tmp_path, name) for name in ("cat", "hero.png", LONG)]
    for scratch in mine:
        scratch.new()
    done = files.Scratch(tmp_path, "done.png")
    done.new()
    done.discard()  # finished: no longer this process's to remove
    # Another process's files, named as Scratch names them, for images whose names start
    # the same as ours (`cat.v2` after `cat`, a 150-character name after another).
    theirs = [tmp_path / f".cat.v2.{'a' * 12}.part", tmp_path / f".{LONG[:100]}.{'b' * 12}.part"]
    for path in theirs:
        path.touch()
    files.remove_live_temps()
    assert sorted(tmp_path.iterdir()) == sorted(theirs)


def test_an_interrupted_download_of_a_150_character_name_leaves_no_part_file_of_its_own(
    tmp_path,
) -> None:
    """The download stalls after its first bytes (a slow server), so the worker is still
    writing its temporary file when the batch is stopped, and when the batch ends; the
    interruption's clean-up must find that file by the 100 characters its name keeps,
    and leave alone the one another shard is writing."""
    from gpti2 import files
    from gpti2.emulator.art import placeholder_png

    folder = tmp_path / "project"
    folder.mkdir()
    mine, theirs = shard.shard_of(LONG, 2), shard.shard_of("icon", 2)
    assert mine != theirs
    write_manifest(folder, names=(LONG, "icon"), route="job")
    art = folder / "art"
    art.mkdir()
    # As other shards would, in other processes: `icon`, and an image whose name starts
    # with this one's (the clean-up once matched temporary files by name).
    others = [files.Scratch(art, "icon.png"), files.Scratch(art, f"{LONG}.v2")]
    for other in others:
        other.new()
    theirs = {other.path for other in others}
    server = HostileServer()
    png = placeholder_png("slow", 64, 64)
    answer = response(200, png, headers={"Content-Type": "image/png"})
    head = len(answer) - len(png) + 100
    job = {"taskId": "t1", "status": "queued"}
    server.route("/api/aiimage/start", response(200, envelope(job)))
    job = {**job, "status": "success", "images": ["/f/1.png"]}
    server.route("/api/aiimage/status", response(200, envelope(job)))
    server.route("/f/1.png", [(answer[:head], 0.0), (answer[head:], 30.0)])
    env = {**os.environ, "GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "0.01"}
    proc = subprocess.Popen(
        [
            *gpti2_command(),
            "batch",
            "assets.toml",
            "--shard",
            f"{mine}/2",
            "--base-url",
            server.url,
        ],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(list(art.glob("*.part"))) < 3:
            time.sleep(0.02)
        parts = [p.name for p in art.glob("*.part")]
        assert len(parts) == 3, parts  # the stall is on
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "interrupted: kept 0 new image(s)" in err
    assert set(art.iterdir()) == theirs  # no image, no temporary file of its own
    for other in others:
        other.discard()


# -- 3. one run lock per manifest, sharded or not ----------------------------------------

MANY = tuple(f"img{i}" for i in range(16))


def hold(folder, emu, *args: str) -> subprocess.Popen:
    """A batch run in another process, -j 1 against a slow emulator, once it holds its run
    lock (it writes its pid there)."""
    proc = subprocess.Popen(
        [*gpti2_command(), "batch", "assets.toml", "-j", "1", "--base-url", emu.url, *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    shard_args = [a for a in args if "/" in a]
    name = f"assets.lock.shard-{shard_args[0].replace('/', '-of-')}.json" if shard_args else ""
    flock = folder / f".{name or 'assets.lock.json'}.flock"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (flock.exists() and flock.read_text().strip()):
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    return proc


def refused(cli, emulator, *args: str) -> str:
    """Run with --no-wait: exit 2 before any request; the error line."""
    sent = emulator.request_count
    run = cli("batch", "assets.toml", *args, "--no-wait", "--base-url", emulator.url)
    assert run.exit_code == 2, run.stderr
    assert emulator.request_count == sent
    assert run.stderr.splitlines()[1].startswith("hint: ")
    return run.stderr.splitlines()[0]


@pytest.fixture
def busy_project(tmp_path, monkeypatch, make_emulator):
    """A folder of 16 quick images, a slow emulator for the run that holds the lock (16 x
    0.2 s), and a quick one for the others."""
    folder = tmp_path / "busy"
    folder.mkdir()
    write_manifest(folder, MANY)
    monkeypatch.chdir(folder)
    return folder, make_emulator(latency=0.2), make_emulator()


def test_a_shard_waits_for_a_run_on_the_whole_manifest(cli, busy_project) -> None:
    folder, slow, quick = busy_project
    whole = hold(folder, slow, "--force")
    try:
        line = refused(cli, quick, "--shard", "1/2")
        assert line.startswith("error: another gpti2 batch is running on assets.toml (pid ")
        waiting = subprocess.run(
            [*gpti2_command(), "batch", "assets.toml", "--shard", "2/2", "--base-url", quick.url],
            cwd=folder, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert whole.poll() is not None  # it ran only once the whole run had finished
    finally:
        _, err = whole.communicate(timeout=60)
    assert whole.returncode == 0, err
    assert waiting.returncode == 0, waiting.stderr
    assert "waiting for another gpti2 batch on assets.toml" in waiting.stderr


def test_a_run_on_the_whole_manifest_and_a_merge_wait_for_a_shard(cli, busy_project) -> None:
    folder, slow, quick = busy_project
    part = hold(folder, slow, "--shard", "1/2")
    try:
        line = refused(cli, quick)
        assert line.startswith("error: another gpti2 batch is running on assets.toml")
        line = refused(cli, quick, "--merge")
        assert line.startswith("error: another gpti2 batch is running on assets.toml")
        assert part.poll() is None  # both were refused while the shard was running
    finally:
        _, err = part.communicate(timeout=60)
    assert part.returncode == 0, err
    assert not (folder / "assets.lock.json").exists()


def test_shards_of_one_total_run_side_by_side_and_others_wait(cli, busy_project) -> None:
    folder, slow, quick = busy_project
    part = hold(folder, slow, "--shard", "1/2")
    try:
        # the other shard of the same total makes its own images meanwhile
        run = cli("batch", "assets.toml", "--shard", "2/2", "--no-wait", "--base-url", quick.url)
        assert run.exit_code == 0, run.stderr
        assert quick.request_count == len(split_names(MANY, 2, 2))
        # the same shard twice, or a shard of another total (its share overlaps), waits
        line = refused(cli, quick, "--shard", "1/2")
        assert line.startswith("error: another gpti2 batch is running on assets.toml (pid ")
        line = refused(cli, quick, "--shard", "2/3")
        assert line.startswith("error: another gpti2 batch is running on assets.toml (shard 1/2")
        assert part.poll() is None
    finally:
        _, err = part.communicate(timeout=60)
    assert part.returncode == 0, err
    # afterwards the run locks left behind are free: a merge, then a shard of another total
    for more in (["--merge"], ["--shard", "2/3"]):
        run = cli("batch", "assets.toml", *more, "--no-wait", "--base-url", quick.url)
        assert run.exit_code == 0, run.stderr


def split_names(names, total: int, index: int) -> list[str]:
    return [n for n in names if shard.shard_of(n, total) == index]
