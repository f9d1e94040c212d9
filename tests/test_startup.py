"""`--version` and `--help` stay light: no httpx, pydantic, keyring or rich at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("httpx", "pydantic", "keyring", "rich")


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["generate", "--help"]])
def test_startup_does_not_import_heavy_modules(args: list[str]) -> None:
    probe = (
        "import sys\n"
        "from gpti2.__main__ import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


def test_version_prints_the_version() -> None:
    from gpti2 import __version__

    out = subprocess.run(
        [sys.executable, "-m", "gpti2", "--version"], capture_output=True, text=True, timeout=60
    )
    assert out.stdout == f"gpti2 {__version__}\n"


def test_root_help_lists_every_command_with_its_own_first_help_line() -> None:
    import typer.main

    from gpti2.cli import app
    from gpti2.cli.main import COMMANDS

    group = typer.main.get_command(app)
    ctx = group.context_class(group, info_name="gpti2")
    for name, (_, short) in COMMANDS.items():
        command = group.get_command(ctx, name)
        assert command is not None, name
        assert command.help.strip().splitlines()[0] == short, name
