"""`--help` for a gh or httpie user: examples everywhere, the root options in every
command's help, one placeholder style, and -q/--json before or after the command."""

from __future__ import annotations

import re

import pytest
import typer.main

from gpti2.cli import app

ROOT_OPTIONS = (
    "--base-url",
    "--profile",
    "--timeout",
    "--retries",
    "--no-progress",
    "--allow-insecure-http",
    "-v, --verbose",
)


def _paths() -> list[list[str]]:
    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="gpti2")
    found: list[list[str]] = [[]]

    def walk(command, path: list[str]) -> None:
        sub_ctx = command.context_class(command, info_name=path[-1], parent=ctx)
        for name in command.list_commands(sub_ctx) if hasattr(command, "list_commands") else []:
            found.append([*path, name])
            walk(command.get_command(sub_ctx, name), [*path, name])

    for name in group.list_commands(ctx):
        found.append([name])
        walk(group.get_command(ctx, name), [name])
    return found


PATHS = _paths()


def _help(cli, path: list[str]) -> str:
    run = cli(*path, "--help")
    assert run.exit_code == 0, run.stderr
    return run.stdout


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "gpti2")
def test_every_help_has_examples_of_that_command(cli, path: list[str]) -> None:
    text = _help(cli, path)
    assert "\nExamples:\n" in text, f"add examples for {path} in cli/helptext.py"
    examples = text.split("\nExamples:\n", 1)[1]
    assert f"gpti2 {' '.join(path)}".strip() in examples


@pytest.mark.parametrize("path", [p for p in PATHS if p], ids=" ".join)
def test_every_command_lists_the_root_options(cli, path: list[str]) -> None:
    text = _help(cli, path)
    section = text.split("Global options", 1)[1]
    for option in ROOT_OPTIONS:
        assert option in section, (path, option)


def test_every_command_takes_json_and_quiet(cli) -> None:
    for path in PATHS:
        text = _help(cli, path)
        if "Commands:" in text and path:
            continue  # a group: its commands take them
        if path == ["gallery"]:  # CLI.md gives its -q to the search: --quiet stays
            assert "--json" in text and "--quiet" in text and "-q, --search" in text
            continue
        assert "--json" in text and "-q, --quiet" in text, path


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "gpti2")
def test_one_placeholder_style(cli, path: list[str]) -> None:
    text = _help(cli, path)
    assert not re.search(r"<(str|int|float|path|integer)[^>]*>|\{\w+\}", text), text
    for metavar in re.findall(r"^\s+(?:-\w, )?--[\w-]+ (\S+)", text, re.M):
        assert re.fullmatch(r"[A-Z][A-Z_:/]*|\[[a-z_|]+\]", metavar), (path, metavar)


def test_numbers_are_shown_as_numbers(cli) -> None:
    text = _help(cli, ["serve"])
    for option, metavar in (("--credits", "N"), ("--seed", "N"), ("--latency", "NUMBER")):
        assert re.search(rf"^\s+{option} {metavar}\s", text, re.M), (option, text)


def test_defaults_and_environment_variables_are_shown(cli) -> None:
    text = " ".join(_help(cli, []).split())
    assert "GPTI2_BASE_URL; default: https://www.gpt-image2.dev" in text.replace("- ", "-")
    assert "GPTI2_TIMEOUT; default: 120" in text
    assert "GPTI2_RETRIES; default: 3" in text


def test_mode_lists_its_values(cli) -> None:
    assert "--mode [text_to_image|image_to_image]" in _help(cli, ["job", "start"])


def test_group_listings_are_not_cut_short(cli) -> None:
    text = " ".join(_help(cli, ["job"]).split())
    assert "then with --wait follow it and fetch its images" in text
    assert "..." not in _help(cli, ["job"]).split("Commands:")[1].split("Global")[0]


@pytest.mark.parametrize("args", [["-q", "--json"], ["--json", "-q"]])
def test_quiet_and_json_work_before_the_command(cli, args: list[str]) -> None:
    run = cli(*args, "config", "get", "retries")
    assert run.exit_code == 0, run.stderr
    assert run.json == {"key": "retries", "value": 3, "source": "default"}
    run = cli(*args, "generate", "a fox", "--dry-run")
    assert run.json["body"]["prompt"] == "a fox"


def test_root_options_work_after_the_command(cli) -> None:
    run = cli("config", "get", "timeout", "--timeout", "7", "--json")
    assert run.json["value"] == 7.0 and run.json["source"] == "flag"
