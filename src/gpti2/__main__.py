"""Entry point. Answers ``--version`` before importing anything heavy, and runs a simple
``generate`` command line without typer (scripts call it in loops)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    """Run the gpti2 command line."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        from gpti2 import __version__

        sys.stdout.write(f"gpti2 {__version__}\n")
        return
    if "generate" in args:
        from gpti2.cli.generate import fast_main

        code = fast_main(args)
        if code is not None:
            sys.exit(code)
    from gpti2.cli import app

    app(args=args, prog_name="gpti2")


if __name__ == "__main__":
    main()
