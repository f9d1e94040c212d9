"""Where behaviour lives: commands do not import each other, wiring is in cli/context.py,
every setting goes through settings.py, and the terminal is injected, not patched."""

from __future__ import annotations

import ast
import io
from pathlib import Path

from typer.testing import CliRunner

from gpti2.cli import app
from gpti2.cli.context import Environment

CLI = Path(__file__).resolve().parent.parent / "src" / "gpti2" / "cli"


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_commands_do_not_import_each_other() -> None:
    from gpti2.cli.main import COMMANDS

    commands = {module for module, _ in COMMANDS.values()}
    for module in commands:
        path = CLI / (module.rsplit(".", 1)[1] + ".py")
        others = (_imports(path) & commands) - {module}
        assert not others, f"{path.name} imports {sorted(others)}"


def test_images_module_is_about_image_bytes_only() -> None:
    from gpti2 import images
    from gpti2.emulator import art

    assert not hasattr(images, "encode_png")
    png = art.encode_png(2, 1, iter([b"\x00" * 6]))
    assert images.describe(png).width == 2


def test_poll_interval_is_a_setting_with_its_source(cli) -> None:
    run = cli("config", "list", "--json", env={"GPTI2_POLL_INTERVAL": "0.5"})
    assert run.json["settings"]["poll_interval"] == {
        "value": 0.5,
        "source": "env GPTI2_POLL_INTERVAL",
    }
    bad = cli("config", "list", env={"GPTI2_POLL_INTERVAL": "soon"})
    assert bad.exit_code == 2 and "GPTI2_POLL_INTERVAL" in bad.stderr


def test_an_injected_environment_replaces_the_terminal() -> None:
    out, err = io.StringIO(), io.StringIO()
    env = Environment(
        stdout=out, stderr=err, stdout_isatty=True, stderr_isatty=False, vars={"CI": "1"}
    )
    result = CliRunner().invoke(app, ["config", "get", "retries", "--json"], environment=env)
    assert result.exit_code == 0
    assert out.getvalue().startswith('{\n  "key": "retries"')  # indented: stdout is a "tty"


def test_prompt_from_stdin_at_a_terminal_says_it_is_reading(tmp_path) -> None:
    err = io.StringIO()
    env = Environment(stdin=io.StringIO("a fox\n"), stdin_isatty=True, stderr=err)
    result = CliRunner().invoke(app, ["generate", "-", "--dry-run"], environment=env)
    assert result.exit_code == 0, result.output
    assert "reading the prompt from stdin" in err.getvalue()
    assert '"prompt": "a fox"' in result.stdout


def test_config_json_shapes_come_from_the_settings_object(cli) -> None:
    from gpti2.settings import resolve

    settings = resolve({})
    assert cli("config", "list", "--json").json == settings.as_json()
    assert cli("config", "get", "retries", "--json").json == settings.setting_json("retries")
