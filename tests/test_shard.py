"""Sharding a manifest over CI runners, merging the fragments, and resuming jobs."""

from __future__ import annotations

import collections
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TOKEN, gpti2_command
from gpti2.batch import shard
from gpti2.emulator import EmulatorConfig, running_emulator
from gpti2.errors import UsageError

ENTRIES = 24


def manifest(count: int = ENTRIES, route: str = "quick") -> str:
    head = f'[defaults]\noutput_dir = "art"\nroute = "{route}"\n'
    return head + "".join(
        f'[[images]]\nname = "img{i}"\nprompt = "catalogue picture {i}"\n' for i in range(count)
    )


def test_an_entry_shard_depends_on_its_name_alone_and_shares_are_balanced() -> None:
    names = [f"product-{i}" for i in range(4000)]
    shares = collections.Counter(shard.shard_of(name, 4) for name in names)
    assert set(shares) == {1, 2, 3, 4}
    assert all(900 <= count <= 1100 for count in shares.values()), shares
    # the same answer whatever else exists, and on every call
    assert shard.shard_of("product-7", 4) == shard.shard_of("product-7", 4)
    assert shard.Shard(2, 3).holds("x") == (shard.shard_of("x", 3) == 2)


@pytest.mark.parametrize("bad", ["0/4", "5/4", "2", "a/b", "1/0"])
def test_bad_shard_specs_are_usage_errors(bad: str) -> None:
    with pytest.raises(UsageError):
        shard.parse(bad)


def test_auto_reads_the_ci_environment() -> None:
    assert shard.from_environment({"GPTI2_SHARD": "2/5"}) == (shard.Shard(2, 5), "GPTI2_SHARD")
    gitlab = {"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "4"}
    assert shard.from_environment(gitlab)[0] == shard.Shard(3, 4)
    circle = {"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "2"}
    assert shard.from_environment(circle)[0] == shard.Shard(1, 2)
    with pytest.raises(UsageError, match="no shard in the environment"):
        shard.from_environment({})


def test_shard_auto_without_a_ci_is_exit_2(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "assets.toml").write_text(manifest(2))
    run = cli("batch", "assets.toml", "--shard", "auto", "--base-url", "local")
    assert run.exit_code == 2 and "GPTI2_SHARD" in run.stderr


def _run(folder: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [*gpti2_command(), "batch", "assets.toml", *args],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def _digests(folder: Path) -> dict[str, str]:
    records = json.loads((folder / "assets.lock.json").read_text())["images"]
    return {name: (record["path"], record["sha256"]) for name, record in records.items()}


@pytest.fixture(scope="module")
def sharded_once(tmp_path_factory):
    """Four runners (four copies of the tree, four processes at once) and one unsharded
    run, all against one emulator; then the artifacts gathered into `final`. Built once:
    each test works on its own copy of `final`."""
    tmp_path = tmp_path_factory.mktemp("shards")
    home = tmp_path / "home"  # the autouse isolation is per test: isolate these runs too
    isolated = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".data"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "GPTI2_NO_HISTORY": "1",
    }
    config = EmulatorConfig(port=0, tokens=[TOKEN], latency=0.02)
    with running_emulator(config) as emu:
        source = tmp_path / "repo"
        source.mkdir()
        (source / "assets.toml").write_text(manifest())
        runners = []
        for k in range(1, 5):
            copy = tmp_path / f"runner{k}"
            shutil.copytree(source, copy)
            env = {**isolated, "CI_NODE_INDEX": str(k), "CI_NODE_TOTAL": "4"}
            runners.append((copy, _run(copy, "--shard", "auto", "--base-url", emu.url, env=env)))
        whole = tmp_path / "whole"
        shutil.copytree(source, whole)
        unsharded = _run(whole, "--base-url", emu.url, env=isolated)
        for copy, proc in runners:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert not (copy / "assets.lock.json").exists()  # a shard never writes the lock
        assert unsharded.wait(timeout=60) == 0
        final = tmp_path / "final"
        shutil.copytree(source, final)
        (final / "art").mkdir()
        for k, (copy, _) in enumerate(runners, start=1):
            fragment = copy / f"assets.lock.shard-{k}-of-4.json"
            data = json.loads(fragment.read_text())
            assert data["shard"] == f"{k}/4" and len(data["manifestSha256"]) == 64
            assert all(shard.shard_of(name, 4) == k for name in data["images"])
            shutil.copy(fragment, final)
            for image in (copy / "art").iterdir():
                shutil.copy2(image, final / "art")
        yield emu, final, whole


@pytest.fixture
def sharded(sharded_once, tmp_path):
    emu, final, whole = sharded_once
    mine = tmp_path / "final"
    shutil.copytree(final, mine)
    return emu, mine, whole


def test_four_shards_merged_equal_one_unsharded_run(cli, sharded) -> None:
    emu, final, whole = sharded
    fragments = sorted(str(p.name) for p in final.glob("assets.lock.shard-*.json"))
    os.chdir(final)
    merged = cli("batch", "assets.toml", "--merge", *fragments, "--base-url", emu.url)
    assert merged.exit_code == 0, merged.stderr
    sent = emu.request_count
    check = cli("batch", "assets.toml", "--check", "--base-url", emu.url)
    assert check.exit_code == 0, check.stdout
    assert emu.request_count == sent
    assert _digests(final) == _digests(whole)
    assert len(_digests(final)) == ENTRIES


def test_a_fragment_named_twice_is_merged_once(cli, sharded) -> None:
    emu, final, _ = sharded
    os.chdir(final)
    one = sorted(p.name for p in final.glob("assets.lock.shard-*.json"))[0]
    run = cli("batch", "assets.toml", "--merge", one, f"./{one}", "--base-url", emu.url)
    assert run.exit_code == 0, run.stderr
    assert "merged 1 fragment(s)" in run.stderr


def test_merge_without_paths_takes_every_fragment_beside_the_manifest(cli, sharded) -> None:
    emu, final, whole = sharded
    os.chdir(final)
    assert cli("batch", "assets.toml", "--merge", "--base-url", emu.url).exit_code == 0
    assert _digests(final) == _digests(whole)


def test_before_the_merge_every_hint_points_to_the_merge_not_to_paying_again(cli, sharded):
    emu, final, _ = sharded
    os.chdir(final)
    sent = emu.request_count
    check = cli("batch", "assets.toml", "--check", "--base-url", emu.url)
    assert check.exit_code == 9
    merge = f"gpti2 --base-url {emu.url} batch assets.toml --merge"
    assert f"hint: the shards' lock fragments are not merged yet: {merge}\n" in check.stderr
    run = cli("batch", "assets.toml", "--base-url", emu.url)
    assert run.exit_code == 2
    assert f"hint: merge the shards' lock fragments first: {merge}\n" in run.stderr
    assert emu.request_count == sent  # nothing was paid for
    assert cli("batch", "assets.toml", "--merge", "--base-url", emu.url).exit_code == 0


def _refused(cli, final: Path, emu, *fragments: str) -> list[str]:
    os.chdir(final)
    before = (
        (final / "assets.lock.json").read_bytes() if (final / "assets.lock.json").exists() else None
    )
    run = cli("batch", "assets.toml", "--merge", *fragments, "--base-url", emu.url)
    assert run.exit_code == 2
    after = (
        (final / "assets.lock.json").read_bytes() if (final / "assets.lock.json").exists() else None
    )
    assert after == before  # the lock is left as it was
    return [line for line in run.stderr.splitlines() if line.startswith("error:")]


def test_a_tampered_fragment_is_refused(cli, sharded) -> None:
    emu, final, _ = sharded
    fragment = final / "assets.lock.shard-2-of-4.json"
    data = json.loads(fragment.read_text())
    name = sorted(data["images"])[0]
    data["images"][name]["sha256"] = "0" * 64
    fragment.write_text(json.dumps(data))
    errors = _refused(cli, final, emu, *sorted(p.name for p in final.glob("*.shard-*")))
    assert errors == [
        f"error: assets.lock.shard-2-of-4.json: image {name!r}: "
        f"{data['images'][name]['path']} does not match its SHA-256 (file changed)"
    ]


def test_a_missing_image_and_a_fragment_of_another_manifest_are_refused(cli, sharded) -> None:
    emu, final, _ = sharded
    one = json.loads((final / "assets.lock.shard-1-of-4.json").read_text())
    victim = sorted(one["images"])[0]
    (final / one["images"][victim]["path"]).unlink()
    other = final / "assets.lock.shard-3-of-4.json"
    data = json.loads(other.read_text())
    data["manifestSha256"] = "f" * 64
    other.write_text(json.dumps(data))
    errors = _refused(cli, final, emu, *sorted(p.name for p in final.glob("*.shard-*")))
    assert len(errors) == 2
    assert f"image {victim!r}" in errors[0] and "is missing" in errors[0]
    assert "another version of assets.toml" in errors[1]


def test_overlapping_fragments_that_disagree_are_refused(cli, sharded) -> None:
    emu, final, _ = sharded
    a = json.loads((final / "assets.lock.shard-1-of-4.json").read_text())
    name = sorted(a["images"])[0]
    twin = dict(a, images={name: dict(a["images"][name], generatedAt="2001-01-01T00:00:00Z")})
    (final / "again.json").write_text(json.dumps(twin))
    errors = _refused(cli, final, emu, "assets.lock.shard-1-of-4.json", "again.json")
    assert errors == [
        f"error: again.json: image {name!r} disagrees with assets.lock.shard-1-of-4.json "
        "(overlapping fragments)"
    ]
    # a record placed in a shard that does not hold it is foreign
    wrong = dict(a, shard="2/4")
    (final / "wrong.json").write_text(json.dumps(wrong))
    errors = _refused(cli, final, emu, "wrong.json")
    assert errors and all("does not belong to shard 2/4" in e for e in errors)


def test_sigterm_with_jobs_in_flight_then_a_rerun_resumes_them(tmp_path, make_emulator) -> None:
    emu = make_emulator(job_seconds=2.5)
    folder = tmp_path / "ci"
    folder.mkdir()
    (folder / "assets.toml").write_text(manifest(3, route="job"))
    env = {"GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "0.05"}
    proc = _run(folder, "--json", "--base-url", emu.url, env=env)
    journal = folder / ".assets.lock.json.journal"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count('"state":"running"') == 3:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    started = emu.requests["POST /api/aiimage/start"]
    assert started == 3
    document = json.loads(out)  # one document, naming the jobs left running
    running = {job["name"]: job["taskId"] for job in document["runningJobs"]}
    assert document["interrupted"] is True and set(running) == {"img0", "img1", "img2"}
    summary = [line for line in err.splitlines() if line.startswith("interrupted:")]
    assert len(summary) == 1 and all(task in summary[0] for task in running.values())
    records = json.loads((folder / "assets.lock.json").read_text())["images"]
    assert {n: r["taskId"] for n, r in records.items() if r["state"] == "running"} == running

    rerun = _run(folder, "--base-url", emu.url, env=env)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert emu.requests["POST /api/aiimage/start"] == started  # nothing paid twice
    fetched = [k for k in emu.requests if k.startswith("GET /api/aiimage/files/")]
    assert sorted(k.split("/")[4] for k in fetched) == sorted(running.values())
    records = json.loads((folder / "assets.lock.json").read_text())["images"]
    assert all("state" not in r and r["taskId"] == running[n] for n, r in records.items())


def test_a_job_the_server_does_not_know_is_started_anew(cli, tmp_path, emulator, monkeypatch):
    from gpti2.batch import load_manifest
    from gpti2.settings import resolve

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    monkeypatch.setenv("GPTI2_POLL_INTERVAL", "0.05")
    (tmp_path / "assets.toml").write_text(manifest(1, route="job"))
    entry = load_manifest(tmp_path / "assets.toml", resolve({})).entries[0]
    running = {
        "fingerprint": entry.fingerprint(),
        "origin": emulator.url,
        "taskId": "gone-job",
        "state": "running",
    }
    (tmp_path / "assets.lock.json").write_text(
        json.dumps({"version": 1, "images": {"img0": running}})
    )
    check = cli("batch", "assets.toml", "--check", "--base-url", emulator.url)
    assert check.stdout == "img0\tjob gone-job still running\n"
    run = cli("batch", "assets.toml", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    assert emulator.requests["POST /api/aiimage/start"] == 1
    record = json.loads((tmp_path / "assets.lock.json").read_text())["images"]["img0"]
    assert record["taskId"] != "gone-job" and "state" not in record


def test_a_journal_left_by_a_crash_is_folded_in_and_a_cut_line_ignored(
    cli, tmp_path, monkeypatch
) -> None:
    root = tmp_path / "p"
    root.mkdir()
    monkeypatch.chdir(root)
    (root / "assets.toml").write_text(manifest(2))
    assert cli("batch", "assets.toml", "--base-url", "local").exit_code == 0
    lock_path = root / "assets.lock.json"
    records = json.loads(lock_path.read_text())["images"]
    # the lock as it was before img1 finished, and the journal a killed run left
    lock_path.write_text(json.dumps({"version": 1, "images": {"img0": records["img0"]}}))
    line = json.dumps({"name": "img1", "record": records["img1"]})
    (root / ".assets.lock.json.journal").write_text(line + '\n{"name": "img')
    check = cli("batch", "assets.toml", "--check", "--base-url", "local")
    assert check.exit_code == 0, check.stdout
    assert cli("batch", "assets.toml", "--base-url", "local").exit_code == 0
    assert json.loads(lock_path.read_text())["images"] == records
    assert not (root / ".assets.lock.json.journal").exists()


def test_a_fragment_passing_placeholders_off_as_real_images_is_refused(cli, sharded) -> None:
    emu, final, _ = sharded
    fragment = final / "assets.lock.shard-4-of-4.json"
    data = json.loads(fragment.read_text())
    for record in data["images"].values():
        record["origin"] = "https://www.gpt-image2.dev"
    fragment.write_text(json.dumps(data))
    errors = _refused(cli, final, emu, fragment.name)
    assert len(errors) == len(data["images"])
    assert all("placeholder of gpti2's emulator" in e for e in errors)
