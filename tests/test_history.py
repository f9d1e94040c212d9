"""History: every image written and every failed attempt is one SQLite row; recording never
fails a command; `gpti2 history` lists, searches and filters them."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import TOKEN, gpti2_command
from gpti2 import history


def _db() -> Path:
    return Path(os.environ["GPTI2_DATA_DIR"]) / "history.db"


def _rows(cli, *args: str) -> list[dict]:
    run = cli("history", "--json", *args)
    assert run.exit_code == 0, run.stderr
    return run.json


def test_generate_records_what_it_asked_and_what_it_wrote(cli, emulator, tmp_path) -> None:
    out = tmp_path / "out"
    run = cli(
        "generate", "A fox in snow", "-a", "16:9", "-o", f"{out}/", "--base-url", emulator.url
    )
    assert run.exit_code == 0, run.stderr
    path = Path(run.stdout.strip())
    [row] = _rows(cli)
    assert set(history.FIELDS) <= set(row)
    assert row["path"] == str(path.absolute()) and Path(row["path"]).is_absolute()
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert row["bytes"] == path.stat().st_size
    assert (row["format"], row["width"], row["height"]) == ("png", 512, 288)
    assert (row["command"], row["route"], row["provider"], row["model"]) == (
        "generate",
        "quick",
        "openai",
        "dall-e-3",
    )
    assert row["prompt"] == "A fox in snow"
    assert (row["requestedAspectRatio"], row["aspectRatio"]) == ("16:9", "16:9")
    assert row["origin"] == emulator.url and row["exitCode"] == 0 and row["error"] is None
    assert row["time"].endswith("Z") and isinstance(row["elapsedMs"], int)
    assert row["file"] == "present"


def test_a_failed_attempt_is_a_row_with_its_exit_code(cli, scripted) -> None:
    scripted.add(402, {"error": "insufficient credits"})
    run = cli("generate", "a fox", "--base-url", scripted.url, "--retries", "0")
    assert run.exit_code == 4
    [row] = _rows(cli)
    assert row["exitCode"] == 4 and "credits" in row["error"]
    assert row["path"] is None and row["sha256"] is None and row["prompt"] == "a fox"
    assert _rows(cli, "--failed")[0]["id"] == row["id"]


def test_image_to_stdout_is_recorded_so_a_redirected_file_is_found_again(cli, emulator) -> None:
    raw = cli("generate", "piped fox", "-o", "-", "--base-url", emulator.url)
    [row] = _rows(cli)
    assert row["path"] is None and row["file"] is None
    assert row["sha256"] == hashlib.sha256(raw.stdout_bytes).hexdigest()


def test_no_credential_is_stored(cli, emulator, tmp_path) -> None:
    env = {"GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "0.05"}
    run = cli(
        "job", "start", "a job", "--wait", "-o", str(tmp_path), "--base-url", emulator.url, env=env
    )
    assert run.exit_code == 0, run.stderr
    cli("generate", "x", "--base-url", emulator.url.replace("://", f"://user:{TOKEN}@"), env=env)
    data = b"".join(p.read_bytes() for p in _db().parent.iterdir() if p.is_file())
    assert data and TOKEN.encode() not in data


@pytest.mark.parametrize("how", ["env", "config"])
def test_history_can_be_turned_off(cli, emulator, how) -> None:
    env = {}
    if how == "env":
        env["GPTI2_NO_HISTORY"] = "1"
    else:
        assert cli("config", "set", "history", "false").exit_code == 0
        assert cli("config", "get", "history").stdout == "false\n"
    run = cli("generate", "x", "--base-url", emulator.url, env=env)
    assert run.exit_code == 0, run.stderr
    assert not _db().exists()
    assert cli("history", "--json").json == []


def _corrupt(db: Path) -> None:
    db.parent.mkdir(parents=True)
    db.write_bytes(b"this is not a database, it is a text file" * 100)


def _unwritable_folder(db: Path) -> None:
    db.parent.parent.mkdir(parents=True, exist_ok=True)
    db.parent.write_text("a file where the data folder should be")


def _folder_as_database(db: Path) -> None:
    db.mkdir(parents=True)


def _read_only(db: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes read-only files")
    db.parent.mkdir(parents=True)
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    db.chmod(0o444)
    db.parent.chmod(0o555)


@pytest.mark.parametrize("damage", [_corrupt, _unwritable_folder, _folder_as_database, _read_only])
def test_a_history_that_cannot_be_written_never_fails_a_generation(
    cli, emulator, damage, tmp_path
) -> None:
    damage(_db())
    try:
        run = cli("generate", "a fox", "-o", f"{tmp_path}/", "--base-url", emulator.url)
    finally:
        if _db().parent.is_dir():
            _db().parent.chmod(0o755)
    assert run.exit_code == 0, run.stderr
    assert Path(run.stdout.strip()).read_bytes().startswith(b"\x89PNG")
    warnings = [line for line in run.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "history not recorded" in warnings[0], run.stderr
    assert "error" not in run.stderr


def test_reading_a_corrupt_history_is_an_error_with_a_hint(cli) -> None:
    _corrupt(_db())
    run = cli("history")
    assert run.exit_code == 2
    assert "cannot read the history" in run.stderr and "move it away" in run.stderr


def _seed(n: int = 0, rows: list[dict] | None = None) -> None:
    recorder = history.Recorder(_db())
    for row in rows or []:
        recorder.add({"time": history.now(), "command": "generate", "exitCode": 0, **row})
    assert not recorder.failed


def test_search_and_filters(cli) -> None:
    _seed(
        rows=[
            {"prompt": "A red fox in snow", "provider": "openai", "model": "dall-e-3"},
            {"prompt": "a lighthouse at dawn", "provider": "replicate", "model": "flux"},
            {"prompt": "Ein Fuchs im Schnee, café", "provider": "openai", "model": "gpt-image-1"},
            {"prompt": "red lighthouse", "model": "gpt-image-2-t2i", "exitCode": 7, "error": "x"},
            {"prompt": "old", "model": "dall-e-3", "time": "2020-01-01T00:00:00.000Z"},
        ]
    )
    prompts = lambda *args: [r["prompt"] for r in _rows(cli, *args)]  # noqa: E731
    assert prompts()[0] == "old"  # newest first is by insertion, whatever the clock said
    assert prompts("-q", "red") == ["red lighthouse", "A red fox in snow"]
    assert prompts("-q", "red light") == ["red lighthouse"]
    assert prompts("-q", "lightho") == ["red lighthouse", "a lighthouse at dawn"]  # prefix
    assert prompts("-q", "cafe") == ["Ein Fuchs im Schnee, café"]  # diacritics folded
    assert prompts("--model", "dall-e-3") == ["old", "A red fox in snow"]
    assert prompts("--model", "replicate:flux") == ["a lighthouse at dawn"]
    assert prompts("--failed") == ["red lighthouse"]
    assert prompts("--since", "2021-01-01", "-q", "red", "-n", "1") == ["red lighthouse"]
    assert len(prompts("-n", "2")) == 2 and len(prompts("-n", "0")) == 5
    assert prompts("--since", "1h", "--model", "dall-e-3") == ["A red fox in snow"]
    # FTS syntax in what a person types is searched for, never interpreted
    for hostile in ('"', "red AND", "NEAR(red", "*", "prompt:red", "red OR -x"):
        run = cli("history", "-q", hostile, "--json")
        assert run.exit_code in (0, 2), (hostile, run.stderr)
        assert "internal error" not in run.stderr
    assert cli("history", "--since", "soonish").exit_code == 2


def test_plain_listing_and_jsonl(cli) -> None:
    _seed(rows=[{"prompt": "one", "model": "m"}, {"prompt": "two\tthree\x1b[31m", "model": "m"}])
    run = cli("history")
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 2 and lines[0].split("\t")[0] == "2" and lines[1].endswith("\tone")
    assert "\x1b" not in run.stdout
    jsonl = cli("history", "--jsonl").stdout.splitlines()
    assert [json.loads(line)["prompt"] for line in jsonl] == ["two\tthree\x1b[31m", "one"]


def test_moved_deleted_and_changed_files_are_shown_as_such(cli, emulator, tmp_path) -> None:
    paths = []
    for prompt in ("kept", "moved", "changed"):
        run = cli("generate", prompt, "-o", f"{tmp_path}/", "--base-url", emulator.url)
        paths.append(Path(run.stdout.strip()))
    paths[1].rename(tmp_path / "elsewhere.png")
    paths[2].write_bytes(paths[2].read_bytes() + b"edited")
    states = {r["prompt"]: r["file"] for r in _rows(cli)}
    assert states == {"kept": "present", "moved": "missing", "changed": "changed"}
    plain = cli("history").stdout
    assert "\tmissing\t" in plain and "\tchanged\t" in plain
    # a change that keeps the size is found by `show`, which compares the SHA-256
    data = bytearray(paths[0].read_bytes())
    data[-20] ^= 1
    paths[0].write_bytes(bytes(data))
    row_id = next(r["id"] for r in _rows(cli) if r["prompt"] == "kept")
    assert cli("history", "show", str(row_id), "--json").json["file"] == "changed"
    assert "file:" in cli("history", "show", str(row_id)).stdout


def test_show_and_path(cli) -> None:
    assert cli("history", "path").stdout.strip() == str(_db())
    assert cli("history", "show", "7").exit_code == 2
    _seed(rows=[{"prompt": "only", "model": "m"}])
    shown = cli("history", "show", "1", "--json").json
    assert shown["prompt"] == "only" and shown["id"] == 1


def test_table_at_a_terminal(cli) -> None:
    import io

    from gpti2.cli.common import Ui
    from gpti2.cli.context import Environment, State
    from gpti2.cli.history_cmd import _table

    out = io.StringIO()
    ui = Ui(State(env=Environment(stdout=out, stdout_isatty=True)))
    _table(
        ui,
        [
            {
                **dict.fromkeys(history.FIELDS),
                "id": 1,
                "time": "2026-01-01T00:00:00.000Z",
                "model": "m",
                "exitCode": 6,
                "error": "boom",
                "prompt": "p",
                "file": None,
            },
        ],
    )
    assert "failed (6): boom" in out.getvalue() and "2026-01-01" in out.getvalue()


WRITER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from gpti2 import history
    recorder = history.Recorder(Path(sys.argv[1]))
    def work(worker):
        for n in range(int(sys.argv[3])):
            recorder.add({"time": history.now(), "command": "test", "exitCode": 0,
                          "prompt": f"{sys.argv[2]} {worker} {n}"})
    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    sys.exit(1 if recorder.failed else 0)
    """
)


def test_two_processes_of_32_threads_each_lose_no_row(tmp_path) -> None:
    db = tmp_path / "data" / "history.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), name, "20"])
        for name in ("first", "second")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    rows = history.search(db, history.Query(limit=0))
    assert len(rows) == 2 * 32 * 20
    assert len({r["prompt"] for r in rows}) == len(rows)
    assert len(history.search(db, history.Query(text="second", limit=0))) == 32 * 20
    with sqlite3.connect(db) as check:
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_two_gpti2_processes_record_every_generation(emulator, tmp_path) -> None:
    script = 'for i in 1 2 3 4 5 6; do {cmd} generate "$1 $i" -o {out}/ --base-url {url} -q; done'
    cmd = " ".join(gpti2_command())
    script = script.format(cmd=cmd, out=tmp_path, url=emulator.url)
    procs = [subprocess.Popen(["sh", "-c", script, "sh", name]) for name in ("left", "right")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    rows = history.search(_db(), history.Query(limit=0))
    assert sorted(r["prompt"] for r in rows) == sorted(
        f"{name} {i}" for name in ("left", "right") for i in range(1, 7)
    )


def test_jobs_record_their_images_and_a_later_fetch_knows_the_prompt(
    cli, emulator, tmp_path
) -> None:
    env = {"GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "0.05"}
    base = ("--base-url", emulator.url)
    run = cli(
        "job", "start", "a lighthouse", "-a", "16:9", "--wait", "-o", str(tmp_path), *base, env=env
    )
    assert run.exit_code == 0, run.stderr
    task_id, path = run.stdout.split()
    [row] = _rows(cli)
    assert (row["command"], row["route"], row["taskId"]) == ("job start", "job", task_id)
    assert row["model"] == "gpt-image-2-t2i" and row["featureId"] and row["mode"] == "text_to_image"
    assert row["path"] == str(Path(path).absolute()) and row["requestedAspectRatio"] == "16:9"

    later = cli("job", "start", "a castle", *base, env=env).stdout.strip()
    fetched = cli("job", "fetch", later, "--wait", "-o", str(tmp_path / "f"), *base, env=env)
    assert fetched.exit_code == 0, fetched.stderr
    row = _rows(cli)[0]
    assert (row["command"], row["taskId"], row["prompt"]) == ("job fetch", later, "a castle")
    # fetching again keeps the file: nothing written, nothing recorded
    cli("job", "fetch", later, "-o", str(tmp_path / "f"), *base, env=env)
    assert len(_rows(cli)) == 2


def test_a_failed_job_is_a_row_with_exit_7(cli, make_emulator, tmp_path) -> None:
    emu = make_emulator(job_fail_rate=1.0, job_seconds=0.05)
    env = {"GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "0.05"}
    run = cli("job", "start", "doomed", "--wait", "--base-url", emu.url, env=env)
    assert run.exit_code == 7
    [row] = _rows(cli)
    assert row["exitCode"] == 7 and row["taskId"] == run.stdout.strip() and row["error"]


def _manifest(folder: Path, name: str, count: int) -> Path:
    folder.mkdir(parents=True)
    lines = ['[defaults]\noutput_dir = "out"\n']
    for n in range(count):
        lines.append(f'[[images]]\nname = "{name}-{n}"\nprompt = "{name} number {n}"\n')
    path = folder / "assets.toml"
    path.write_text("\n".join(lines))
    return path


def test_two_batches_at_j32_in_two_processes_lose_no_row(make_emulator, tmp_path) -> None:
    emu = make_emulator(latency=0.05)
    manifests = [_manifest(tmp_path / name, name, 48) for name in ("east", "west")]
    procs = [
        subprocess.Popen(
            [*gpti2_command(), "batch", str(m), "-j", "32", "--base-url", emu.url, "-q"]
        )
        for m in manifests
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    rows = history.search(_db(), history.Query(limit=0))
    assert len(rows) == 96 and {r["command"] for r in rows} == {"batch"}
    assert {r["prompt"] for r in rows} == {
        f"{name} number {n}" for name in ("east", "west") for n in range(48)
    }
    for row in rows:
        assert Path(row["path"]).read_bytes()[:4] == b"\x89PNG"
        assert hashlib.sha256(Path(row["path"]).read_bytes()).hexdigest() == row["sha256"]


def test_a_failed_batch_image_is_a_row(cli, make_emulator, tmp_path) -> None:
    emu = make_emulator(fail_rate=1.0)
    manifest = _manifest(tmp_path / "p", "sad", 2)
    run = cli("batch", str(manifest), "--base-url", emu.url, "--retries", "0")
    assert run.exit_code == 6
    rows = _rows(cli)
    assert len(rows) == 2 and {r["exitCode"] for r in rows} == {6}
    assert all(r["error"] and r["path"] is None for r in rows)
