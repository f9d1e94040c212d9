"""Server dialects end to end: `api = "shipany"` (ShipAny Two) against the emulator's
ShipAny dialect, sign-in with email and password, sessions, ids, envelope errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from conftest import TOKEN
from gpti2.dialects import ServerApi, get
from gpti2.jobs import StartRequest, parse_job

ALICE, ALICE_PW = "alice@example.com", "alice-pass-123"
BOB, BOB_PW = "bob@example.com", "bob-pass-456"


@pytest.fixture(autouse=True)
def fast_polls(monkeypatch):
    monkeypatch.setenv("GPTI2_POLL_INTERVAL", "0.05")


@pytest.fixture
def shipany(make_emulator):
    """The emulator speaking ShipAny Two, with two users."""
    return make_emulator(
        api="shipany", users=[f"{ALICE}:{ALICE_PW}", f"{BOB}:{BOB_PW}"], job_seconds=0.4
    )


@pytest.fixture
def configured(cli, shipany):
    """A profile set to `api = "shipany"` and nothing else, pointing at the emulator."""
    assert cli("config", "set", "api", "shipany").exit_code == 0
    assert cli("config", "set", "base_url", shipany.url).exit_code == 0
    return shipany


def signed_in_to(cli, make_emulator, **flags):
    """An emulator with these flags and one user, Alice signed in to it."""
    emu = make_emulator(api="shipany", users=[f"{ALICE}:{ALICE_PW}"], **flags)
    cli("config", "set", "api", "shipany")
    cli("config", "set", "base_url", emu.url)
    assert sign_in(cli).exit_code == 0
    return emu


def sign_in(cli, email=ALICE, password=ALICE_PW, *args: str):
    return cli("auth", "login", "--email", email, "--password-stdin", *args, input=password + "\n")


# -- the dialect table, unit-tested ------------------------------------------------------


def test_shipany_start_body_is_the_templates() -> None:
    api = ServerApi.default("shipany")
    request = StartRequest("a fox", "ignored", "image_to_image", None, "16:9", ("https://x/a.png",))
    method, path, body = api.start(request)
    assert (method, path) == ("POST", "/api/ai/generate")
    assert body == {
        "provider": "kie",
        "mediaType": "image",
        "model": "gpt-image-2-image-to-image",
        "prompt": "a fox",
        "scene": "image-to-image",
        "options": {"aspect_ratio": "16:9", "image_input": ["https://x/a.png"]},
    }
    assert api.status("a b") == ("POST", "/api/ai/query", {"taskId": "a b"})


def test_gpti2_start_body_is_unchanged() -> None:
    api = ServerApi.default()
    _, path, body = api.start(StartRequest("p", "f", "text_to_image", None, "1:1"))
    assert path == "/api/aiimage/start"
    assert body == {
        "featureId": "f",
        "mode": "text_to_image",
        "modelId": "gpt-image-2-t2i",
        "prompt": "p",
        "aspectRatio": "1:1",
    }


def test_the_job_id_is_the_servers_own_and_the_providers_is_kept_apart() -> None:
    row = {"id": "row-1", "taskId": "kie-9", "status": "success", "taskInfo": "{}"}
    job = parse_job(row, dialect=get("shipany"))
    assert (job.task_id, job.provider_task_id) == ("row-1", "kie-9")
    assert job.ids() == {"taskId": "row-1", "providerTaskId": "kie-9"}
    assert parse_job(row, dialect=get("gpti2")).task_id == "kie-9"


def test_task_info_strings_give_images_and_the_failure() -> None:
    done = {
        "id": "r",
        "status": "success",
        "taskInfo": json.dumps({"images": [{"imageUrl": "https://cdn/x.png"}], "status": "ok"}),
    }
    assert parse_job(done, dialect=get("shipany")).images == ["https://cdn/x.png"]
    failed = {"id": "r", "status": "failed", "taskInfo": '{"status":"fail","errorMessage":"nsfw"}'}
    assert parse_job(failed, dialect=get("shipany")).error == "nsfw"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("no auth, please sign in", 3),
        ("insufficient credits", 4),
        ("Insufficient credits, 0 < 2", 4),
        ("invalid params", 5),
        ("invalid scene", 5),
        ("task not found", 5),
        ("no permission", 5),
        ("prompt too long (max 2000 chars)", 5),
        ("generate image failed: upstream said no", 6),
        ("request failed with status: 500", 6),
        ("unknown status: weird", 6),
    ],
)
def test_shipany_envelope_messages_map_to_exit_codes(message, code) -> None:
    assert get("shipany").envelope_error(-1, message).exit_code == code


def test_config_set_api_shipany_alone_sets_every_default(cli) -> None:
    cli("config", "set", "api", "shipany")
    listed = cli("config", "list", "--json").json["settings"]
    assert listed["start_route"] == {
        "value": "POST /api/ai/generate",
        "source": "default for api shipany",
    }
    assert listed["status_route"]["value"] == "POST /api/ai/query"
    assert listed["auth_scheme"]["value"] == "cookie"
    assert listed["cookie_name"]["value"] == "__Secure-better-auth.session_token"  # https
    plain = cli("config", "get", "cookie_name", "--base-url", "http://127.0.0.1:1").stdout
    assert plain.strip() == "better-auth.session_token"
    cli("config", "set", "start_route", "/api/v2/generate")
    assert cli("config", "get", "start_route").stdout.strip() == "/api/v2/generate"


# -- sign-in -----------------------------------------------------------------------------


def test_sign_in_stores_the_signed_cookie_and_switches_to_cookies(cli, configured) -> None:
    run = sign_in(cli)
    assert run.exit_code == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and f"as {ALICE} (Alice)" in lines[0] and "until" in lines[0]
    assert ALICE_PW not in run.stderr + run.stdout
    config = (Path.home() / ".config" / "gpti2" / "config.toml").read_text()
    assert 'auth_scheme = "cookie"' in config and ALICE_PW not in config
    stored = cli("auth", "token").stdout.strip()
    token, _, signature = stored.partition(".")
    assert len(token) == 32 and signature.endswith("%3D")  # URL-encoded base64
    status = cli("auth", "status", "--json")
    assert status.exit_code == 0, status.stderr
    assert status.json["user"]["email"] == ALICE and status.json["signedIn"] is True
    assert status.json["expiresAt"].endswith("Z")


def test_a_wrong_password_is_exit_3_and_stores_nothing(cli, configured) -> None:
    run = sign_in(cli, ALICE, "wrong-password")
    assert run.exit_code == 3
    assert "Invalid email or password" in run.stderr and "wrong-password" not in run.stderr
    assert cli("auth", "token").exit_code == 3


def test_the_password_never_shows_in_a_verbose_dump(cli, configured) -> None:
    run = sign_in(cli, ALICE, ALICE_PW, "-v")
    assert run.exit_code == 0, run.stderr
    assert "POST" in run.stderr and "/api/auth/sign-in/email" in run.stderr
    assert ALICE_PW not in run.stderr + run.stdout
    stored = cli("auth", "token").stdout.strip()
    assert stored not in run.stderr and stored.split(".")[0] not in run.stderr


def test_email_sign_in_needs_a_dialect_that_has_it(cli, emulator) -> None:
    run = sign_in(cli, ALICE, ALICE_PW, "--base-url", emulator.url)
    assert run.exit_code == 2
    assert "config set api shipany" in run.stderr


def test_an_expired_session_is_exit_3_with_a_hint_that_works(cli, configured) -> None:
    assert sign_in(cli).exit_code == 0
    configured.store.expire_sessions()
    status = cli("auth", "status", "--profile", "default")
    assert status.exit_code == 3
    assert "expired or was signed out" in status.stderr
    assert f"gpti2 --profile default auth login --email {ALICE}" in status.stderr
    job = cli("job", "start", "x")
    assert job.exit_code == 3 and "no auth, please sign in" in job.stderr
    assert f"auth login --email {ALICE}" in job.stderr


def test_a_pasted_session_cookie_is_checked_before_it_is_stored(cli, configured) -> None:
    value = configured.client_credentials().token
    ok = cli("auth", "login", "--with-token", input=value)
    assert ok.exit_code == 0, ok.stderr
    assert "emulator@localhost" not in ok.stderr  # users are alice and bob
    assert f"as {ALICE}" in ok.stderr
    tampered = value[:-6] + "AAAA%3D"
    bad = cli("auth", "login", "--with-token", input=tampered)
    assert bad.exit_code == 3 and "nothing was stored" in bad.stderr
    assert cli("auth", "token").stdout.strip() == value


def test_a_pasted_token_is_checked_in_the_gpti2_dialect_too(cli, emulator) -> None:
    bad = cli("auth", "login", "--with-token", "--base-url", emulator.url, input="nope-token")
    assert bad.exit_code == 3 and "refused" in bad.stderr
    assert cli("auth", "token", "--base-url", emulator.url).exit_code == 3
    good = cli("auth", "login", "--with-token", "--base-url", emulator.url, input=TOKEN)
    assert good.exit_code == 0 and "accepted" in good.stderr


def test_the_secure_cookie_name_is_taken_from_set_cookie(cli, make_emulator) -> None:
    # plain http, yet the site names its cookie __Secure-: the name set is the one sent
    signed_in_to(cli, make_emulator, secure_cookies=True)
    run = cli("job", "start", "x", "--json")
    assert run.exit_code == 0, run.stderr


# -- jobs --------------------------------------------------------------------------------


def test_start_wait_fetch_use_the_servers_id(cli, configured, tmp_path) -> None:
    assert sign_in(cli).exit_code == 0
    run = cli("job", "start", "a red fox", "--wait", "-o", str(tmp_path), "--json")
    assert run.exit_code == 0, run.stderr
    answer = run.json
    assert answer["taskId"] != answer["providerTaskId"] and len(answer["providerTaskId"]) == 32
    assert answer["status"] == "succeeded"
    assert Path(answer["files"][0]["path"]).name == f"{answer['taskId']}-1.png"
    assert configured.requests["POST /api/ai/generate"] == 1
    status = cli("job", "status", answer["taskId"], "--json")
    assert status.json["taskId"] == answer["taskId"]
    assert status.json["providerTaskId"] == answer["providerTaskId"]
    provider_id = cli("job", "status", answer["providerTaskId"])
    assert provider_id.exit_code == 5 and "task not found" in provider_id.stderr


def test_start_then_fetch_later(cli, configured, tmp_path) -> None:
    assert sign_in(cli).exit_code == 0
    task_id = cli("job", "start", "x").stdout.strip()
    fetched = cli("job", "fetch", task_id, "--wait", "-o", str(tmp_path))
    assert fetched.exit_code == 0, fetched.stderr
    assert fetched.stdout.strip() == str(tmp_path / f"{task_id}-1.png")


def test_another_users_job_is_no_permission(cli, configured) -> None:
    assert sign_in(cli).exit_code == 0
    task_id = cli("job", "start", "x").stdout.strip()
    assert sign_in(cli, BOB, BOB_PW).exit_code == 0
    run = cli("job", "status", task_id)
    assert run.exit_code == 5 and "no permission" in run.stderr


def test_a_failed_job_is_exit_7_with_the_providers_reason(cli, make_emulator) -> None:
    signed_in_to(cli, make_emulator, job_fail_rate=1.0)
    run = cli("job", "start", "x", "--wait")
    assert run.exit_code == 7 and "injected failure" in run.stderr


def test_insufficient_credits_is_exit_4(cli, make_emulator) -> None:
    signed_in_to(cli, make_emulator, credits=3)
    assert cli("job", "start", "x").exit_code == 0  # 2 credits
    run = cli("job", "start", "x")
    assert run.exit_code == 4 and "insufficient credits" in run.stderr


def test_a_provider_failure_at_start_is_exit_6_and_sent_once(cli, configured) -> None:
    assert sign_in(cli).exit_code == 0
    run = cli("job", "start", "x", "--model", "no-such-model")
    assert run.exit_code == 6 and "generate image failed" in run.stderr
    assert configured.requests["POST /api/ai/generate"] == 1


def test_a_500_on_a_start_is_sent_once(cli, configured) -> None:
    assert sign_in(cli).exit_code == 0
    configured.fail_next(500)
    run = cli("job", "start", "x")
    assert run.exit_code == 6 and "job may exist" in run.stderr
    assert configured.requests["POST /api/ai/generate"] == 1


def test_the_emulator_answers_as_the_template_does(shipany) -> None:
    url = shipany.url
    assert httpx.get(url + "/api/ai/generate").status_code == 405
    assert httpx.get(url + "/api/auth/get-session").json() is None
    unsigned = httpx.post(url + "/api/ai/generate", json={"provider": "kie"}).json()
    assert unsigned == {"code": -1, "message": "invalid params", "data": None}
    body = {
        "provider": "kie",
        "mediaType": "image",
        "model": "gpt-image-2-text-to-image",
        "prompt": "p",
        "scene": "text-to-image",
        "options": {"aspect_ratio": "1:1"},
    }
    signed_out = httpx.post(url + "/api/ai/generate", json=body).json()
    assert signed_out["message"] == "no auth, please sign in"
    signed = httpx.post(
        url + "/api/auth/sign-in/email", json={"email": ALICE, "password": ALICE_PW}
    )
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("better-auth.session_token=")
    assert cookie.endswith("; Max-Age=604800; Path=/; HttpOnly; SameSite=Lax")
    value = cookie.split(";")[0].split("=", 1)[1]
    headers = {"Cookie": f"better-auth.session_token={value}"}
    row = httpx.post(url + "/api/ai/generate", json={**body, "scene": "x"}, headers=headers)
    assert row.json()["message"] == "invalid scene"
    data = httpx.post(url + "/api/ai/generate", json=body, headers=headers).json()["data"]
    assert data["status"] == "pending" and data["taskInfo"] == "{}" and data["costCredits"] == 2
    query = httpx.post(url + "/api/ai/query", json={"taskId": data["id"]}, headers=headers)
    assert json.loads(query.json()["data"]["taskInfo"])["status"] in ("waiting", "generating")
    bearer = {"Authorization": f"Bearer {value}"}
    refused = httpx.post(url + "/api/ai/query", json={"taskId": data["id"]}, headers=bearer)
    assert refused.json()["message"] == "no auth, please sign in"


def test_base_url_local_uses_the_profiles_dialect(cli, tmp_path) -> None:
    cli("config", "set", "api", "shipany")
    run = cli("job", "start", "x", "--wait", "--base-url", "local", "-o", str(tmp_path), "--json")
    assert run.exit_code == 0, run.stderr
    assert "providerTaskId" in run.json


def test_post_status_queries_keep_the_full_policy(shipany) -> None:
    from gpti2 import jobs
    from gpti2.client import ApiClient

    slept: list[float] = []
    api = ServerApi.default("shipany")
    credentials = shipany.client_credentials()
    with ApiClient(shipany.url, api=api, credentials=credentials, sleep=slept.append) as client:
        job = jobs.start(client, StartRequest("x", "", "text_to_image", None, "1:1"))
        shipany.fail_next(500)
        again = jobs.status(client, job.task_id)
    assert again.task_id == job.task_id
    assert shipany.requests["POST /api/ai/query"] == 2 and len(slept) == 1


# -- generate reports what it received -----------------------------------------------------


def test_generate_json_reports_the_ratio_received_and_notes_the_difference(cli, scripted) -> None:
    import base64

    from gpti2.emulator.art import placeholder_png

    image = base64.b64encode(placeholder_png("sq", 32, 32)).decode()
    scripted.add(200, {"provider": "openai", "image": image})
    run = cli("generate", "x", "-a", "16:9", "--json", "--base-url", scripted.url)
    assert run.exit_code == 0, run.stderr
    assert (run.json["aspectRatio"], run.json["requestedAspectRatio"]) == ("1:1", "16:9")
    notes = [line for line in run.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "16:9" in notes[0] and "1:1" in notes[0]
    quiet = cli("generate", "y", "-a", "16:9", "-q", "--json", "--base-url", scripted.url)
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_generate_says_nothing_when_the_ratio_was_honoured(cli, emulator) -> None:
    run = cli("generate", "x", "-a", "16:9", "--json", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    assert run.json["aspectRatio"] == run.json["requestedAspectRatio"] == "16:9"
    assert "note:" not in run.stderr


# -- -v and tracebacks ---------------------------------------------------------------------


def test_verbose_never_shows_a_traceback_for_a_handled_error(cli, configured) -> None:
    run = cli("-v", "job", "status", "nope")
    assert run.exit_code == 3  # not signed in
    assert "Traceback" not in run.stderr


def test_a_rate_limited_get_session_is_asked_again_after_retry_after(cli, make_emulator):
    # better-auth on the template: a second get-session with the same cookie within
    # 800 ms is a 429 with Retry-After: 1 (login checks the session, then status asks)
    emu = signed_in_to(cli, make_emulator, session_interval=0.8)
    run = cli("auth", "status", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json["signedIn"] is True
    assert emu.requests["GET /api/auth/get-session"] == 3  # login's, the 429, the retry


def test_logout_ends_the_session_on_the_server(cli, configured) -> None:
    assert sign_in(cli).exit_code == 0
    value = cli("auth", "token").stdout.strip()
    assert cli("auth", "logout").exit_code == 0
    assert configured.requests["POST /api/auth/sign-out"] == 1
    headers = {"Cookie": f"better-auth.session_token={value}"}
    assert httpx.get(configured.url + "/api/auth/get-session", headers=headers).json() is None


def test_hints_after_a_lost_session_keep_how_it_was_stored(cli, configured) -> None:
    assert sign_in(cli, ALICE, ALICE_PW, "--insecure-storage").exit_code == 0
    configured.store.expire_sessions()
    run = cli("job", "start", "x")
    assert run.exit_code == 3
    assert f"auth login --email {ALICE} --insecure-storage" in run.stderr


def test_a_status_answer_that_keeps_failing_ends_with_how_to_resume(cli, configured, monkeypatch):
    from gpti2 import jobs

    monkeypatch.setattr(jobs, "WAIT_PATIENCE", 0.3)
    assert sign_in(cli).exit_code == 0
    task_id = cli("job", "start", "x").stdout.strip()
    for _ in range(40):
        configured.fail_next(503, path="/api/ai/query")
    run = cli("job", "status", task_id, "--wait", "--retries", "0")
    assert run.exit_code == 6
    assert f"gpti2 job status {task_id} --wait" in run.stderr


def test_a_local_reference_image_warns_that_the_provider_may_refuse_it(cli, configured, tmp_path):
    from gpti2.emulator.art import placeholder_png

    assert sign_in(cli).exit_code == 0
    reference = tmp_path / "ref.png"
    reference.write_bytes(placeholder_png("ref", 8, 8))
    run = cli("job", "start", "make it blue", "--image", str(reference))
    assert run.exit_code == 0, run.stderr
    assert "data: URL" in run.stderr and "https:// URL" in run.stderr
    by_url = cli("job", "start", "make it blue", "--image", "https://example.com/ref.png")
    assert by_url.exit_code == 0 and "warning" not in by_url.stderr


def test_with_nothing_stored_the_hint_is_the_dialects_sign_in(cli, configured) -> None:
    run = cli("job", "start", "x")
    assert run.exit_code == 3
    assert "gpti2 auth login --email ADDRESS" in run.stderr
