"""What every command shares: output for people and scripts (`Ui`), option types, and
reading the prompt. The wiring (state, settings, client) lives in `cli/context.py`.

Kept free of heavy imports, typer included: `gpti2 --help` loads this module, and
`gpti2 generate` runs without typer when its command line is simple.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from gpti2.cli.context import Environment, State, open_client, resolve_settings
from gpti2.display import shell_quote

if TYPE_CHECKING:
    import typer
    from rich.console import Console

    from gpti2.client import ApiClient, Credentials
    from gpti2.settings import Settings

__all__ = [
    "Environment",
    "State",
    "Ui",
    "command_app",
    "enter",
    "get_state",
    "read_prompt",
    "shell_quote",
]


_OPTIONS = {
    "JsonOption": (("--json",), "Machine-readable output on stdout."),
    "QuietOption": (("-q", "--quiet"), "Nothing on stderr but errors."),
    "ForceOption": (("--force",), "Overwrite existing files."),
}


def __getattr__(name: str) -> Any:
    """The shared option types (JsonOption, QuietOption, ForceOption), made on first use so
    that importing this module does not import typer."""
    if name not in _OPTIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Annotated

    import typer

    names, help = _OPTIONS[name]
    option = globals()[name] = Annotated[bool, typer.Option(*names, help=help)]
    return option


def command_app(help: str | None = None) -> typer.Typer:
    """A Typer for one command or command group, with the house settings (plain help,
    -h, no completion installer, no pretty tracebacks)."""
    import typer

    return typer.Typer(
        help=help,
        rich_markup_mode=None,
        add_completion=False,
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
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


def read_prompt(prompt: str, ui: Ui | None = None) -> str:
    """The prompt argument, or stdin for `-`, stripped and non-empty."""
    from gpti2.quick import clean_prompt

    if prompt != "-":
        return clean_prompt(prompt)
    env = ui.env if ui is not None else Environment()
    if ui is not None and env.isatty("stdin"):
        ui.info("reading the prompt from stdin (end it with Ctrl-D)")
    return clean_prompt(env.stdin_.read())


class Ui:
    """Output for people (stderr, colour, progress) and for scripts (stdout)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self._console: Console | None = None

    @property
    def env(self) -> Environment:
        return self.state.env

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(
                file=self.env.stderr_,
                force_terminal=self.env.isatty("stderr"),
                no_color="NO_COLOR" in self.env.environ,
                highlight=False,
                soft_wrap=True,
            )
        return self._console

    @property
    def progress_enabled(self) -> bool:
        return not (
            self.state.no_progress
            or self.state.quiet
            or self.state.json
            or self.env.flag("GPTI2_NO_PROGRESS")
            or "CI" in self.env.environ
            or not self.env.isatty("stderr")
        )

    def out(self, text: str) -> None:
        """One line of the answer on stdout."""
        stdout = self.env.stdout_
        stdout.write(text + "\n")
        stdout.flush()

    def out_bytes(self, data: bytes) -> None:
        """Raw bytes on stdout (`-o -`); a closed pipe raises BrokenPipeError."""
        stdout = self.env.stdout_.buffer
        rest = memoryview(data)
        while rest:  # a pipe may take part of it
            written = stdout.write(rest)
            if not written:
                raise BrokenPipeError
            rest = rest[written:]
        stdout.flush()

    def out_json(self, payload: Any) -> None:
        import json

        from gpti2.display import json_safe

        indent = 2 if self.env.isatty("stdout") else None
        self.out(json_safe(json.dumps(payload, ensure_ascii=False, indent=indent)))

    def _stderr(self, text: str, style: str | None = None) -> None:
        from gpti2.display import shown

        text = shown(text, None)  # may hold server text: redacted, no control characters
        # Plain writes when nobody is looking at a terminal: no rich import for scripts.
        if self.env.isatty("stderr"):
            self.console.print(text, style=style, markup=False)
        else:
            stderr = self.env.stderr_
            stderr.write(text + "\n")
            stderr.flush()

    def info(self, text: str) -> None:
        """A message for a person on stderr (not with -q)."""
        if not self.state.quiet:
            self._stderr(text)

    def note(self, text: str) -> None:
        """A `note:` line on stderr (not with -q): worth knowing, nothing went wrong."""
        if not self.state.quiet:
            self._stderr(f"note: {text}")

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
        """A spinner with the time waited so far, at a terminal only."""
        with self.live(text, plain=False):
            yield

    @contextlib.contextmanager
    def live(self, text: str, plain: bool = True) -> Iterator[Callable[[str], None]]:
        """A status line that can be updated, with a clock that ticks on its own (also
        during a request) at a TTY; elsewhere, with `plain`, a line per change of state
        (none with -q or --json)."""
        if self.progress_enabled:
            from gpti2.cli.progress import status
            from gpti2.display import shown

            with status(self.console, shown(text, None)) as update:
                yield lambda message: update(shown(message, None))  # may hold server text
            return
        last: list[str] = []

        def print_changes(message: str) -> None:
            key = re.sub(r" \d+%", "", message)  # print changes of state only
            if plain and last != [key]:
                last[:] = [key]
                if not (self.state.quiet or self.state.json):
                    self.info(message)

        yield print_changes

    @contextlib.contextmanager
    def downloads(self) -> Iterator[Callable[[int], Callable[[int, int | None], None] | None]]:
        """Per-download progress bars (size, speed); yields a factory by image number."""
        if not self.progress_enabled:
            yield lambda n: None
            return
        from gpti2.cli.progress import download_bars

        with download_bars(self.console) as factory:
            yield factory

    # Compatibility: the wiring lives in cli/context.py; these forward to it so commands
    # written as `ui.settings()` / `ui.client()` keep working.
    def settings(
        self, flag_names: dict[str, str] | None = None, new_profile: bool = False, **flags: Any
    ) -> Settings:
        """Effective settings (see `context.resolve_settings`)."""
        return resolve_settings(self.state, flag_names, new_profile, **flags)

    def client(
        self,
        settings: Settings,
        *,
        auth: bool = False,
        pooled: bool = True,
        credentials: Credentials | None = None,
    ) -> contextlib.AbstractContextManager[ApiClient]:
        """The HTTP client for these settings (see `context.open_client`)."""
        return open_client(
            self.state,
            settings,
            auth=auth,
            log=self.debug,
            warn=self.warn,
            pooled=pooled,
            credentials=credentials,
        )
