"""`gpti2 batch MANIFEST`: generate a set of images, skipping what the lock file says is done."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpti2.cli.common import ForceOption, JsonOption, QuietOption, Ui, command_app, enter

if TYPE_CHECKING:
    from gpti2.batch import Entry, Events, Item, Result


app = command_app()


@app.command("batch")
def batch(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="The TOML manifest.", metavar="MANIFEST")],
    concurrency: Annotated[
        int, typer.Option("-j", "--concurrency", help="Images generated at once.", min=1, max=64)
    ] = 4,
    check: Annotated[
        bool,
        typer.Option("--check", help="Send nothing; exit 9 if any image is missing or stale."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Send nothing; print what would be generated.")
    ] = False,
    force: ForceOption = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only this image (repeatable).", metavar="NAME"),
    ] = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Generate the images a manifest describes, skipping unchanged ones."""
    from gpti2 import batch as core
    from gpti2 import files
    from gpti2.errors import OutOfDateError, UsageError

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    spec = core.load_manifest(manifest, settings)
    lock = core.Lock.read(spec.lock_path)
    items = core.plan(spec, lock, force=force, only=list(only or []))
    todo = [item for item in items if item.reason is not None]

    if check or dry_run:
        _report_plan(ui, items, dry_run)
        if check and todo:
            raise OutOfDateError(
                f"{len(todo)} of {len(items)} images to generate",
                hint=f"run: gpti2 batch {manifest}",
            ).after_answer()
        return

    blocking = core.conflicts(spec, lock, items)
    if blocking:
        raise UsageError(
            f"{blocking[0]} already exists and the lock file does not record it",
            hint="move it away, or pass --force to regenerate and overwrite",
        )
    for folder in sorted({item.entry.folder for item in todo}):
        files.check_folder(folder)
    interval = settings.poll_interval
    needs_token = any(item.entry.route == "job" for item in todo)
    if lock.keep_only({e.name for e in spec.entries}) or (not todo and lock.records):
        lock.save()  # drop entries the manifest no longer names

    results: list[Result] = []
    if todo:
        with (
            ui.client(settings, auth=needs_token) as client,
            _display(ui, [i.entry.name for i in todo]) as events,
        ):
            runner = core.Runner(
                spec,
                lock,
                client,
                settings.status_route,
                concurrency=concurrency,
                poll_interval=interval,
                events=events,
            )
            results = runner.run(items)
    else:
        results = [core.up_to_date(item, lock) for item in items]

    _report(ui, results)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise typer.Exit(failed[0].exit_code)


def _report_plan(ui: Ui, items: list[Item], dry_run: bool) -> None:
    todo = [item for item in items if item.reason is not None]
    if ui.state.json:
        ui.out_json(
            {
                "images": [
                    {
                        "name": item.entry.name,
                        "status": "up to date" if item.reason is None else "to generate",
                        "reason": item.reason,
                    }
                    for item in items
                ],
                "totals": {"toGenerate": len(todo), "upToDate": len(items) - len(todo)},
            }
        )
        return
    for item in todo:
        entry = item.entry
        if dry_run:
            how = (
                f"{entry.route} {entry.provider}/{entry.model}"
                if entry.provider
                else f"{entry.route} {entry.model}"
            )
            ui.out(f"{entry.name}\t{item.reason}\t{how} {entry.aspect_ratio}")
        else:
            ui.out(entry.name)
    ui.info(f"{len(todo)} to generate, {len(items) - len(todo)} up to date")


@contextlib.contextmanager
def _display(ui: Ui, names: list[str]) -> Iterator[Events]:
    """One overall bar plus a line per image in flight at a TTY; plain lines elsewhere."""
    from gpti2.batch import Events

    total = len(names)

    if not ui.progress_enabled:
        finished = [0]

        def plain_end(result: Result) -> None:
            finished[0] += 1
            detail = result.error if result.status == "failed" else result.path
            ui.info(f"[{finished[0]}/{total}] {result.name} {result.status}: {detail}")

        yield Events(end=plain_end)
        return

    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from gpti2.cli.progress import stable_column

    # Fixed widths: rows that come and go (and stages of any length) never move the columns.
    width = max(len(f"batch {total}/{total}"), 2 + max(map(len, names)) + 2 + 32)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", table_column=stable_column(width)),
        BarColumn(),
        TimeElapsedColumn(),
        console=ui.console,
        transient=True,
    ) as bars:
        overall = bars.add_task(f"batch 0/{total}", total=total)
        finished = [0]
        in_flight: dict[str, int] = {}

        def begin(entry: Entry, stage: str) -> None:
            if entry.name not in in_flight:
                in_flight[entry.name] = bars.add_task(f"  {entry.name}: {stage}", total=None)
            else:
                bars.update(in_flight[entry.name], description=f"  {entry.name}: {stage}")

        def end(result: Result) -> None:
            task = in_flight.pop(result.name, None)
            if task is not None:
                bars.remove_task(task)
            finished[0] += 1
            bars.update(overall, advance=1, description=f"batch {finished[0]}/{total}")

        yield Events(begin=begin, end=end)


def _report(ui: Ui, results: list[Result]) -> None:
    totals = {
        "generated": sum(r.status == "generated" for r in results),
        "upToDate": sum(r.status == "up to date" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "total": len(results),
    }
    if ui.state.json:
        ui.out_json({"images": [r.as_json() for r in results], "totals": totals})
    if ui.state.quiet:
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title=None, show_edge=False, pad_edge=False)
    for column in ("image", "status", "size", "time", "detail"):
        table.add_column(column, justify="right" if column in ("size", "time") else "left")
    styles = {"generated": "green", "up to date": "dim", "failed": "red"}
    for r in results:
        table.add_row(
            r.name,
            f"[{styles[r.status]}]{r.status}[/]",
            f"{r.bytes:,} B" if r.bytes is not None else "",
            f"{r.seconds:.1f} s" if r.status != "up to date" else "",
            Text(r.error or r.path or ""),  # server text: never read as rich markup
        )
    ui.console.print(table)
    ui.info(
        f"{totals['generated']} generated, {totals['upToDate']} up to date, "
        f"{totals['failed']} failed"
    )
