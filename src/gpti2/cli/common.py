"""What every command shares: the invocation state, output helpers, option types.

Kept free of heavy imports: `gpti2 --help` loads this module.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from gpti2.client import ApiClient
    from gpti2.settings import Settings

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
QuietOption = Annotated[bool, typer.Option("-q", "--quiet", help="Nothing on stderr but errors.")]
ForceOption = Annotated[bool, typer.Option("--force", help="Overwrite existing files.")]


@dataclass
class State:
    """Root options and output mode of one invocation (the click context's obj)."""

    base_url: str | None = None
    profile: str | None = None
    timeout: float | None = None
    retries: int | None = None
    no_progress: bool = False
    allow_insecure_http: bool = False
    verbose: bool = False
    json: bool = False
    quiet: bool = False

    def flags(self, **command_flags: Any) -> dict[str, Any]:
        """Root flags plus a command's own, for `settings.resolve`."""
        return {
            "base_url": self.base_url,
            "profile": self.profile,
            "timeout": self.timeout,
            "retries": self.retries,
            **command_flags,
        }


def command_app(help: str | None = None) -> typer.Typer:
    """A Typer for one command or command group, with the house settings (plain help,
    -h, no completion installer, no pretty tracebacks)."""
    return typer.Typer(
        help=help,
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def get_state(ctx: typer.Context) -> State:
    state = ctx.find_object(State)
    if state is None:  # invoked without our main(), e.g. a bare click context
        state = ctx.ensure_object(State)
    return state


def enter(ctx: typer.Context, json_out: bool = False, quiet: bool = False) -> Ui:
    """Record a command's output mode and return its Ui."""
    state = get_state(ctx)
    state.json = state.json or json_out
    state.quiet = state.quiet or quiet
    return Ui(state)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


class Ui:
    """Output for people (stderr, colour, progress) and for scripts (stdout)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, highlight=False, soft_wrap=True)
        return self._console

    @property
    def progress_enabled(self) -> bool:
        return not (
            self.state.no_progress
            or self.state.quiet
            or self.state.json
            or _env_flag("GPTI2_NO_PROGRESS")
            or "CI" in os.environ
            or not sys.stderr.isatty()
        )

    def out(self, text: str) -> None:
        """One line of the answer on stdout."""
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def out_json(self, payload: Any) -> None:
        import json

        indent = 2 if sys.stdout.isatty() else None
        self.out(json.dumps(payload, ensure_ascii=False, indent=indent))

    def _stderr(self, text: str, style: str | None = None) -> None:
        # Plain writes when nobody is looking at a terminal: no rich import for scripts.
        if sys.stderr.isatty():
            self.console.print(text, style=style, markup=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def info(self, text: str) -> None:
        """A message for a person on stderr (not with -q)."""
        if not self.state.quiet:
            self._stderr(text)

    def warn(self, text: str) -> None:
        """A `warning:` line on stderr (not with -q)."""
        if not self.state.quiet:
            self._stderr(f"warning: {text}", style="yellow")

    def debug(self, text: str) -> None:
        """A --verbose line on stderr."""
        if self.state.verbose:
            self._stderr(text, style="dim")

    @contextlib.contextmanager
    def spinner(self, text: str) -> Iterator[None]:
        if not self.progress_enabled:
            yield
            return
        with self.console.status(text, spinner="dots"):
            yield

    @contextlib.contextmanager
    def live(self, text: str) -> Iterator[Callable[[str], None]]:
        """A status line that can be updated: a spinner at a TTY, plain lines on change
        elsewhere (none with -q or --json)."""
        if self.progress_enabled:
            with self.console.status(text, spinner="dots") as status:
                yield status.update
            return
        last: list[str] = []

        def plain(message: str) -> None:
            key = re.sub(r" \d+%| \(\d+ s\)", "", message)  # print changes of state only
            if last != [key]:
                last[:] = [key]
                if not (self.state.quiet or self.state.json):
                    self.info(message)

        yield plain

    @contextlib.contextmanager
    def downloads(self) -> Iterator[Callable[[int], Callable[[int, int | None], None] | None]]:
        """Per-download progress bars (bytes, speed); yields a factory by image number."""
        if not self.progress_enabled:
            yield lambda n: None
            return
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as bars:

            def factory(n: int) -> Callable[[int, int | None], None]:
                task = bars.add_task(f"image {n}", total=None)
                return lambda done, total: bars.update(task, completed=done, total=total)

            yield factory

    def settings(
        self, flag_names: dict[str, str] | None = None, new_profile: bool = False, **flags: Any
    ) -> Settings:
        """Effective settings: these flags over the environment, profile and defaults."""
        from gpti2.settings import resolve

        return resolve(
            self.state.flags(**flags), flag_names=flag_names, missing_profile_ok=new_profile
        )

    @contextlib.contextmanager
    def client(self, settings: Settings, *, auth: bool = False) -> Iterator[ApiClient]:
        """The HTTP client for these settings (starting the emulator for `local`)."""
        from gpti2.session import open_client

        with open_client(
            settings,
            auth=auth,
            allow_insecure_http=self.state.allow_insecure_http,
            log=self.debug if self.state.verbose else None,
        ) as client:
            yield client
