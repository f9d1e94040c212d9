"""The command-line layer: Typer commands that parse, call the core and print."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpti2.cli.main import app

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    # `app` (and with it typer) is loaded on first use: `gpti2 generate` can run without it.
    if name == "app":
        from gpti2.cli.main import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
