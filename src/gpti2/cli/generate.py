"""`gpti2 generate`: the quick route, one image to disk.

Scripts call this command in loops, so its start-up counts: its work (`run`) needs no
typer, and `fast_main` runs it for a simple command line (known options, one prompt)
without loading typer at all. Anything else (help, a mistake, an option written another
way) goes to the Typer command, `app`, built on first use.

(No `from __future__ import annotations` here: the Typer command is defined inside a
function, and typer can only read annotations that are already objects there.)
"""

import time
from pathlib import Path
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
    from gpti2 import files, history, images, quick
    from gpti2.errors import UsageError

    settings = ui.settings(provider=provider, model=model, aspect_ratio=aspect_ratio)
    text = read_prompt(prompt, ui)
    request = quick.QuickRequest(text, settings.provider, settings.model, settings.aspect_ratio)

    if dry_run:
        _dry_run(ui, settings.base_url, quick.ROUTE, request.body())
        return

    to_stdout = output == "-"
    if to_stdout and ui.state.json:
        raise UsageError("--json and -o - both write to stdout", hint="choose one of them")
    if to_stdout and ui.env.isatty("stdout"):  # as curl and httpie: no binary on a screen
        raise UsageError(
            "refusing to write the image's bytes to a terminal",
            hint="redirect them (-o - > image.png), pipe them, or give -o a file or folder",
        )
    folder, target = _output_target(output, settings.output_dir)
    if target is not None:
        files.check_target(target, force)
    elif folder is not None:
        files.check_folder(folder)

    started = time.monotonic()
    record = history.attempt("generate", request, settings, ui.env.environ, ui.warn)
    # One request: the standard library's connection starts sooner than a pooled client.
    with (
        record.failures(),
        ui.client(settings, pooled=False) as client,
        ui.spinner(f"generating with {request.provider}…"),
    ):
        result = quick.generate(client, request)

    if to_stdout:
        stdout = ui.env.stdout_.buffer
        rest = memoryview(result.data)
        while rest:  # a pipe may take part of it; a closed one raises BrokenPipeError
            written = stdout.write(rest)
            if not written:
                raise BrokenPipeError
            rest = rest[written:]
        stdout.flush()
        record.wrote(None, result.info, provider=result.provider)
        return
    verb = "wrote"
    if target is None:
        assert folder is not None
        target = folder / images.default_name(text, result.info)
        if target.exists() and not force and images.describe_file(target) == result.info:
            verb = "already had"  # the same bytes, under their content-addressed name
            if settings.base_url != "local" and images.is_emulator_image(result.data):
                ui.info(f"note: {target} is a placeholder of gpti2's emulator (marked EMULATOR)")
        else:
            files.write_atomic(target, result.data, force)
    else:
        files.write_atomic(target, result.data, force)
        if images.extension_mismatch(target, result.info):
            ui.note(
                f"the server sent a {result.info.format.upper()}: {target} holds"
                f" {result.info.format.upper()} bytes under a {target.suffix} name"
            )
    elapsed_ms = round((time.monotonic() - started) * 1000)
    record.wrote(target, result.info, provider=result.provider)

    info = result.info
    received = images.reduced_ratio(info.width, info.height)
    if received and received != request.aspect_ratio:
        ui.info(
            f"note: asked for {request.aspect_ratio}, the server sent {received}"
            f" ({info.width}x{info.height}); it ignored the aspect ratio"
        )
    if ui.state.json:
        ui.out_json(
            {
                "path": str(target),
                "bytes": info.bytes,
                "sha256": info.sha256,
                "format": info.format,
                "width": info.width,
                "height": info.height,
                "provider": result.provider,
                "modelId": request.model_id,
                "aspectRatio": received,
                "requestedAspectRatio": request.aspect_ratio,
                "elapsedMs": elapsed_ms,
            }
        )
    else:
        ui.out(str(target))
        size = f"{info.width}x{info.height}" if info.width else "?"
        ui.info(f"{verb} {info.format} {size}, {info.bytes} bytes in {elapsed_ms} ms")


def _dry_run(ui: Ui, base_url: str, route: str, body: dict[str, Any]) -> None:
    """Print the request that would be sent (stdout), and send nothing."""
    import json

    local = base_url == "local"  # its port is only chosen when the emulator starts
    plan = {
        "method": "POST",
        "url": None if local else base_url + route,
        "baseUrl": base_url,
        "path": route,
        "body": body,
    }
    if ui.state.json:
        ui.out_json(plan)
        return
    where = f"{route} on the built-in emulator (--base-url local)" if local else plan["url"]
    ui.out(f"POST {where}")
    ui.out(json.dumps(body, indent=2, ensure_ascii=False))


def _output_target(output: str | None, output_dir: str) -> tuple[Path | None, Path | None]:
    """(folder for a default name, explicit file): exactly one is set, or neither for `-`."""
    if output == "-":
        return None, None
    if output is None:
        return Path(output_dir).expanduser(), None
    path = Path(output).expanduser()
    if path.is_dir() or output.endswith(("/", "\\")):
        return path, None
    return None, path


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
