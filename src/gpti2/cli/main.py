"""The root command, the one place that maps errors to messages and exit codes."""

from __future__ import annotations

import os
import signal
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from gpti2 import __version__
from gpti2.cli.common import get_state, shell_quote
from gpti2.cli.context import Environment, State, Terminated, terminate_like_interrupt
from gpti2.display import shown, shown_block
from gpti2.errors import ExitCode, Gpti2Error
from gpti2.settings import DEFAULTS as _DEFAULTS

# The click that typer uses (vendored in recent releases), found without naming it.
_click_exceptions = sys.modules[typer.BadParameter.__module__]
_EXITS = (typer.Exit, getattr(_click_exceptions, "Exit", typer.Exit))
_ABORTS = (KeyboardInterrupt, typer.Abort, getattr(_click_exceptions, "Abort", typer.Abort))

# Root options that may also stand after the subcommand, with how many values they take.
ROOT_OPTIONS = {
    "--base-url": 1,
    "--profile": 1,
    "--timeout": 1,
    "--retries": 1,
    "--no-progress": 0,
    "--allow-insecure-http": 0,
    "-v": 0,
    "--verbose": 0,
}


def hoist_root_options(args: list[str]) -> list[str]:
    """Move root options found after the subcommand name to the front."""
    first_positional = next(
        (
            i
            for i, arg in enumerate(args)
            if not arg.startswith("-") and (i == 0 or ROOT_OPTIONS.get(args[i - 1], 0) == 0)
        ),
        None,
    )
    if first_positional is None:
        return args
    front, rest = list(args[:first_positional]), []
    i = first_positional
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name = arg.split("=", 1)[0]
        if name in ROOT_OPTIONS and (arg == name or name != "-v"):
            arity = 0 if "=" in arg else ROOT_OPTIONS[name]
            front.extend(args[i : i + 1 + arity])
            i += 1 + arity
            continue
        rest.append(arg)
        i += 1
    return front + rest


def _color(env: Environment, code: str, text: str) -> str:
    if env.isatty("stderr") and "NO_COLOR" not in env.environ:
        return f"\x1b[{code}m{text}\x1b[0m"
    return text


def report(exc: BaseException, state: State) -> int:
    """Print one `error:` line (and a `hint:`) for `exc` and return the exit code."""
    env = state.env
    hint = None
    if isinstance(exc, Gpti2Error):
        code, message, hint = int(exc.exit_code), exc.message, exc.hint
    elif isinstance(exc, Terminated):
        code, message = 128 + signal.SIGTERM, "terminated"
    elif isinstance(exc, _ABORTS):
        code, message = int(ExitCode.INTERRUPTED), "interrupted"
    elif isinstance(exc, _click_exceptions.UsageError):
        code = int(ExitCode.USAGE)
        message, hint = usage_hint(exc, state)
    elif isinstance(exc, _click_exceptions.ClickException):
        code, (message, hint) = int(ExitCode.USAGE), one_voice(exc.format_message())
    else:
        code = int(ExitCode.INTERNAL)
        message = f"internal error: {type(exc).__name__}: {exc}"
        hint = None if state.verbose else "run again with --verbose for the traceback"
    # Messages can hold server or transport text: redacted and stripped of control
    # characters before they are shown (Gpti2Error does this when made; others here).
    message, hint = shown(message, None), (None if hint is None else shown(hint, None))
    if state.verbose and code == ExitCode.INTERNAL:  # a handled error needs none
        import traceback

        env.stderr_.write(shown_block("".join(traceback.format_exception(exc))))
    stderr = env.stderr_
    hint = with_root_options(hint, state) if hint else hint
    stderr.write(f"{_color(env, '1;31', 'error:')} {message}\n")
    if hint:
        stderr.write(f"{_color(env, '2', 'hint:')} {hint}\n")
    if state.json and not getattr(exc, "answered", False):
        import json

        env.stdout_.write(json.dumps({"error": {"code": code, "message": message}}) + "\n")
    stderr.flush()
    return code


def with_root_options(hint: str, state: State) -> str:
    """Repeat the user's --base-url and --profile in every command a hint suggests, so the
    hint works when followed as printed (a token stored for the right host and profile)."""
    import re

    given = [(flag, value) for flag, value in state.root_pairs()]
    if not given:
        return hint

    def insert(match: re.Match[str]) -> str:
        rest = hint[match.end() :].split("`", 1)[0]
        missing = [f"{flag} {shell_quote(value)}" for flag, value in given if flag not in rest]
        return match.group(0) + "".join(f"{part} " for part in missing)

    # Not `gpti2 serve`: it starts a server, it does not talk to one.
    return re.sub(r"(?<![\w/.-])gpti2 (?=[a-z-])(?!serve\b)", insert, hint)


def one_voice(message: str) -> tuple[str, str | None]:
    """Click's sentence in the tool's voice: lowercase, no full stop, suggestions as a hint."""
    import re

    hint = None
    found = re.search(r"\s*\(Possible options: (.*)\)\s*$|\s*Did you mean (.*)\?\s*$", message)
    if found:
        message = message[: found.start()]
        hint = "did you mean " + (found.group(1) or found.group(2)).replace(", ", " or ") + "?"
    message = message.strip().rstrip(".")
    if message[:1].isupper() and not message[1:2].isupper():
        message = message[0].lower() + message[1:]
    return message, hint


# Commands whose one argument is a prompt: extra words mean the quotes were forgotten.
_PROMPT_COMMANDS = ("gpti2 generate", "gpti2 job start")


def usage_hint(exc: Any, state: State) -> tuple[str, str | None]:
    """The message and hint for a usage error, with hints that work when followed."""
    import re

    message, hint = one_voice(exc.format_message())
    if isinstance(exc, _click_exceptions.NoSuchOption):
        # Root options work after the command too (hoisted), so they are candidates there.
        known = {*(exc.possibilities or ()), *(o for o in ROOT_OPTIONS if o.startswith("--"))}
        hint = _near_options(exc.option_name, known)
    ctx = exc.ctx
    if ctx is None:
        return message, hint
    extra = re.match(r"got unexpected extra arguments? ?\(s\)? \((.*)\)$", message)
    if extra and ctx.command_path in _PROMPT_COMMANDS and ctx.params.get("prompt"):
        prompt = f"{ctx.params['prompt']} {extra.group(1)}"
        command = f"{ctx.command_path} {shell_quote(prompt)}"
        return message, f"quote the prompt: {command}"
    return message, hint or f"see `{ctx.command_path} --help`"


def _near_options(name: str, known: Any) -> str | None:
    """A `did you mean` for a mistyped option, or None. Click compares names with their
    dashes, so `--bogus` looked like `--verbose`; the words alone must be close."""
    import difflib

    words = {option.lstrip("-"): option for option in known}
    close = difflib.get_close_matches(name.lstrip("-"), list(words), n=2, cutoff=0.6)
    return "did you mean " + " or ".join(words[w] for w in close) + "?" if close else None


# The commands, loaded only when used: `gpti2 --help` lists them from this table without
# importing any (tests/test_startup.py checks the help lines match the commands).
COMMANDS = {
    "generate": (
        "gpti2.cli.generate",
        "Generate one image on the quick route and write it to disk.",
    ),
    "job": ("gpti2.cli.job", "Start jobs, follow them, and fetch their images."),
    "batch": (
        "gpti2.cli.batch",
        "Generate the images a manifest describes, skipping unchanged ones.",
    ),
    "auth": ("gpti2.cli.auth", "Sign in: store, show and remove the API token."),
    "config": ("gpti2.cli.config_cmd", "Read and write settings of the active profile."),
    "serve": (
        "gpti2.cli.serve",
        "Run the local emulator of the gpt-image2 API.",
    ),
    "completion": (
        "gpti2.cli.completion",
        "Print the shell completion script for bash, zsh or fish.",
    ),
    "history": (
        "gpti2.cli.history_cmd",
        "Every image gpti2 wrote and every failed attempt, newest first; search them.",
    ),
    "inspect": (
        "gpti2.cli.inspect_cmd",
        "Show an image's format, size, SHA-256, C2PA manifest and where gpti2 made it.",
    ),
    "compare": (
        "gpti2.cli.compare",
        "Put prompts and models side by side: every prompt with every model, on one page.",
    ),
    "gallery": (
        "gpti2.cli.gallery_cmd",
        "Make the compare page from the history (searched and filtered) or from a folder.",
    ),
}


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing it at exit cannot fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def exit_code_for(exc: BaseException, state: State) -> int:
    """The exit code for an exception that ended a command, once reported (also used by
    the typer-free `gpti2 generate`, cli/generate.py)."""
    if isinstance(exc, BrokenPipeError):
        # The reader of our output went away (`gpti2 generate -o - | head -c 10`):
        # stop quietly with the status of a Unix tool ended by SIGPIPE.
        _silence_stdout()
        return 128 + signal.SIGPIPE
    return report(exc, state)


class Gpti2Group(TyperGroup):
    """Typer's group with lazily loaded commands, root options accepted anywhere, and our
    own error reporting."""

    _loaded: dict[str, Any]

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        loaded = self.__dict__.setdefault("_loaded", {})
        if cmd_name not in loaded:
            import importlib

            import typer.main

            from gpti2.cli.helptext import polish

            module = importlib.import_module(COMMANDS[cmd_name][0])
            loaded[cmd_name] = polish(typer.main.get_command(module.app), cmd_name)
        return loaded[cmd_name]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=2, cutoff=0.6)
            raise _click_exceptions.UsageError(
                f"no such command {name!r}"
                + (". Did you mean " + ", ".join(repr(c) for c in close) + "?" if close else ""),
                ctx,
            )
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def format_epilog(self, ctx: Any, formatter: Any) -> None:
        from gpti2.cli.helptext import write_examples

        write_examples("", formatter)
        super().format_epilog(ctx, formatter)

    def main(  # type: ignore[override]
        self, args: Any = None, prog_name: str | None = None, **extra: Any
    ) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        environment = extra.pop("environment", None)
        for key in ("standalone_mode", "complete_var", "windows_expand_args"):
            extra.pop(key, None)
        state = State(env=environment or Environment())
        terminate_like_interrupt()
        state.verbose = any(a in ("-v", "--verbose") for a in args)
        state.json = "--json" in args
        code = 0
        try:
            with self.make_context(
                prog_name or "gpti2", hoist_root_options(args), obj=state
            ) as ctx:
                self.invoke(ctx)
        except _click_exceptions.NoArgsIsHelpError as exc:
            sys.stdout.write(exc.format_message() + "\n")
        except _EXITS as exc:
            code = exc.exit_code
        except BaseException as exc:  # the one place that turns errors into exit codes
            if isinstance(exc, SystemExit):
                raise
            code = exit_code_for(exc, state)
        sys.exit(code)


app = typer.Typer(
    cls=Gpti2Group,
    name="gpti2",
    help="Generate images with the gpt-image2 API, from a terminal, a script or CI.",
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"gpti2 {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="API base URL, or `local` for the built-in emulator."
            f" [env var: GPTI2_BASE_URL; default: {_DEFAULTS['base_url']}]",
            metavar="URL",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Config profile to use. [env var: GPTI2_PROFILE; default: default]",
            metavar="NAME",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            help="Request timeout in seconds."
            f" [env var: GPTI2_TIMEOUT; default: {_DEFAULTS['timeout']:g}]",
            metavar="SECONDS",
        ),
    ] = None,
    retries: Annotated[
        str | None,
        typer.Option(
            "--retries",
            help="Retries on transient failures."
            f" [env var: GPTI2_RETRIES; default: {_DEFAULTS['retries']}]",
            metavar="N",
        ),
    ] = None,
    no_progress: Annotated[
        bool, typer.Option("--no-progress", help="No spinners or progress bars.")
    ] = False,
    allow_insecure_http: Annotated[
        bool,
        typer.Option(
            "--allow-insecure-http",
            help="Allow sending credentials over plain http:// to a non-loopback host.",
        ),
    ] = False,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Log requests and responses on stderr.")
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Machine-readable output on stdout.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("-q", "--quiet", help="Nothing on stderr but errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", is_eager=True, callback=_version
        ),
    ] = False,
) -> None:
    """Generate images with the gpt-image2 API, from a terminal, a script or CI."""
    state = get_state(ctx)
    state.base_url = base_url
    state.profile = profile
    state.timeout = timeout
    state.retries = retries
    state.no_progress = no_progress
    state.allow_insecure_http = allow_insecure_http
    state.verbose = verbose
    state.json = state.json or json_out
    state.quiet = state.quiet or quiet
