"""Job waits that end when the job ends, and a job's images downloaded together.

The waits are simulated on a fake clock (no real sleeps): a server that gives hints
(Retry-After on status answers, a moving progress figure) as the emulator does, and one
that gives none, as ShipAny Two.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import TOKEN
from gpti2 import jobs
from gpti2.dialects import ServerApi
from gpti2.jobs import Job, JobStatus, PollSchedule


class SimulatedServer:
    """A job of `duration` seconds on a fake clock; each status query costs `latency`."""

    def __init__(self, duration: float, hints: bool, latency: float = 0.02) -> None:
        self.duration, self.hints, self.latency = duration, hints, latency
        self.now = 0.0
        self.polls = 0
        self.api = ServerApi.default()

    def exchange(self, method, path, policy=None, json_body=None, auth=False):
        self.now += self.latency
        self.polls += 1
        left = self.duration - self.now
        status = "success" if left <= 0 else "processing"
        job = {"taskId": "t", "status": status}
        headers = {}
        if self.hints and left > 0:
            job["progress"] = round(min(99.9, 100 * self.now / self.duration), 1)
            if left >= 2:
                headers["retry-after"] = str(int(left) - 1)
        return job, SimpleNamespace(headers=headers)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def wait(self, interval: float = 2.0, fresh: bool = True) -> Job:
        """jobs.wait; `fresh`: as job start --wait, the job created by a start request
        sent at 0 whose answer came back one latency later, when the wait begins."""
        if fresh:
            self.now = self.latency
        return jobs.wait(
            self,  # type: ignore[arg-type]
            "t",
            interval=interval,
            timeout=10_000,
            sleep=self.sleep,
            clock=lambda: self.now,
            started_ago=self.now if fresh else None,
        )


def todays_polls(duration: float, interval: float = 2.0) -> int:
    """Polls of the schedule before hints were read: 2 s, growing 1.25x to 10 s."""
    t, delay, polls = 0.0, interval, 1
    while t < duration:
        t += delay
        delay = min(10.0, delay * 1.25)
        polls += 1
    return polls


@pytest.mark.parametrize("duration", [0.5, 1, 2, 3, 7, 10, 30, 60, 90, 120, 300])
def test_a_wait_ends_within_half_a_second_of_the_job_with_no_more_polls(duration) -> None:
    server = SimulatedServer(duration, hints=True)
    job = server.wait()  # job start --wait: the job began as the wait did
    assert job.status is JobStatus.SUCCEEDED
    late = server.now - duration
    assert 0 <= late <= 0.5, late
    assert server.polls <= todays_polls(duration), (server.polls, todays_polls(duration))


@pytest.mark.parametrize("duration", [0.5, 1, 3, 7, 10, 30, 60, 120, 300])
@pytest.mark.parametrize("joined", [0.1, 0.5, 0.9, 0.97])
def test_waiting_for_a_job_already_running_also_ends_on_time(duration, joined) -> None:
    # job status --wait, a while after the start: the first answer's progress has no
    # pace yet, so one look 0.4 s later may be a poll more than before
    server = SimulatedServer(duration, hints=True)
    server.now = duration * joined
    server.wait(fresh=False)
    assert 0 <= server.now - duration <= 0.5
    before = SimulatedServer(duration, hints=False)
    before.now = duration * joined
    before.wait(fresh=False)
    assert server.polls <= before.polls + 1


@pytest.mark.parametrize("duration", [1, 10, 60])
def test_without_hints_the_schedule_is_todays(duration) -> None:
    server = SimulatedServer(duration, hints=False)
    server.wait(fresh=False)
    assert server.polls == todays_polls(duration, 2.0)


def test_retry_after_on_a_status_answer_is_when_to_ask_again() -> None:
    schedule = PollSchedule(2.0)
    job = Job("t", JobStatus.RUNNING, retry_after=7.0)
    assert schedule.next(job, 0.1) == 7.0
    assert schedule.next(Job("t", JobStatus.RUNNING, retry_after=3600.0), 7.2) == 30.0


def test_progress_gives_the_expected_end() -> None:
    schedule = PollSchedule(10.0)
    first = schedule.next(Job("t", JobStatus.RUNNING, progress=10.0), 1.0)
    assert first == jobs.SECOND_SAMPLE  # one sample: look again soon for its pace
    delay = schedule.next(Job("t", JobStatus.RUNNING, progress=60.0), 6.0)
    assert delay == pytest.approx(4.0 + jobs.POLL_MARGIN)  # 10 %/s, 40 % left
    assert schedule.next(Job("t", JobStatus.RUNNING, progress=99.9), 10.1) == jobs.NEAR_END_INTERVAL


def test_a_progress_that_stalls_falls_back_to_the_plain_schedule() -> None:
    schedule = PollSchedule(2.0)
    schedule.next(Job("t", JobStatus.RUNNING, progress=10.0), 1.0)
    schedule.next(Job("t", JobStatus.RUNNING, progress=50.0), 5.0)  # ends at 10 s
    late = schedule.next(Job("t", JobStatus.RUNNING, progress=50.0), 20.0)
    assert late > jobs.NEAR_END_INTERVAL


def test_the_emulator_hints_and_a_real_wait_uses_them(cli, make_emulator, monkeypatch) -> None:
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    emu = make_emulator(job_seconds=3.2)
    run = cli("job", "start", "x", "--wait", "--json", "--base-url", emu.url)
    assert run.exit_code == 0, run.stderr
    polls = emu.requests["GET /api/aiimage/status"]
    assert polls <= todays_polls(3.2), polls  # 0, ~1.2 (Retry-After), ~3.25 (progress)


# -- a job's images, downloaded together --------------------------------------------------


@pytest.fixture
def eight_images(make_emulator, monkeypatch):
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    monkeypatch.setenv("GPTI2_POLL_INTERVAL", "0.05")
    return make_emulator(job_seconds=0.1, images_per_job=8, latency=0.15)


def test_a_jobs_images_download_a_few_at_a_time(cli, eight_images, tmp_path) -> None:
    emu = eight_images
    run = cli("job", "start", "x", "--wait", "-o", str(tmp_path), "--json", "--base-url", emu.url)
    assert run.exit_code == 0, run.stderr
    names = [Path(f["path"]).name for f in run.json["files"]]
    task_id = run.json["taskId"]
    assert names == [f"{task_id}-{n}.png" for n in range(1, 9)]  # in image order
    assert 2 <= emu.peak_in_flight("/api/aiimage/files/") <= jobs.DOWNLOADS


def test_job_fetch_downloads_together_and_keeps_existing_files(cli, eight_images, tmp_path):
    emu = eight_images
    task_id = cli("job", "start", "x", "--base-url", emu.url).stdout.strip()
    (tmp_path / f"{task_id}-2.png").write_bytes(b"not yet")  # in the way: refused first
    refused = cli("job", "fetch", task_id, "--wait", "-o", str(tmp_path), "--base-url", emu.url)
    assert (
        refused.exit_code == 2
        and emu.requests.get(f"GET /api/aiimage/files/{task_id}/1.png") is None
    )
    (tmp_path / f"{task_id}-2.png").unlink()
    run = cli("job", "fetch", task_id, "-o", str(tmp_path), "--base-url", emu.url)
    assert run.exit_code == 0, run.stderr
    assert len(run.stdout.split()) == 8
    assert 2 <= emu.peak_in_flight("/api/aiimage/files/") <= jobs.DOWNLOADS


def test_one_failed_download_stops_the_others_and_leaves_no_part_file(cli, eight_images, tmp_path):
    emu = eight_images
    tmp_path = tmp_path / "out"
    task_id = cli("job", "start", "x", "--base-url", emu.url).stdout.strip()
    cli("job", "status", task_id, "--wait", "--base-url", emu.url)
    emu.fail_next(404, path=f"/api/aiimage/files/{task_id}/3")  # a 404 is not retried
    run = cli("job", "fetch", task_id, "-o", str(tmp_path), "--base-url", emu.url)
    assert run.exit_code == 5, run.stderr
    assert not list(tmp_path.glob("*.part")) and not list(tmp_path.glob(".*"))
    for path in tmp_path.iterdir():  # whatever finished is whole
        assert path.read_bytes().startswith(b"\x89PNG")
