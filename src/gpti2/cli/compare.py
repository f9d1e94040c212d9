"""`gpti2 compare`: prompts and models side by side, on one page."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpti2.cli.common import (
    ForceOption,
    JsonOption,
    QuietOption,
    Ui,
    command_app,
    enter,
    read_prompt,
)

if TYPE_CHECKING:
    from gpti2.compare import Cell, CellResult, Events

app = command_app()


@app.command("compare")
def compare(
    ctx: typer.Context,
    prompts: Annotated[
        list[str], typer.Argument(help="Prompts (one row each); - reads one from stdin.")
    ],
    models: Annotated[
        list[str],
        typer.Option(
            "-m",
            "--model",
            help="PROVIDER:MODEL (one column each; repeatable). The job model id with --route job.",
            metavar="PROVIDER:MODEL",
        ),
    ],
    ratios: Annotated[
        list[str] | None,
        typer.Option("-a", "--aspect-ratio", help="Shape of the images (repeatable; default 1:1)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="Folder for the images and index.html (default: a new compare-<time>).",
            metavar="DIR",
        ),
    ] = None,
    open_page: Annotated[
        bool, typer.Option("--open", help="Open the page in the browser.")
    ] = False,
    concurrency: Annotated[
        int, typer.Option("-j", "--concurrency", help="Images generated at once.", min=1, max=64)
    ] = 4,
    route: Annotated[
        str,
        typer.Option("--route", help="quick, or job for job-route models.", metavar="[quick|job]"),
    ] = "quick",
    force: ForceOption = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Put prompts and models side by side: every prompt with every model, on one page.

    Runs the cross product concurrently into a folder of
    <prompt index>-<provider>-<model slug>-<ratio>.<ext> files and a self-contained
    index.html (rows prompts, columns models), and prints the page's path. The exit
    code is that of the first failed image, in grid order."""
    from gpti2 import compare as core
    from gpti2 import gallery, history
    from gpti2.errors import Gpti2Error, UsageError
    from gpti2.settings import parse_value

    ui = enter(ctx, json_out, quiet)
    if route not in ("quick", "job"):
        raise UsageError(f"--route {route!r}: expected quick or job")
    settings = ui.settings()
    texts = [read_prompt(p, ui) for p in prompts]
    pairs = [core.parse_model(m, settings.provider, route) for m in models]
    shapes = [parse_value("aspect_ratio", r, "-a") for r in ratios or [settings.aspect_ratio]]
    cells = core.plan(texts, pairs, shapes)
    folder = output.expanduser() if output else _new_folder(Path(settings.output_dir))
    page = folder / "index.html"
    core.check_output(folder, cells, page, force)

    with ui.client(settings, auth=route == "job") as client, _display(ui, len(cells)) as events:
        runner = core.Runner(
            client,
            folder,
            route=route,
            concurrency=concurrency,
            force=force,
            feature_id=settings.feature_id,
            mode="text_to_image",
            poll_interval=settings.poll_interval,
            events=events,
            history=lambda command, request: history.attempt(
                command, request, settings, ui.env.environ, ui.warn
            ),
        )
        results = runner.run(cells)

    facts = [
        ("origin", history.origin_of(settings.base_url)),
        ("route", route),
        ("models", ", ".join(dict.fromkeys(c.model_label for c in cells))),
        ("made", history.now()[:19].replace("T", " ") + " UTC"),
    ]
    gallery.write_page(page, gallery.from_compare(results, facts), force)
    if ui.state.json:
        ui.out_json({"page": str(page), "cells": [r.as_json() for r in results]})
    else:
        ui.out(str(page))
    failed = [r for r in results if r.error is not None]
    ui.info(f"{len(results) - len(failed)} made, {len(failed)} failed; the page: {page}")
    if open_page:
        _open(ui, page)
    if failed:
        first = failed[0]
        count = f"{len(failed)} of {len(results)} images failed"
        error = Gpti2Error(f"{count}; first: {first.cell.label}: {first.error}")
        error.exit_code = first.exit_code
        raise error.after_answer()


def _new_folder(parent: Path) -> Path:
    """A `compare-<time>` folder that does not exist yet."""
    import time

    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = parent.expanduser() / f"compare-{stamp}"
    n = 2
    while folder.exists():
        folder = parent.expanduser() / f"compare-{stamp}-{n}"
        n += 1
    return folder


def _open(ui: Ui, page: Path) -> None:
    import webbrowser

    if not webbrowser.open(page.absolute().as_uri()):
        ui.warn(f"no browser to open {page} with")


@contextlib.contextmanager
def _display(ui: Ui, total: int) -> Iterator[Events]:
    """One overall bar plus a line per image in flight at a TTY; plain lines elsewhere."""
    from gpti2.compare import Events

    finished = [0]
    if not ui.progress_enabled:
        import threading

        mutex = threading.Lock()

        def plain_end(result: CellResult) -> None:
            outcome = f"failed: {result.error}" if result.error else f"done: {result.path}"
            with mutex:  # workers finish at once: numbered lines stay in order
                finished[0] += 1
                ui.info(f"[{finished[0]}/{total}] {result.cell.label} {outcome}")

        yield Events(end=plain_end)
        return

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    from gpti2.display import shown

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=ui.console,
        transient=True,
    ) as bars:
        overall = bars.add_task(f"compare 0/{total}", total=total)
        in_flight: dict[Cell, int] = {}

        def begin(cell: Cell) -> None:
            in_flight[cell] = bars.add_task(f"  {cell.label}", total=None)

        def end(result: CellResult) -> None:
            task = in_flight.pop(result.cell, None)
            if task is not None:
                bars.remove_task(task)
            finished[0] += 1
            if result.error:
                line = Text.assemble(
                    ("failed ", "red"), shown(f"{result.cell.label}: {result.error}")
                )
                bars.console.print(line)
            bars.update(overall, advance=1, description=f"compare {finished[0]}/{total}")

        yield Events(begin=begin, end=end)
