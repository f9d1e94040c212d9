"""`gpti2 auth`: keyring (explicit test backends), GPTI2_TOKEN, the 0600 fallback file."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TOKEN, gpti2_command, use_keyring

# Nothing listens on port 9 (discard): a login's check of the token fails to connect, so
# the token is stored unchecked (a test never depends on a server someone else started).
BASE = "http://127.0.0.1:9"
# Read at import: the autouse fixture clears GPTI2_* variables before each test runs.
REQUIRE_SECRET_SERVICE = bool(os.environ.get("GPTI2_REQUIRE_SECRET_SERVICE"))


def test_login_status_token_logout_with_the_keyring(cli) -> None:
    login = cli("auth", "login", "--with-token", "--base-url", BASE, input=TOKEN + "\n")
    assert login.exit_code == 0, login.stderr
    assert "keyring" in login.stderr and TOKEN not in login.stderr + login.stdout

    status = cli("auth", "status", "--base-url", BASE)
    assert status.exit_code == 0
    assert "source: keyring" in status.stdout
    assert "host: 127.0.0.1:9" in status.stdout
    assert f"token: {TOKEN[:4]}…" in status.stdout
    assert TOKEN[4:8] not in status.stdout

    token = cli("auth", "token", "--base-url", BASE)
    assert token.stdout == TOKEN + "\n"
    assert "keyring" in token.stderr
    assert cli("auth", "token", "-q", "--base-url", BASE).stderr == ""

    assert cli("auth", "logout", "--base-url", BASE).exit_code == 0
    gone = cli("auth", "status", "--base-url", BASE)
    assert gone.exit_code == 3
    assert f"gpti2 --base-url {BASE} auth login" in gone.stderr


def test_tokens_are_kept_per_profile_and_host(cli) -> None:
    cli("auth", "login", "--with-token", "--base-url", BASE, input="tok-a")
    cli("auth", "login", "--with-token", "--base-url", "http://127.0.0.1:9999", input="tok-b")
    assert cli("auth", "token", "--base-url", BASE).stdout.strip() == "tok-a"
    assert cli("auth", "token", "--base-url", "http://127.0.0.1:9999").stdout.strip() == "tok-b"
    cli("config", "set", "base_url", BASE, "--profile", "other")
    other = cli("auth", "token", "--profile", "other")
    assert other.exit_code == 3


def test_no_keyring_exits_3_naming_both_ways_out(cli, monkeypatch) -> None:
    use_keyring("keyring.backends.fail.Keyring", monkeypatch)
    run = cli("auth", "login", "--with-token", input=TOKEN)
    assert run.exit_code == 3
    assert "keyring" in run.stderr
    assert "GPTI2_TOKEN" in run.stderr and "--insecure-storage" in run.stderr
    assert TOKEN not in run.stderr


def test_a_hanging_keyring_counts_as_no_keyring_within_seconds(cli, monkeypatch) -> None:
    use_keyring("fake_keyring.HangingKeyring", monkeypatch)
    started = time.monotonic()
    run = cli("auth", "login", "--with-token", input=TOKEN)
    assert run.exit_code == 3
    assert "did not answer" in run.stderr and "--insecure-storage" in run.stderr
    assert time.monotonic() - started < 8


def test_a_refusing_keyring_is_a_keyring_problem_not_a_bad_token(cli, monkeypatch) -> None:
    use_keyring("fake_keyring.RefusingKeyring", monkeypatch)
    run = cli("auth", "login", "--with-token", input=TOKEN)
    assert run.exit_code == 3
    assert "keyring refused" in run.stderr and "locked" in run.stderr
    status = cli("auth", "status")
    assert status.exit_code == 3 and "keyring refused" in status.stderr


def test_insecure_storage_writes_a_0600_file_and_says_so(cli, monkeypatch, isolated_user) -> None:
    use_keyring("keyring.backends.fail.Keyring", monkeypatch)
    run = cli(
        "auth", "login", "--with-token", "--insecure-storage", "--base-url", BASE, input=TOKEN
    )
    assert run.exit_code == 0, run.stderr
    path = isolated_user / ".config" / "gpti2" / "tokens.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert "plain text" in run.stderr and str(path) in run.stderr
    status = cli("auth", "status", "--base-url", BASE)
    assert "source: file" in status.stdout and "plain text" in status.stderr
    assert cli("auth", "token", "--base-url", BASE).stdout.strip() == TOKEN
    assert cli("auth", "logout", "--base-url", BASE).exit_code == 0
    assert not path.exists()


def test_environment_token_wins_and_login_says_so(cli, monkeypatch) -> None:
    monkeypatch.setenv("GPTI2_BASE_URL", BASE)
    cli("auth", "login", "--with-token", input="stored-token")
    monkeypatch.setenv("GPTI2_TOKEN", "env-token-value")
    assert cli("auth", "token").stdout.strip() == "env-token-value"
    status = cli("auth", "status", "--json")
    assert status.json["source"] == "env" and status.json["token"] == "env-…"
    again = cli("auth", "login", "--with-token", input="newer-token")
    assert again.exit_code == 0 and "GPTI2_TOKEN is set" in again.stderr
    monkeypatch.delenv("GPTI2_TOKEN")
    assert cli("auth", "token").stdout.strip() == "newer-token"


def test_login_without_a_terminal_or_token_is_a_usage_error(cli) -> None:
    assert cli("auth", "login", "--with-token", input="").exit_code == 2
    no_tty = cli("auth", "login", input="")
    assert no_tty.exit_code == 2 and "--with-token" in no_tty.stderr


def _secret_service_usable() -> str | None:
    if not os.environ.get("DBUS_SESSION_BUS_ADDRESS"):
        return "no D-Bus session (DBUS_SESSION_BUS_ADDRESS is not set)"
    try:
        from keyring.backends import SecretService

        backend = SecretService.Keyring()
        if backend.priority <= 0:
            return "the Secret Service backend is not usable here"
        backend.get_password("gpti2-probe", "probe")
    except Exception as exc:
        return f"no usable Secret Service: {type(exc).__name__}: {exc}"
    return None


@pytest.mark.secret_service
def test_real_secret_service_round_trip(tmp_path, monkeypatch) -> None:
    why = _secret_service_usable()
    if why:
        if REQUIRE_SECRET_SERVICE:
            pytest.fail(f"CI must run this test on a real Secret Service: {why}")
        pytest.skip(why)
    use_keyring("keyring.backends.SecretService.Keyring", monkeypatch)
    base = f"http://127.0.0.1:{os.getpid() % 50000 + 10000}"  # a host no other test uses
    run = lambda *args, **kw: subprocess.run(  # noqa: E731
        [*gpti2_command(), *args, "--base-url", base], capture_output=True, text=True, **kw
    )
    login = run("auth", "login", "--with-token", input=TOKEN)
    assert login.returncode == 0, login.stderr
    status = run("auth", "status")
    assert "source: keyring" in status.stdout
    from keyring.backends import SecretService

    account = f"default@{base.split('//')[1]}"
    assert SecretService.Keyring().get_password("gpti2", account) == TOKEN
    assert not Path(os.environ["XDG_CONFIG_HOME"], "gpti2", "tokens.json").exists()
    assert run("auth", "logout").returncode == 0
    assert SecretService.Keyring().get_password("gpti2", account) is None
    assert run("auth", "status").returncode == 3


def test_status_json_without_a_token_is_one_object_saying_none(cli) -> None:
    run = cli("auth", "status", "--json")
    assert run.exit_code == 3
    assert run.json["source"] is None and run.json["token"] is None
