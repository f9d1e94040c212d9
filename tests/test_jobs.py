"""The job route end to end: `gpti2 job start|status|fetch` against the emulator."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import pytest

from conftest import OTHER_TOKEN, TOKEN
from gpti2.emulator.art import placeholder_png
from gpti2.jobs import JobStatus, normalize_status, parse_job, status_request


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setenv("GPTI2_POLL_INTERVAL", "0.05")


@pytest.fixture
def signed_in(monkeypatch):
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)


# -- the lenient reader, unit-tested ---------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("QUEUED", JobStatus.PENDING),
        ("submitted", JobStatus.PENDING),
        ("in_progress", JobStatus.RUNNING),
        ("Generating", JobStatus.RUNNING),
        ("success", JobStatus.SUCCEEDED),
        ("finished", JobStatus.SUCCEEDED),
        ("failure", JobStatus.FAILED),
        ("cancelled", JobStatus.CANCELED),
        ("paused", JobStatus.UNKNOWN),
        (None, JobStatus.UNKNOWN),
    ],
)
def test_status_normalisation(raw, status) -> None:
    assert normalize_status(raw) is status


def test_job_reader_accepts_every_documented_shape() -> None:
    job = parse_job(
        {
            "id": "j1",
            "state": "done",
            "credits": 7,
            "images": ["https://cdn.example/a.png", {"imageUrl": "/b.png"}, {"src": "data:x"}],
        }
    )
    assert (job.task_id, job.status, job.credits_remaining) == ("j1", JobStatus.SUCCEEDED, 7)
    assert job.images == ["https://cdn.example/a.png", "/b.png", "data:x"]
    stored = parse_job(
        {
            "task_id": "j2",
            "status": "FAILED",
            "taskInfo": json.dumps({"images": [], "errorMessage": "content policy"}),
        }
    )
    assert stored.status is JobStatus.FAILED and stored.error == "content policy"
    assert parse_job({"jobId": "j3", "status": "error", "failReason": "boom"}).error == "boom"
    assert parse_job({"status": "running"}, task_id="known").task_id == "known"


def test_status_route_templates() -> None:
    assert status_request("GET /api/aiimage/status?taskId={taskId}", "a b") == (
        "GET",
        "/api/aiimage/status?taskId=a%20b",
        None,
    )
    assert status_request("/api/tasks/{taskId}", "t/1") == ("GET", "/api/tasks/t%2F1", None)
    assert status_request("POST /api/ai/query", "t") == ("POST", "/api/ai/query", {"taskId": "t"})


# -- end to end ------------------------------------------------------------------------


def test_no_token_exits_3_before_any_request(cli, emulator) -> None:
    run = cli("job", "start", "x", "--base-url", emulator.url)
    assert run.exit_code == 3
    assert f"gpti2 --base-url {emulator.url} auth login" in run.stderr
    assert "GPTI2_TOKEN" in run.stderr
    assert emulator.request_count == 0


def test_start_prints_the_id_then_status_and_fetch(cli, emulator, signed_in, tmp_path) -> None:
    start = cli("job", "start", "a fox", "--base-url", emulator.url)
    assert start.exit_code == 0, start.stderr
    task_id = start.stdout.strip()
    assert task_id.startswith("task_")

    early = cli("job", "fetch", task_id, "--base-url", emulator.url)
    assert early.exit_code == 8 and "--wait" in early.stderr

    waited = cli("job", "status", task_id, "--wait", "--base-url", emulator.url)
    assert waited.exit_code == 0 and waited.stdout == "succeeded\n"

    fetched = cli(
        "job", "fetch", task_id, "-o", str(tmp_path / "out"), "--json", "--base-url", emulator.url
    )
    assert fetched.exit_code == 0, fetched.stderr
    files = fetched.json["files"]
    assert [Path(f["path"]).name for f in files] == [f"{task_id}-1.png"]
    assert Path(files[0]["path"]).read_bytes() == placeholder_png("a fox#1", 512, 512)

    requests_before = emulator.request_count
    again = cli("job", "fetch", task_id, "-o", str(tmp_path / "out"), "--base-url", emulator.url)
    assert again.exit_code == 0 and "kept existing" in again.stderr
    assert emulator.request_count == requests_before + 1  # the status poll, no download


def test_start_wait_fetches_every_image(cli, make_emulator, signed_in, tmp_path) -> None:
    emu = make_emulator(job_seconds=0.3, images_per_job=2)
    run = cli("job", "start", "two", "--wait", "-o", str(tmp_path), "--json", "--base-url", emu.url)
    assert run.exit_code == 0, run.stderr
    out = run.json
    assert out["status"] == "succeeded" and out["creditsRemaining"] == 99
    names = sorted(Path(f["path"]).name for f in out["files"])
    assert names == [f"{out['taskId']}-1.png", f"{out['taskId']}-2.png"]
    human = cli("job", "start", "two", "--wait", "-o", str(tmp_path), "--base-url", emu.url)
    lines = human.stdout.splitlines()
    assert lines[0].startswith("task_") and len(lines) == 3


def test_status_json_fields(cli, emulator, signed_in) -> None:
    task_id = cli("job", "start", "x", "--base-url", emulator.url).stdout.strip()
    out = cli("job", "status", task_id, "--json", "--base-url", emulator.url).json
    assert set(out) == {"taskId", "status", "rawStatus", "progress", "images", "error"}
    assert out["taskId"] == task_id and out["status"] in ("pending", "running")


def test_a_bad_token_exits_3(cli, emulator, monkeypatch) -> None:
    monkeypatch.setenv("GPTI2_TOKEN", "not-a-known-token")
    run = cli("job", "start", "x", "--base-url", emulator.url)
    assert run.exit_code == 3 and "sign" in run.stderr.lower()


def test_403_exits_3(cli, scripted, signed_in) -> None:
    scripted.add(403, {"error": "Forbidden: session expired"})
    run = cli("job", "status", "t1", "--base-url", scripted.url)
    assert run.exit_code == 3 and "session expired" in run.stderr
    assert "refused the token in GPTI2_TOKEN" in run.stderr  # the variable wins: say so


def test_image_alone_selects_image_to_image(cli, scripted, signed_in) -> None:
    scripted.add(200, {"taskId": "t2", "status": "queued"})
    run = cli(
        "job", "start", "x", "--image", "https://example.com/ref.png", "--base-url", scripted.url
    )
    assert run.exit_code == 0, run.stderr
    body = json.loads(scripted.seen[0].body)
    assert body["mode"] == "image_to_image"
    assert body["imageUrls"] == ["https://example.com/ref.png"]


def test_no_credits_exits_4_with_the_server_message(cli, make_emulator, signed_in) -> None:
    emu = make_emulator(credits=0)
    run = cli("job", "start", "x", "--base-url", emu.url)
    assert run.exit_code == 4
    assert "Insufficient credits" in run.stderr


def test_unknown_job_exits_5_and_other_tokens_jobs_are_unknown(cli, emulator, monkeypatch) -> None:
    monkeypatch.setenv("GPTI2_TOKEN", OTHER_TOKEN)
    theirs = cli("job", "start", "x", "--base-url", emulator.url).stdout.strip()
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    assert cli("job", "status", "task_nope", "--base-url", emulator.url).exit_code == 5
    assert cli("job", "status", theirs, "--base-url", emulator.url).exit_code == 5


def test_a_failed_job_exits_7_with_its_error_and_is_refunded(cli, make_emulator, signed_in) -> None:
    emu = make_emulator(job_fail_rate=1.0, job_seconds=0.2)
    task_id = cli("job", "start", "x", "--base-url", emu.url).stdout.strip()
    run = cli("job", "status", task_id, "--wait", "--base-url", emu.url)
    assert run.exit_code == 7
    assert run.stdout == "failed\n"
    errors = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "injected failure" in errors[0]
    assert sum("running" in line for line in run.stderr.splitlines()) <= 1
    assert emu.store.credits(TOKEN) == 100
    assert cli("job", "fetch", task_id, "--base-url", emu.url).exit_code == 7


def test_wait_timeout_exits_8_with_the_id_on_stdout(cli, make_emulator, signed_in) -> None:
    emu = make_emulator(job_seconds=30)
    run = cli("job", "start", "slow", "--wait", "--wait-timeout", "0.3", "--base-url", emu.url)
    assert run.exit_code == 8
    task_id = run.stdout.strip()
    assert task_id.startswith("task_") and task_id in run.stderr


def test_start_meeting_a_503_is_retried_with_the_same_key_and_one_job(
    cli, emulator, signed_in
) -> None:
    emulator.fail_next(503, after_processing=True)  # the job is made, the answer is lost
    run = cli("job", "start", "once", "--json", "-v", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    keys = [line for line in run.stderr.splitlines() if "Idempotency-Key" in line]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert emulator.store.count_jobs(TOKEN) == 1
    assert emulator.store.credits(TOKEN) == 99


def test_start_failing_with_500_is_not_retried(cli, emulator, signed_in) -> None:
    emulator.fail_next(500)
    run = cli("job", "start", "x", "--base-url", emulator.url)
    assert run.exit_code == 6
    assert "the job may exist" in run.stderr
    assert emulator.requests["POST /api/aiimage/start"] == 1


def test_idempotency_key_is_honoured_by_the_emulator(emulator) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "k-1"}
    url = emulator.url + "/api/aiimage/start"
    first = httpx.post(url, json={"prompt": "p"}, headers=headers).json()["data"]
    second = httpx.post(url, json={"prompt": "p"}, headers=headers).json()["data"]
    assert first["taskId"] == second["taskId"]
    assert emulator.store.credits(TOKEN) == 99


def test_concurrent_starts_do_not_corrupt_the_store(emulator) -> None:
    url = emulator.url + "/api/aiimage/start"
    codes = []

    def start() -> None:
        try:
            reply = httpx.post(
                url, json={"prompt": "p"}, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            codes.append(reply.status_code)
        except httpx.HTTPError as exc:  # recorded, so a failure says what happened
            codes.append(repr(exc))

    threads = [threading.Thread(target=start) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 24
    assert emulator.store.count_jobs(TOKEN) == 24
    assert emulator.store.credits(TOKEN) == 100 - 24


def test_a_restarted_emulator_still_serves_old_jobs(
    cli, make_emulator, signed_in, tmp_path
) -> None:
    db = tmp_path / "emu.sqlite3"
    first = make_emulator(db=db, job_seconds=0.1)
    task_id = cli("job", "start", "kept", "--base-url", first.url).stdout.strip()
    first.shutdown()
    second = make_emulator(db=db)
    run = cli("job", "fetch", task_id, "--wait", "-o", str(tmp_path), "--base-url", second.url)
    assert run.exit_code == 0, run.stderr
    assert second.store.credits(TOKEN) == 99


def test_image_to_image_sends_local_files_as_data_urls(cli, scripted, signed_in, tmp_path) -> None:
    ref = tmp_path / "ref.png"
    ref.write_bytes(placeholder_png("ref", 4, 4))
    scripted.add(200, {"code": 0, "message": "ok", "data": {"taskId": "t1", "status": "queued"}})
    run = cli(
        "job",
        "start",
        "x",
        "--mode",
        "image_to_image",
        "--image",
        str(ref),
        "--base-url",
        scripted.url,
    )
    assert run.exit_code == 0, run.stderr
    body = json.loads(scripted.seen[0].body)
    assert body["mode"] == "image_to_image"
    assert body["imageUrls"][0].startswith("data:image/png;base64,")
    assert body["featureId"] == "ai-baby-image" and body["modelId"] == "gpt-image-2-t2i"


def test_missing_reference_image_or_none_is_exit_2_before_any_request(
    cli, emulator, signed_in
) -> None:
    missing = cli("job", "start", "x", "--image", "nope.png", "--base-url", emulator.url)
    none = cli("job", "start", "x", "--mode", "image_to_image", "--base-url", emulator.url)
    assert missing.exit_code == none.exit_code == 2
    assert emulator.request_count == 0


def test_other_status_routes_and_cookie_auth(cli, emulator, signed_in) -> None:
    cli("config", "set", "base_url", emulator.url)
    cli("config", "set", "status_route", "POST /api/ai/query")
    cli("config", "set", "auth_scheme", "cookie")
    task_id = cli("job", "start", "x").stdout.strip()
    assert cli("job", "status", task_id, "--wait").stdout == "succeeded\n"
    cli("config", "set", "status_route", "/api/tasks/{taskId}")
    assert cli("job", "status", task_id).stdout == "succeeded\n"


def test_json_answers_stay_one_object_on_failure_and_timeout(cli, make_emulator, signed_in):
    failing = make_emulator(job_fail_rate=1.0, job_seconds=0.1)
    task_id = cli("job", "start", "x", "--base-url", failing.url).stdout.strip()
    failed = cli("job", "status", task_id, "--wait", "--json", "--base-url", failing.url)
    assert failed.exit_code == 7
    assert failed.json["status"] == "failed" and "injected" in failed.json["error"]
    slow = make_emulator(job_seconds=30)
    task_id = cli("job", "start", "x", "--base-url", slow.url).stdout.strip()
    late = cli("job", "status", task_id, "--wait", "--wait-timeout", "0.2", "--base-url", slow.url)
    assert late.exit_code == 8 and late.stdout.strip() in ("pending", "running")


@pytest.mark.parametrize(
    ("message", "code"),
    [("Insufficient credits: 0 left", 4), ("Please sign in again", 3), ("prompt too long", 5)],
)
def test_envelope_errors_under_http_200_map_to_exit_codes(cli, scripted, signed_in, message, code):
    scripted.add(200, {"code": 40001, "message": message, "data": None})
    run = cli("job", "start", "x", "--base-url", scripted.url)
    assert run.exit_code == code
    assert message in run.stderr


def test_polling_starts_at_the_interval_and_grows_to_10_seconds() -> None:
    from types import SimpleNamespace

    from gpti2.dialects import ServerApi
    from gpti2.jobs import wait

    class Client:
        calls = 0
        api = ServerApi.default()

        def exchange(self, method, path, policy=None, json_body=None, auth=False):
            Client.calls += 1
            job = {"taskId": "t", "status": "weird-state" if Client.calls < 12 else "done"}
            return job, SimpleNamespace(headers={})

    slept: list[float] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    updates = []
    job = wait(
        Client(),  # type: ignore[arg-type]
        "t",
        "GET /s?taskId={taskId}",
        interval=2.0,
        timeout=600,
        on_update=lambda j, elapsed: updates.append(j.raw_status),
        sleep=sleep,
        clock=lambda: clock[0],
    )
    assert job.status is JobStatus.SUCCEEDED
    assert slept[0] == 2.0 and slept[1] == 2.5
    assert max(slept) == 10.0 and slept == sorted(slept)
    assert updates[0] == "weird-state"  # unknown: still polled, raw value kept for display


def test_fetch_force_downloads_again_over_an_existing_file(cli, emulator, signed_in, tmp_path):
    task_id = cli("job", "start", "f", "--wait", "-o", str(tmp_path), "--base-url", emulator.url)
    task_id = task_id.stdout.splitlines()[0]
    target = tmp_path / f"{task_id}-1.png"
    stale = placeholder_png("an older image", 8, 8)
    target.write_bytes(stale)
    kept = cli("job", "fetch", task_id, "-o", str(tmp_path), "--base-url", emulator.url)
    assert kept.exit_code == 0 and target.read_bytes() == stale
    target.write_bytes(b"not an image")
    sent = emulator.request_count
    refused = cli("job", "fetch", task_id, "-o", str(tmp_path), "--base-url", emulator.url)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert emulator.request_count == sent + 1  # the status poll, no download
    forced = cli(
        "job", "fetch", task_id, "-o", str(tmp_path), "--force", "--base-url", emulator.url
    )
    assert forced.exit_code == 0 and target.read_bytes().startswith(b"\x89PNG")
