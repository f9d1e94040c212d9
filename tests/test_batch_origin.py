"""Batch: which server made each image, why an image is out of date, placeholders that
cannot pass as real images, and the small things a CI log needs."""

from __future__ import annotations

import json
import os
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from conftest import TOKEN, gpti2_command
from gpti2 import images
from gpti2.emulator.art import mark_cells, placeholder_png

MANIFEST = """
[defaults]
output_dir = "assets"

[[images]]
name = "hero"
prompt = "Minimalist poster of a moonlit city skyline"
aspect_ratio = "16:9"

[[images]]
name = "icon"
prompt = "A round app icon of a paper plane"
"""
REAL = "https://www.gpt-image2.dev"


@pytest.fixture
def project(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "assets.toml").write_text(MANIFEST)
    monkeypatch.setenv("GPTI2_POLL_INTERVAL", "0.05")
    monkeypatch.chdir(folder)
    return folder


def lock(folder: Path) -> dict:
    return json.loads((folder / "assets.lock.json").read_text())


def test_a_rehearsal_on_local_is_out_of_date_for_any_other_origin(cli, project, emulator):
    assert cli("batch", "assets.toml", "--base-url", "local").exit_code == 0
    assert {r["origin"] for r in lock(project)["images"].values()} == {"local"}
    check = cli("batch", "assets.toml", "--check", "--base-url", emulator.url)
    assert check.exit_code == 9
    assert check.stdout.splitlines() == [
        "hero\tmade by the local emulator",
        "icon\tmade by the local emulator",
    ]
    assert emulator.request_count == 0
    # a real run regenerates both, and records the new origin
    assert cli("batch", "assets.toml", "--base-url", emulator.url).exit_code == 0
    assert {r["origin"] for r in lock(project)["images"].values()} == {emulator.url}
    assert cli("batch", "assets.toml", "--check", "--base-url", emulator.url).exit_code == 0


def test_an_emulator_file_is_caught_whatever_the_lock_says(cli, project) -> None:
    assert cli("batch", "assets.toml", "--base-url", "local").exit_code == 0
    data = lock(project)
    for record in data["images"].values():
        record["origin"] = REAL  # a hand-edited (or forged) lock
    (project / "assets.lock.json").write_text(json.dumps(data))
    check = cli("batch", "assets.toml", "--check", "--base-url", REAL)
    assert check.exit_code == 9
    assert check.stdout.splitlines() == [
        "hero\tmade by the local emulator",
        "icon\tmade by the local emulator",
    ]


def test_an_old_lock_without_origins_is_read_with_one_note(cli, project, emulator) -> None:
    assert cli("batch", "assets.toml", "--base-url", emulator.url).exit_code == 0
    data = lock(project)
    for record in data["images"].values():
        del record["origin"]
    (project / "assets.lock.json").write_text(json.dumps(data))
    check = cli("batch", "assets.toml", "--check", "--base-url", emulator.url)
    assert check.exit_code == 0, check.stderr
    assert check.stderr.count("note:") == 1 and "older gpti2" in check.stderr
    run = cli("batch", "assets.toml", "--base-url", emulator.url)
    assert run.exit_code == 0 and emulator.request_count == 2  # only the first run's
    assert {r["origin"] for r in lock(project)["images"].values()} == {emulator.url}


def test_check_says_which_field_changed(cli, project, emulator) -> None:
    assert cli("batch", "assets.toml", "--base-url", emulator.url).exit_code == 0
    (project / "assets.toml").write_text(
        MANIFEST.replace("paper plane", "paper boat").replace('"16:9"', '"4:3"')
    )
    check = cli("batch", "assets.toml", "--check", "--base-url", emulator.url)
    assert check.stdout.splitlines() == ["hero\taspect ratio changed", "icon\tprompt changed"]
    assert "the first: hero, aspect ratio changed" in check.stderr
    dry = cli("batch", "assets.toml", "--dry-run", "--json", "--base-url", emulator.url)
    reasons = {i["name"]: i["reason"] for i in dry.json["images"]}
    assert reasons == {"hero": "aspect ratio changed", "icon": "prompt changed"}


def test_a_rerun_trusts_size_and_time_but_deep_hashes_everything(cli, project, emulator):
    assert cli("batch", "assets.toml", "--base-url", emulator.url).exit_code == 0
    icon = project / "assets/icon.png"
    stat = icon.stat()
    data = bytearray(icon.read_bytes())
    data[-20] ^= 0xFF  # same size, same time: only a full hash sees it
    icon.write_bytes(bytes(data))
    os.utime(icon, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cli("batch", "assets.toml", "--check", "--base-url", emulator.url).exit_code == 0
    deep = cli("batch", "assets.toml", "--check", "--deep", "--base-url", emulator.url)
    assert deep.exit_code == 9 and deep.stdout == "icon\tfile changed\n"
    icon.touch()  # a changed time is enough to hash again
    check = cli("batch", "assets.toml", "--check", "--base-url", emulator.url)
    assert check.stdout == "icon\tfile changed\n"


def _pixels(png: bytes) -> tuple[int, int, bytes]:
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    pos, idat = 8, b""
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        if png[pos + 4 : pos + 8] == b"IDAT":
            idat += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * 3
    assert all(raw[y * stride] == 0 for y in range(height))  # filter 0 on every row
    return width, height, b"".join(raw[y * stride + 1 : (y + 1) * stride] for y in range(height))


@pytest.mark.parametrize(("width", "height"), [(512, 512), (512, 288), (288, 512)])
def test_emulator_images_carry_a_readable_mark_and_a_text_chunk(width, height) -> None:
    png = placeholder_png("a fox", width, height)
    assert b"tEXtSoftware\x00gpti2 emulator" in png
    assert images.is_emulator_image(png) and images.structure_problem(png, "png") is None
    w, h, pixels = _pixels(png)
    cells = mark_cells()
    # find the band: the first row holding the band's dark grey
    grey = b"\x20\x20\x20"
    top = next(y for y in range(h) if grey * 8 in pixels[y * w * 3 : (y + 1) * w * 3])
    row = pixels[top * w * 3 : (top + 1) * w * 3]
    left = row.index(grey * 8) // 3
    right = row.rindex(grey) // 3 + 1
    scale = (right - left) // len(cells[0])
    assert scale >= 4  # at least 28 pixels tall at the default size: readable
    for r, line in enumerate(cells):
        for c, cell in enumerate(line):
            x, y = left + c * scale + scale // 2, top + r * scale + scale // 2
            pixel = pixels[(y * w + x) * 3 : (y * w + x) * 3 + 3]
            assert pixel == (b"\xff\xff\xff" if cell == "#" else grey), (r, c)


def test_a_real_image_is_not_taken_for_a_placeholder() -> None:
    png = placeholder_png("x", 8, 8).replace(b"gpti2 emulator", b"someone else!!")
    assert not images.is_emulator_image(png)
    assert not images.is_emulator_image(b"\xff\xd8\xff\xe0 a jpeg")


def test_generate_notices_it_already_had_a_placeholder(cli, emulator) -> None:
    assert cli("generate", "a fox", "--base-url", emulator.url).exit_code == 0
    again = cli("generate", "a fox", "--base-url", emulator.url)
    assert "already had" in again.stderr and "placeholder of gpti2's emulator" in again.stderr


def test_job_entries_create_their_output_folder(cli, project, emulator, monkeypatch) -> None:
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    (project / "assets.toml").write_text(
        '[defaults]\noutput_dir = "not/yet/there"\nroute = "job"\n'
        '[[images]]\nname = "j"\nprompt = "a job"\n'
    )
    run = cli("batch", "assets.toml", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    assert (project / "not/yet/there/j.png").is_file()
    assert lock(project)["images"]["j"]["taskId"]


def test_a_failed_batch_ends_with_one_error_line_naming_the_first_failure(
    cli, project, emulator
) -> None:
    (project / "assets.toml").write_text(
        MANIFEST.replace('name = "icon"', 'name = "icon"\nprovider = "acme"')
    )
    run = cli("batch", "assets.toml", "--base-url", emulator.url)
    assert run.exit_code == 5
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "1 of 2 images failed; the first: icon:" in errors[0]
    # off a terminal, each image is one line: the error is not wrapped
    (icon_line,) = [line for line in run.stderr.splitlines() if line.startswith("icon ")]
    assert "failed" in icon_line and "Invalid request parameters" in icon_line


def test_json_names_every_outcome_and_the_error_is_not_a_second_document(
    cli, project, emulator
) -> None:
    (project / "assets.toml").write_text(
        MANIFEST.replace('name = "icon"', 'name = "icon"\nprovider = "acme"')
    )
    run = cli("batch", "assets.toml", "--json", "--base-url", emulator.url)
    assert run.exit_code == 5
    document = run.json  # one document
    assert [i["status"] for i in document["images"]] == ["generated", "failed"]
    assert document["interrupted"] is False and document["runningJobs"] == []


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "names no images"),
        ("[defaults]\nroute = 'quick'\n", "names no images"),
        ('[[image]]\nname = "a"\nprompt = "x"\n', "did you mean `[[images]]`"),
        ('[[images]]\nname = "a"\nprompt = "x"\npromt = "y"\n', "did you mean 'prompt'"),
    ],
)
def test_empty_and_misspelt_manifests_say_so(cli, project, text, needle) -> None:
    (project / "assets.toml").write_text(text)
    run = cli("batch", "assets.toml", "--base-url", "local")
    assert run.exit_code == 2 and needle in run.stderr


def test_batch_help_describes_the_manifest_and_force(cli) -> None:
    text = cli("batch", "--help").stdout
    assert "[[images]]" in text and "lock.json" in text
    assert "Regenerate every image" in text


def test_job_start_wait_json_keeps_the_task_id_when_the_wait_fails(
    cli, make_emulator, monkeypatch
) -> None:
    slow = make_emulator(job_seconds=30)
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    run = cli(
        "job", "start", "x", "--wait", "--wait-timeout", "0.3", "--poll-interval", "0.1",
        "--json", "--base-url", slow.url,
    )  # fmt: skip
    assert run.exit_code == 8
    answer = run.json  # one document
    assert answer["taskId"] and answer["status"] in ("pending", "running")
    assert answer["error"]["code"] == 8


def test_wait_timeout_waits_the_whole_time_and_polls_at_the_deadline(monkeypatch) -> None:
    from gpti2 import jobs
    from gpti2.errors import JobNotFinishedError

    now = [0.0]
    polls: list[float] = []

    def status(client, task_id, route=None):
        polls.append(now[0])
        return jobs.Job(task_id, jobs.JobStatus.RUNNING)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(jobs, "status", status)
    with pytest.raises(JobNotFinishedError):
        jobs.wait(None, "t", interval=2, timeout=5, sleep=sleep, clock=lambda: now[0])
    assert polls[-1] == 5.0 and polls.count(5.0) == 1


def test_two_runs_on_one_manifest_take_turns(tmp_path, make_emulator) -> None:
    emu = make_emulator(latency=0.15)  # the first run lasts ~1.2 s
    folder = tmp_path / "turns"
    folder.mkdir()
    entries = "".join(f'[[images]]\nname = "i{i}"\nprompt = "p{i}"\n' for i in range(16))
    (folder / "assets.toml").write_text(entries)
    command = [*gpti2_command(), "batch", "assets.toml", "-j", "2", "--base-url", emu.url]
    first = subprocess.Popen([*command, "--force"], cwd=folder, stderr=subprocess.PIPE, text=True)
    flock = folder / ".assets.lock.json.flock"
    deadline = time.monotonic() + 20
    while not (flock.exists() and flock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    refused = subprocess.run(
        [*command, "--no-wait"], cwd=folder, capture_output=True, text=True, timeout=30
    )
    second = subprocess.Popen([*command, "--force"], cwd=folder, stderr=subprocess.PIPE, text=True)
    _, second_err = second.communicate(timeout=60)
    first.communicate(timeout=60)
    assert first.returncode == 0 and second.returncode == 0, second_err
    assert refused.returncode == 2 and "another gpti2 batch is running" in refused.stderr
    assert "waiting for another gpti2 batch" in second_err
    records = json.loads((folder / "assets.lock.json").read_text())["images"]
    assert len(records) == 16
    for record in records.values():
        data = (folder / record["path"]).read_bytes()
        assert images.describe(data).sha256 == record["sha256"]
    assert not (folder / ".assets.lock.json.journal").exists()
