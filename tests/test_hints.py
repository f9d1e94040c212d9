"""Errors in the tool's one voice, with hints that work when followed as printed."""

from __future__ import annotations

import re

import pytest


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
