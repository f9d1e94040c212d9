"""`gpti2 generate`: the quick route, one image to disk."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from gpti2.cli.common import (
    ForceOption,
    JsonOption,
    QuietOption,
    command_app,
    enter,
    read_prompt,
)

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
        str | None, typer.Option("-a", "--aspect-ratio", help="Shape of the image (default 1:1).")
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
    from gpti2 import files, images, quick
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings(provider=provider, model=model, aspect_ratio=aspect_ratio)
    text = read_prompt(prompt, ui)
    request = quick.QuickRequest(text, settings.provider, settings.model, settings.aspect_ratio)

    if dry_run:
        base = (
            "http://127.0.0.1:<port> (local emulator)"
            if settings.base_url == "local"
            else (settings.base_url)
        )
        plan = {"method": "POST", "url": base + quick.ROUTE, "body": request.body()}
        if ui.state.json:
            ui.out_json(plan)
        else:
            import json

            ui.out(f"POST {plan['url']}")
            ui.out(json.dumps(plan["body"], indent=2, ensure_ascii=False))
        return

    to_stdout = output == "-"
    if to_stdout and ui.state.json:
        raise UsageError("--json and -o - both write to stdout", hint="choose one of them")
    folder, target = _output_target(output, settings.output_dir)
    if target is not None:
        files.check_target(target, force)
    elif folder is not None:
        files.check_folder(folder)

    started = time.monotonic()
    # One request: the standard library's connection starts sooner than a pooled client.
    with (
        ui.client(settings, pooled=False) as client,
        ui.spinner(f"generating with {request.provider}…"),
    ):
        result = quick.generate(client, request)

    if to_stdout:
        stdout = ui.env.stdout_.buffer
        stdout.write(result.data)
        stdout.flush()
        return
    verb = "wrote"
    if target is None:
        assert folder is not None
        target = folder / images.default_name(text, result.info)
        if target.exists() and not force and images.describe_file(target) == result.info:
            verb = "already had"  # the same bytes, under their content-addressed name
        else:
            files.write_atomic(target, result.data, force)
    else:
        files.write_atomic(target, result.data, force)
    elapsed_ms = round((time.monotonic() - started) * 1000)

    if ui.state.json:
        info = result.info
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
                "aspectRatio": request.aspect_ratio,
                "elapsedMs": elapsed_ms,
            }
        )
    else:
        ui.out(str(target))
        size = f"{result.info.width}x{result.info.height}" if result.info.width else "?"
        info = result.info
        ui.info(f"{verb} {info.format} {size}, {info.bytes} bytes in {elapsed_ms} ms")


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
