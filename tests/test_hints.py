"""Errors in the tool's one voice, with hints that work when followed as printed."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import OTHER_TOKEN, TOKEN, use_keyring


def _error_lines(stderr: str) -> tuple[str, str | None]:
    error = re.search(r"^error: (.*)$", stderr, re.M)
    hint = re.search(r"^hint: (.*)$", stderr, re.M)
    assert error, stderr
    return error.group(1), hint.group(1) if hint else None


@pytest.mark.parametrize(
    "args",
    [
        ["generat"],
        ["generate"],
        ["generate", "x", "--nope"],
        ["--timeout"],
        ["job", "strat"],
        ["serve", "--port", "x"],
    ],
)
def test_click_messages_speak_in_the_tools_voice(cli, args: list[str]) -> None:
    run = cli(*args)
    assert run.exit_code == 2
    message, _ = _error_lines(run.stderr)
    assert not message[0].isupper() and not message.endswith("."), message
    assert "Did you mean" not in message and "Possible options" not in message


def test_a_top_level_typo_suggests_the_command(cli) -> None:
    message, hint = _error_lines(cli("generat", "x").stderr)
    assert message == "no such command 'generat'"
    assert hint == "did you mean 'generate'?"


def test_an_unquoted_prompt_gets_a_hint_to_quote_it(cli) -> None:
    run = cli("--base-url", "local", "generate", "a", "red", "fox", "-a", "16:9")
    assert run.exit_code == 2
    _, hint = _error_lines(run.stderr)
    assert hint == 'quote the prompt: gpti2 --base-url local generate "a red fox"'
    _, hint = _error_lines(cli("job", "start", "a", "fox").stderr)
    assert hint == 'quote the prompt: gpti2 job start "a fox"'


@pytest.mark.parametrize(
    ("given", "meant"),
    [("16x9", "16:9"), ("1024x1024", "1:1"), ("1920x1080", "16:9"), ("4/3", "4:3")],
)
def test_a_size_for_a_ratio_suggests_the_ratio(cli, given: str, meant: str) -> None:
    run = cli("generate", "x", "-a", given, "--dry-run")
    assert run.exit_code == 2
    _, hint = _error_lines(run.stderr)
    assert hint == f"did you mean {meant}?"


def test_an_unknown_provider_names_those_the_template_accepts(cli, emulator) -> None:
    run = cli("generate", "x", "-p", "midjourney", "--base-url", emulator.url)
    assert run.exit_code == 5
    _, hint = _error_lines(run.stderr)
    for provider in ("openai", "replicate", "fireworks", "vertex", "'midjourney'"):
        assert provider in hint


def test_a_negative_config_value_is_a_value_not_an_option(cli) -> None:
    run = cli("config", "set", "retries", "-1")
    assert run.exit_code == 2
    message, _ = _error_lines(run.stderr)
    assert message == "bad value '-1' for retries: expected a whole number, 0 or more"
    assert cli("config", "set", "timeout", "-5").exit_code == 2


# -- hints that work when followed ---------------------------------------------------------


def _suggested(hint: str) -> list[str]:
    """The gpti2 command a hint suggests, as argv after `gpti2`."""
    command = re.search(r"`(?:echo \$TOKEN \| )?(gpti2 [^`]*)`", hint)
    assert command, hint
    return shlex.split(command.group(1))[1:]


def test_following_the_no_token_hint_stores_it_for_the_right_host_and_profile(cli, emulator):
    assert cli("--profile", "work", "config", "set", "retries", "0").exit_code == 0
    run = cli("job", "start", "x", "--profile", "work", "--base-url", emulator.url)
    assert run.exit_code == 3
    _, hint = _error_lines(run.stderr)
    argv = _suggested(hint)
    assert argv == ["--base-url", emulator.url, "--profile", "work", "auth", "login"]
    assert cli(*argv, "--with-token", input=TOKEN).exit_code == 0  # as printed, plus the pipe
    started = cli("job", "start", "x", "--profile", "work", "--base-url", emulator.url)
    assert started.exit_code == 0, started.stderr


def test_the_401_hint_repeats_base_url_and_profile(cli, emulator) -> None:
    from gpti2 import credentials
    from gpti2.settings import resolve

    # A stored token the server no longer takes (login itself refuses an unknown one).
    credentials.store(resolve({"base_url": emulator.url}), "tok_bad", insecure_storage=False)
    run = cli("--base-url", emulator.url, "job", "status", "t1")
    assert run.exit_code == 3
    message, hint = _error_lines(run.stderr)
    assert "refused the token for default@" in message and "from the keyring" in message
    assert "Unauthorized: Unauthorized" not in message
    assert _suggested(hint) == ["--base-url", emulator.url, "auth", "login"]
    # followed as printed, it fixes the command
    assert cli(*_suggested(hint), "--with-token", input=TOKEN).exit_code == 0
    assert cli("--base-url", emulator.url, "job", "start", "x").exit_code == 0


def test_a_refused_gpti2_token_says_the_variable_was_refused(cli, emulator, monkeypatch):
    monkeypatch.setenv("GPTI2_TOKEN", "tok_not_known")
    run = cli("job", "status", "t1", "--base-url", emulator.url)
    assert run.exit_code == 3
    message, hint = _error_lines(run.stderr)
    assert message.startswith("the server refused the token in GPTI2_TOKEN (401")
    assert message.count("Unauthorized") <= 1
    assert "or set GPTI2_TOKEN" not in hint and "GPTI2_TOKEN" in hint
    monkeypatch.setenv("GPTI2_TOKEN", OTHER_TOKEN)
    assert cli("job", "start", "x", "--base-url", emulator.url).exit_code == 0


def test_the_keyring_hint_for_a_piped_token_keeps_with_token(cli, monkeypatch) -> None:
    # port 9: nobody listens, so the login cannot check the token and stores it unchecked
    use_keyring("keyring.backends.fail.Keyring", monkeypatch)
    run = cli("auth", "login", "--with-token", "--base-url", "http://127.0.0.1:9", input=TOKEN)
    assert run.exit_code == 3
    _, hint = _error_lines(run.stderr)
    argv = _suggested(hint)
    assert argv == [
        "--base-url",
        "http://127.0.0.1:9",
        "auth",
        "login",
        "--with-token",
        "--insecure-storage",
    ]
    assert cli(*argv, input=TOKEN).exit_code == 0
    assert cli("auth", "token", "--base-url", "http://127.0.0.1:9").stdout == TOKEN + "\n"


def test_login_checks_the_keyring_before_asking_for_the_token(monkeypatch) -> None:
    import getpass

    from typer.testing import CliRunner

    from gpti2.cli import app
    from gpti2.cli.context import Environment

    use_keyring("keyring.backends.fail.Keyring", monkeypatch)
    asked = []
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": asked.append(prompt) or TOKEN)
    result = CliRunner().invoke(app, ["auth", "login"], environment=Environment(stdin_isatty=True))
    assert result.exit_code == 3
    assert asked == []  # no paste wasted
    assert "no usable keyring" in result.stderr and "--insecure-storage" in result.stderr


def test_the_no_terminal_hint_keeps_insecure_storage(cli, emulator, monkeypatch) -> None:
    # A headless machine: no keyring, no terminal. Following the keyring hint, then the
    # no-terminal hint, as printed, signs in instead of going round in circles.
    use_keyring("keyring.backends.fail.Keyring", monkeypatch)
    first = cli("auth", "login", "--base-url", emulator.url)
    assert first.exit_code == 3
    argv = _suggested(_error_lines(first.stderr)[1])
    assert argv[-1] == "--insecure-storage"
    second = cli(*argv)  # CliRunner's stdin is no terminal
    assert second.exit_code == 2
    _, hint = _error_lines(second.stderr)
    argv = _suggested(hint)
    assert argv[-2:] == ["--with-token", "--insecure-storage"], hint
    assert cli(*argv, input=TOKEN).exit_code == 0
    assert cli("auth", "token", "--base-url", emulator.url).stdout == TOKEN + "\n"


def test_a_missing_profile_hint_uses_the_base_url_given(cli) -> None:
    run = cli("--profile", "dave", "--base-url", "http://127.0.0.1:9", "config", "get", "retries")
    assert run.exit_code == 2
    _, hint = _error_lines(run.stderr)
    assert " URL" not in hint and hint.endswith("config set base_url http://127.0.0.1:9"), hint
    argv = shlex.split(hint.split(": ", 1)[1])[1:]
    assert cli(*argv).exit_code == 0  # as printed, it creates the profile
    assert cli("--profile", "dave", "config", "get", "base_url").stdout == "http://127.0.0.1:9\n"


def test_local_needs_no_sign_in_and_its_jobs_end_with_the_command(cli) -> None:
    status = cli("auth", "status", "--base-url", "local")
    assert status.exit_code == 3
    _, hint = _error_lines(status.stderr)
    assert "again" not in hint and "needs no sign-in" in hint, hint
    started = cli("job", "start", "x", "--base-url", "local")
    assert started.exit_code == 0, started.stderr
    assert started.stdout.strip() and "\n" not in started.stdout.strip()
    assert "note: the local emulator stops with this command" in started.stderr
    waited = cli("job", "start", "x", "--wait", "-q", "--base-url", "local", "-o", "out")
    assert waited.exit_code == 0 and "note:" not in waited.stderr
