"""The command-line layer: Typer commands that parse, call the core and print."""

from gpti2.cli.main import app

__all__ = ["app"]
