"""`gpti2 generate`: the quick route, one image to disk.

Scripts call this command in loops, so its start-up counts: its work (`run`) needs no
typer, and `fast_main` runs it for a simple command line (known options, one prompt)
without loading typer at all. Anything else (help, a mistake, an option written another
way) goes to the Typer command, `app`, built on first use.

(No `from __future__ import annotations` here: the Typer command is defined inside a
function, and typer can only read annotations that are already objects there.)
"""

import time
from typing import Any

from gpti2.cli.common import Ui, enter, read_prompt
from gpti2.cli.context import State, terminate_like_interrupt


def run(
    ui: Ui,
    prompt: str,
    provider: str | None = None,
    model: str | None = None,
    aspect_ratio: str | None = None,
    output: str | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> None:
    """Generate one image on the quick route and write it to disk (or stdout)."""
    from gpti2 import history, images, quick
    from gpti2 import output as out

    settings = ui.settings(provider=provider, model=model, aspect_ratio=aspect_ratio)
    text = read_prompt(prompt, ui)
    request = quick.QuickRequest(text, settings.provider, settings.model, settings.aspect_ratio)
    advice = quick.model_advice(request.provider, request.model_id)
    if advice:
        ui.note(advice)
    if dry_run:
        _show_plan(ui, out.dry_run_plan(settings.base_url, quick.ROUTE, request.body()))
        return
    placement = out.Placement.choose(
        output,
        settings.output_dir,
        force,
        json_out=ui.state.json,
        stdout_is_terminal=ui.env.isatty("stdout"),
    )
    placement.check()  # before any request: no credits spent on a write that would fail

    started = time.monotonic()
    record = history.attempt("generate", request, settings, ui.env.environ, ui.warn)
    # One request: the standard library's connection starts sooner than a pooled client.
    with (
        record.failures(),
        ui.client(settings, pooled=False) as client,
        ui.spinner(f"generating with {request.provider}…"),
    ):
        image = quick.generate(client, request)
    saved = None if placement.to_stdout else placement.save(text, image.data, image.info)
    if saved is None:
        ui.out_bytes(image.data)
    record.wrote(saved and saved.path, image.info, provider=image.provider)
    answer = out.Generated(
        saved and saved.path,
        image.info,
        image.provider,
        request.model_id,
        request.aspect_ratio,
        round((time.monotonic() - started) * 1000),
    )
    # The same bytes as a placeholder the emulator once made: say so, it is no real image.
    placeholder = bool(
        saved
        and saved.already_had
        and settings.base_url != "local"
        and images.is_emulator_image(image.data)
    )
    _render(ui, answer, saved, placeholder)


def _render(ui: Ui, answer: Any, saved: Any, placeholder: bool = False) -> None:
    """The answer on stdout (a path, or --json) and, for a person, what happened."""
    info = answer.info
    if placeholder:
        ui.note(f"{saved.path} is a placeholder of gpti2's emulator (marked EMULATOR)")
    if saved is not None and saved.mislabeled:
        kind = info.format.upper()
        ui.note(
            f"the server sent a {kind}: {saved.path} holds {kind} bytes under a"
            f" {saved.path.suffix} name"
        )
    if answer.ratio_ignored:
        ui.note(
            f"the server ignored the aspect ratio: asked {answer.requested_aspect_ratio},"
            f" got {answer.aspect_ratio} ({info.width}x{info.height})"
        )
    if ui.state.json:
        ui.out_json(answer.as_json())
    elif saved is not None:
        ui.out(str(saved.path))
        size = f"{info.width}x{info.height}" if info.width else "?"
        ui.info(f"{saved.verb} {info.format} {size}, {info.bytes} bytes in {answer.elapsed_ms} ms")


def _show_plan(ui: Ui, plan: dict[str, Any]) -> None:
    """Print the request a dry run would send (stdout)."""
    import json

    if ui.state.json:
        ui.out_json(plan)
        return
    where = plan["url"] or f"{plan['path']} on the built-in emulator (--base-url local)"
    ui.out(f"POST {where}")
    ui.out(json.dumps(plan["body"], indent=2, ensure_ascii=False))


def _typer_app() -> Any:
    from typing import Annotated

    import typer

    from gpti2.cli.common import ForceOption, JsonOption, QuietOption, command_app

    app = command_app()

    @app.command("generate")
    def generate(
        ctx: typer.Context,
        prompt: Annotated[str, typer.Argument(help="What to draw; - reads it from stdin.")],
        provider: Annotated[
            str | None,
            typer.Option(
                "-p",
                "--provider",
                help="Provider: openai, replicate, fireworks or vertex (default openai).",
            ),
        ] = None,
        model: Annotated[
            str | None, typer.Option("-m", "--model", help="Model id (default dall-e-3).")
        ] = None,
        aspect_ratio: Annotated[
            str | None,
            typer.Option("-a", "--aspect-ratio", help="Shape of the image (default 1:1)."),
        ] = None,
        output: Annotated[
            str | None,
            typer.Option(
                "-o",
                "--output",
                help="Folder or file to write; - writes the image bytes to stdout.",
                metavar="PATH",
            ),
        ] = None,
        force: ForceOption = False,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Print the request and send nothing.")
        ] = False,
        json_out: JsonOption = False,
        quiet: QuietOption = False,
    ) -> None:
        """Generate one image on the quick route and write it to disk."""
        run(
            enter(ctx, json_out, quiet),
            prompt,
            provider,
            model,
            aspect_ratio,
            output,
            force,
            dry_run,
        )

    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # the Typer command, for the full command line
        app = globals()["app"] = _typer_app()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# What `fast_main` reads of a command line: each option's field and whether it takes a
# value. Root options may stand before or after `generate` (cli/main.py moves them to the
# front); --json and -q are both root and command options, to the same effect.
# tests/test_generate_fast.py checks these tables against the Typer commands.
ROOT_FIELDS = {
    "--base-url": ("base_url", True),
    "--profile": ("profile", True),
    "--timeout": ("timeout", True),
    "--retries": ("retries", True),
    "--no-progress": ("no_progress", False),
    "--allow-insecure-http": ("allow_insecure_http", False),
    "-v": ("verbose", False),
    "--verbose": ("verbose", False),
    "--json": ("json_out", False),
    "-q": ("quiet", False),
    "--quiet": ("quiet", False),
}
COMMAND_FIELDS = {
    "-p": ("provider", True),
    "--provider": ("provider", True),
    "-m": ("model", True),
    "--model": ("model", True),
    "-a": ("aspect_ratio", True),
    "--aspect-ratio": ("aspect_ratio", True),
    "-o": ("output", True),
    "--output": ("output", True),
    "--force": ("force", False),
    "--dry-run": ("dry_run", False),
    "--json": ("json_out", False),
    "-q": ("quiet", False),
    "--quiet": ("quiet", False),
}
_COMMAND_ARGS = ("provider", "model", "aspect_ratio", "output", "force", "dry_run")


def parse_simple(args: list[str]) -> tuple[dict[str, Any], str] | None:
    """(fields, prompt) of `gpti2 [root options] generate PROMPT [options]` written in the
    plain forms (`--name value`, `--name=value`, `-n value`, flags alone); None for any
    other command line, which the Typer command parses and, if need be, explains."""
    fields: dict[str, Any] = {}
    positionals: list[str] = []
    known = ROOT_FIELDS
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "-" or not arg.startswith("-"):
            positionals.append(arg)
            if len(positionals) == 1:
                if arg != "generate":
                    return None
                known = {**ROOT_FIELDS, **COMMAND_FIELDS}
            continue
        name, equals, value = arg.partition("=")
        if name not in known or (equals and not name.startswith("--")):
            return None  # -h, --help, --version, --, -qv, -ofile, a typo, ...
        field, takes_value = known[name]
        if not takes_value:
            if equals:
                return None
            fields[field] = True
            continue
        if not equals:
            if i == len(args):
                return None
            value = args[i]
            i += 1
        if value.startswith("-") and value != "-":
            return None
        fields[field] = value
    if len(positionals) != 2:
        return None
    return fields, positionals[1]


def fast_main(args: list[str]) -> int | None:
    """Run `gpti2 generate` without typer when `parse_simple` reads the command line, and
    return its exit code; None, having done nothing, otherwise. Errors and exit codes are
    those of the full command: the same `exit_code_for` in cli/main.py."""
    parsed = parse_simple(args)
    if parsed is None:
        return None
    fields, prompt = parsed
    state = State()
    terminate_like_interrupt()
    for name in ("base_url", "profile", "timeout", "retries"):
        setattr(state, name, fields.get(name))
    for name in ("no_progress", "allow_insecure_http", "verbose", "quiet"):
        setattr(state, name, fields.get(name, False))
    state.json = fields.get("json_out", False)
    try:
        run(Ui(state), prompt, *(fields.get(name) for name in _COMMAND_ARGS))
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        from gpti2.cli.main import exit_code_for  # the one place that maps errors

        return exit_code_for(exc, state)
    return 0
