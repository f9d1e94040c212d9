"""Retries never multiply a paid generation (API.md 4), counted on the server's side.

Sleeps are injected (ApiClient(sleep=...)), so no test waits for a backoff.
"""

from __future__ import annotations

import socket

import pytest

from conftest import TOKEN
from gpti2 import jobs, quick
from gpti2.client import ApiClient, Credentials
from gpti2.errors import MayHaveRunError, ServerError
from gpti2.retry import RetryPolicy

QUICK = "POST /api/generate-images"
START = "POST /api/aiimage/start"


def request() -> quick.QuickRequest:
    return quick.QuickRequest("a red fox", "openai", "dall-e-3", "1:1")


def job_request() -> jobs.StartRequest:
    return jobs.StartRequest("a red fox", "ai-baby-image", "text_to_image", None, "1:1")


def client_for(url: str, slept: list[float], **kwargs) -> ApiClient:
    kwargs.setdefault("credentials", Credentials(TOKEN))
    return ApiClient(url, sleep=slept.append, **kwargs)


# -- the policy as a value --------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_paid_post_is_retried_only_where_the_server_did_not_take_it(status) -> None:
    assert RetryPolicy.PAID_POST.retries_status(status)
    assert RetryPolicy.IDEMPOTENT.retries_status(status)


@pytest.mark.parametrize("status", [500, 408])
def test_a_paid_post_is_not_retried_where_the_generation_may_have_run(status) -> None:
    assert not RetryPolicy.PAID_POST.retries_status(status)
    assert RetryPolicy.IDEMPOTENT.retries_status(status)


def test_transport_failures_by_policy() -> None:
    assert RetryPolicy.PAID_POST.retries_failure(not_sent=True)
    assert not RetryPolicy.PAID_POST.retries_failure(not_sent=False)
    assert RetryPolicy.IDEMPOTENT.retries_failure(not_sent=False)


# -- the quick route ---------------------------------------------------------------------


def test_a_500_on_the_quick_route_is_sent_exactly_once(emulator) -> None:
    emulator.fail_next(500)
    slept: list[float] = []
    with client_for(emulator.url, slept) as client, pytest.raises(MayHaveRunError) as caught:
        quick.generate(client, request())
    assert emulator.requests[QUICK] == 1 and slept == []
    assert "may have been generated" in caught.value.message


def test_a_503_on_the_quick_route_is_retried(emulator) -> None:
    emulator.fail_next(503)
    slept: list[float] = []
    with client_for(emulator.url, slept) as client:
        image = quick.generate(client, request())
    assert image.info.format == "png"
    assert emulator.requests[QUICK] == 2 and len(slept) == 1


def test_a_read_timeout_on_the_quick_route_is_not_sent_again(make_emulator, cli) -> None:
    emu = make_emulator(latency=1.0)
    run = cli("generate", "x", "--timeout", "0.3", "--base-url", emu.url)
    assert run.exit_code == 6
    assert "within 0.3 s" in run.stderr and "may have been generated" in run.stderr
    assert emu.requests[QUICK] == 1


def test_the_cli_sends_a_500_once_and_says_the_generation_may_have_run(cli, emulator) -> None:
    emulator.fail_next(500)
    run = cli("generate", "x", "--base-url", emulator.url)
    assert run.exit_code == 6
    assert "may have been generated" in run.stderr
    assert "hint: check your account" in run.stderr
    assert emulator.requests[QUICK] == 1


def test_a_connection_refused_before_sending_is_retried() -> None:
    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    slept: list[float] = []
    client = client_for(f"http://127.0.0.1:{port}", slept, retries=2)
    with client, pytest.raises(ServerError) as caught:
        quick.generate(client, request())
    assert len(slept) == 2  # two retries, then the error
    assert not isinstance(caught.value, MayHaveRunError)
    assert "cannot connect" in caught.value.message


# -- Retry-After -------------------------------------------------------------------------


def test_retry_after_is_honoured(scripted) -> None:
    scripted.add(429, {"error": "slow down"}, headers={"Retry-After": "7"})
    scripted.add(200, {"ok": True})
    slept: list[float] = []
    with client_for(scripted.url, slept) as client:
        reply = client.send("GET", "/x", policy=RetryPolicy.IDEMPOTENT)
    assert reply.status == 200 and slept == [7.0]


def test_a_retry_after_over_60_seconds_is_an_error_saying_when_to_come_back(scripted) -> None:
    scripted.add(503, {"error": "maintenance"}, headers={"Retry-After": "3600"})
    slept: list[float] = []
    with client_for(scripted.url, slept) as client, pytest.raises(ServerError) as caught:
        quick.generate(client, request())
    assert slept == [] and len(scripted.seen) == 1
    assert "3600 s" in caught.value.message
    assert "come back after" in (caught.value.hint or "") and "UTC" in caught.value.hint


# -- the job route -----------------------------------------------------------------------


def test_a_500_on_a_job_start_is_sent_once_and_says_the_job_may_exist(emulator) -> None:
    emulator.fail_next(500)
    slept: list[float] = []
    with client_for(emulator.url, slept) as client, pytest.raises(MayHaveRunError) as caught:
        jobs.start(client, job_request())
    assert emulator.requests[START] == 1 and slept == []
    assert "job may exist" in caught.value.hint


def test_a_503_on_a_job_start_is_retried_with_the_same_idempotency_key(emulator) -> None:
    emulator.fail_next(503, after_processing=True)  # the proxy lost the answer
    slept: list[float] = []
    with client_for(emulator.url, slept) as client:
        job = jobs.start(client, job_request())
    assert emulator.requests[START] == 2
    assert emulator.store.count_jobs(TOKEN) == 1  # the key found the first job again
    assert job.task_id


def test_a_read_timeout_on_a_job_start_is_not_sent_again(make_emulator) -> None:
    emu = make_emulator(latency=0.8)
    slept: list[float] = []
    with client_for(emu.url, slept, timeout=0.3) as client, pytest.raises(MayHaveRunError):
        jobs.start(client, job_request())
    assert emu.requests[START] == 1 and slept == []


def test_status_polls_keep_the_full_policy(emulator) -> None:
    slept: list[float] = []
    with client_for(emulator.url, slept) as client:
        job = jobs.start(client, job_request())
        emulator.fail_next(500)
        again = jobs.status(client, job.task_id)
    assert again.task_id == job.task_id
    assert emulator.requests["GET /api/aiimage/status"] == 2 and len(slept) == 1
