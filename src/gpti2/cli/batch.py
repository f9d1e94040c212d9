"""`gpti2 batch MANIFEST`: generate a set of images, skipping what the lock file says is done."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpti2.cli.common import JsonOption, QuietOption, Ui, command_app, enter, shell_quote

if TYPE_CHECKING:
    from gpti2.batch import Entry, Events, Item, Lock, Manifest, Result, StatCache
    from gpti2.batch.shard import Shard
    from gpti2.settings import Settings


app = command_app()

HELP = """Generate the images a manifest describes, skipping unchanged ones.

The manifest is TOML: an optional [defaults] table (route = "quick" or "job",
provider, model, aspect_ratio, output_dir, feature_id) and one [[images]] table
per image with a unique name (the file stem) and a prompt; any default can be
overridden per image. The lock file <stem>.lock.json beside it records each
image's inputs, origin and SHA-256; commit it. Shard over CI runners with
--shard K/N (or auto), then merge the fragments with --merge.
"""


@app.command("batch", help=HELP)
def batch(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="The TOML manifest.", metavar="MANIFEST")],
    fragments: Annotated[
        list[Path] | None,
        typer.Argument(
            help="With --merge: the shards' lock fragments (default: all beside the manifest).",
            metavar="FRAGMENT",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("-j", "--concurrency", help="Images generated at once.", min=1, max=64)
    ] = 4,
    check: Annotated[
        bool,
        typer.Option("--check", help="Send nothing; exit 9 if any image is missing or stale."),
    ] = False,
    deep: Annotated[
        bool,
        typer.Option("--deep", help="Hash every file, not only those whose size or time changed."),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Send nothing; print what would be generated.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Regenerate every image, even up-to-date ones.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Only this image (repeatable).", metavar="NAME"),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Only this share of the images, K/N (N at most 1000); auto reads "
            "GPTI2_SHARD or the CI's CI_NODE_INDEX/CI_NODE_TOTAL. Writes "
            "<stem>.lock.shard-K-of-N.json, not the lock.",
            metavar="K/N",
        ),
    ] = None,
    merge: Annotated[
        bool,
        typer.Option("--merge", help="Verify the shards' fragments and merge them into the lock."),
    ] = False,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Exit 2 at once if another batch runs on this manifest."),
    ] = False,
    wait_timeout: Annotated[
        float,
        typer.Option(
            "--wait-timeout", help="Give up on a job after this many seconds.", min=0, metavar="S"
        ),
    ] = 600.0,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    from gpti2 import batch as core
    from gpti2.batch import lock as locks
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    spec = core.load_manifest(manifest, settings)
    origin = core.origin_of(settings.base_url)
    waits = {"wait": not no_wait, "on_wait": ui.info, "what": str(manifest)}
    if fragments and not merge:
        raise UsageError(
            f"unexpected argument {str(fragments[0])!r}", hint="lock fragments go with --merge"
        )
    if merge:
        if shard or check or dry_run:
            raise UsageError("--merge goes alone (not with --shard, --check or --dry-run)")
        with locks.exclusive(spec.lock_path, **waits):
            _merge(ui, spec, origin, list(fragments or []))
        return
    part = _shard(ui, shard)
    cache = core.StatCache(core.sidecar(spec.lock_path, "stat"), deep=deep)

    if check or dry_run:
        lock = core.open_lock(spec, origin, part)
        _note_old_lock(ui, lock, origin)
        items = core.plan(
            spec, lock, origin=origin, force=force, only=list(only or []), files=cache, shard=part
        )
        _note_elsewhere(ui, part, only)
        cache.save()
        _report_plan(ui, spec, items, dry_run, check, unmerged=_unmerged(spec, lock))
        return

    turn = (
        locks.shared(spec.lock_path, part.fragment_path(spec), lambda: part.rivals(spec), **waits)
        if part
        else locks.exclusive(spec.lock_path, **waits)
    )
    with turn:
        lock = core.open_lock(spec, origin, part)
        _note_old_lock(ui, lock, origin)
        items = core.plan(
            spec, lock, origin=origin, force=force, only=list(only or []), files=cache, shard=part
        )
        _note_elsewhere(ui, part, only)
        try:
            keep = {n for n in spec.names() if part is None or part.holds(n)}
            results = _run(
                ui, settings, spec, lock, cache, items, keep, origin, concurrency, wait_timeout
            )
        finally:
            cache.save()
    _finish(ui, results)


def _shard(ui: Ui, value: str | None) -> Shard | None:
    if value is None:
        return None
    from gpti2.batch import shard

    if value.strip().lower() != "auto":
        return shard.parse(value)
    found, source = shard.from_environment(ui.env.environ)
    ui.info(f"shard {found} (from {source})")
    return found


def _note_elsewhere(ui: Ui, part: Shard | None, only: list[str] | None) -> None:
    """Name each --only image that another shard makes (its runner does it: not an error)."""
    for name, home in part.elsewhere(list(only or [])) if part else []:
        ui.info(f"note: {name} is in shard {home}, not this one")


def _note_old_lock(ui: Ui, lock: Lock, origin: str) -> None:
    from gpti2.batch import origin_label

    if lock.without_origin:
        ui.info(
            f"note: {lock.path.name} does not say which server made its images (written by an "
            f"older gpti2); reading them as made by {origin_label(origin)}"
        )


def _run(
    ui: Ui,
    settings: Settings,
    spec: Manifest,
    lock: Lock,
    cache: StatCache,
    items: list[Item],
    keep: set[str],
    origin: str,
    concurrency: int,
    wait_timeout: float,
) -> list[Result]:
    """Generate what the plan says, keeping the lock and its journal; the results, or the
    interruption after printing where everything stands."""
    from gpti2 import batch as core
    from gpti2 import files, history
    from gpti2.errors import UsageError

    todo = [item for item in items if item.reason is not None]
    for folder in sorted({item.entry.folder for item in todo}):
        files.check_folder(folder)  # first: a folder the system refuses is named as such
    blocking = core.conflicts(spec, lock, items) if todo else []
    if blocking:
        hint = "move it away, or pass --force to regenerate and overwrite"
        if _unmerged(spec, lock):
            hint = f"merge the shards' lock fragments first: {_merge_command(spec)}"
        raise UsageError(
            f"{blocking[0]} already exists and the lock file does not record it", hint=hint
        )
    changed = lock.keep_only(keep) or lock.journaled or lock.without_origin
    if not todo:
        if changed or lock.extra.get("shard") or not lock.path.exists():
            lock.save()
        return [core.up_to_date(item, lock) for item in items]
    needs_token = any(item.entry.route == "job" for item in todo)
    try:
        with (
            ui.client(settings, auth=needs_token) as client,
            _display(ui, [i.entry.name for i in todo]) as events,
        ):
            events.end = history.batch_end(events.end, settings, ui.env.environ, ui.warn, spec)
            runner = core.Runner(
                spec,
                lock,
                client,
                settings.status_route,
                origin,
                concurrency=concurrency,
                poll_interval=settings.poll_interval,
                wait_timeout=wait_timeout,
                events=events,
                cache=cache,
            )
            try:
                return runner.run(items)
            except KeyboardInterrupt as stop:
                _interrupted(ui, runner.outcome(items), stop)
                raise
    finally:
        lock.save()


def _interrupted(ui: Ui, results: list[Result], stop: KeyboardInterrupt) -> None:
    """The one summary of an interrupted batch: what it kept, which jobs still run."""
    kept = [r.name for r in results if r.status == "generated"]
    running = [r for r in results if r.status == "running"]
    if ui.state.json:
        ui.out_json(_document(results, interrupted=True))
        stop.answered = True  # type: ignore[attr-defined]  # stdout already holds the answer
    if ui.state.quiet:
        return
    line = f"interrupted: kept {len(kept)} new image(s)"
    if kept:
        line += f" ({_names(kept)})"
    if running:
        jobs = ", ".join(f"{r.name} ({r.task_id})" for r in running[:10])
        more = f" and {len(running) - 10} more" if len(running) > 10 else ""
        line += f"; {len(running)} job(s) still running: {jobs}{more}; the next run resumes them"
    ui.info(line)


def _names(names: list[str], limit: int = 10) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _fragments(spec: Manifest) -> list[Path]:
    """The shards' lock fragments beside the manifest."""
    return sorted(spec.path.parent.glob(f"{spec.path.stem}.lock.shard-*-of-*.json"))


def _unmerged(spec: Manifest, lock: Lock) -> bool:
    """Whether a run on the whole manifest finds shards' fragments not merged yet (a shard's
    own run has its fragment beside it by design)."""
    return not lock.extra.get("shard") and bool(_fragments(spec))


def _merge_command(spec: Manifest) -> str:
    return f"gpti2 batch {shell_quote(str(spec.path))} --merge"


def _merge(ui: Ui, spec: Manifest, origin: str, fragments: list[Path]) -> None:
    from gpti2.batch import Lock
    from gpti2.batch import shard as shards
    from gpti2.errors import UsageError

    if not fragments:
        fragments = _fragments(spec)
        if not fragments:
            raise UsageError(
                f"no lock fragments beside {spec.path}",
                hint="give their paths: gpti2 batch MANIFEST --merge FRAGMENT...",
            )
    fragments = list({path.resolve(): path for path in fragments}.values())  # each once
    lock = Lock.read(spec.lock_path, origin)
    result = shards.merge(spec, fragments, lock.records)
    if result.problems:
        stderr = ui.env.stderr_
        for problem in result.problems[:-1]:
            stderr.write(f"error: {problem}\n")
        raise UsageError(
            result.problems[-1],
            hint=f"nothing was merged: {spec.lock_path.name} is as it was",
        )
    lock.records = result.records
    lock.save()
    totals = {t for s in result.shards for t in [s.split("/")[1]]}
    missing = sorted(
        f"{k}/{n}" for n in totals for k in range(1, int(n) + 1) if f"{k}/{n}" not in result.shards
    )
    if missing:
        ui.warn(f"no fragment of shard {', '.join(missing)}: their images are not in the lock")
    if ui.state.json:
        ui.out_json(
            {
                "lock": str(spec.lock_path),
                "fragments": [str(p) for p in fragments],
                "images": len(result.records),
                "missingShards": missing,
            }
        )
    ui.info(
        f"merged {len(fragments)} fragment(s) into {spec.lock_path}: "
        f"{len(result.records)} images, every file checked against its SHA-256"
    )


def _report_plan(
    ui: Ui, spec: Manifest, items: list[Item], dry_run: bool, check: bool, *, unmerged: bool
) -> None:
    from gpti2.errors import OutOfDateError

    todo = [item for item in items if item.reason is not None]
    if ui.state.json:
        ui.out_json(
            {
                "images": [
                    {
                        "name": item.entry.name,
                        "status": "up to date" if item.reason is None else "to generate",
                        "reason": item.reason,
                        "taskId": item.task_id,
                    }
                    for item in items
                ],
                "totals": {"toGenerate": len(todo), "upToDate": len(items) - len(todo)},
            }
        )
    else:
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
                ui.out(f"{entry.name}\t{item.reason}")
        ui.info(f"{len(todo)} to generate, {len(items) - len(todo)} up to date")
    if check and todo:
        raise OutOfDateError(
            f"{len(todo)} of {len(items)} images to generate "
            f"(the first: {todo[0].entry.name}, {todo[0].reason})",
            hint=(
                f"the shards' lock fragments are not merged yet: {_merge_command(spec)}"
                if unmerged
                else f"run: gpti2 batch {shell_quote(str(spec.path))}"
            ),
        ).after_answer()


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


def _totals(results: list[Result]) -> dict[str, int]:
    return {
        "generated": sum(r.status == "generated" for r in results),
        "upToDate": sum(r.status == "up to date" for r in results),
        "failed": sum(r.status == "failed" for r in results),
        "running": sum(r.status == "running" for r in results),
        "notDone": sum(r.status == "not done" for r in results),
        "total": len(results),
    }


def _document(results: list[Result], *, interrupted: bool = False) -> dict:
    """The one --json document of a run."""
    return {
        "images": [r.as_json() for r in results],
        "totals": _totals(results),
        "interrupted": interrupted,
        "runningJobs": [
            {"name": r.name, "taskId": r.task_id} for r in results if r.status == "running"
        ],
    }


# A summary table lists every image up to this many; past it, only those not up to date.
TABLE_ALL_UP_TO = 50


def _finish(ui: Ui, results: list[Result]) -> None:
    """The summary (a table at a terminal, a plain line per image elsewhere), and one
    `error:` line naming the first failure."""
    from gpti2.batch import BatchFailed

    totals = _totals(results)
    if ui.state.json:
        ui.out_json(_document(results))
    if not ui.state.quiet:
        _summary(ui, results, totals)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        first = failed[0]
        error = BatchFailed(
            f"{len(failed)} of {len(results)} images failed; the first: {first.name}: "
            f"{first.error}",
            first.exit_code,
        )
        raise error.after_answer() if ui.state.json else error


def _summary(ui: Ui, results: list[Result], totals: dict[str, int]) -> None:
    shown = results
    if len(results) > TABLE_ALL_UP_TO:
        shown = [r for r in results if r.status != "up to date"]

    def cells(r: Result) -> tuple[str, str, str, str, str]:
        return (
            r.name,
            r.status,
            f"{r.bytes:,} B" if r.bytes is not None else "",
            f"{r.seconds:.1f} s" if r.status != "up to date" else "",
            r.error or r.path or "",
        )

    if not ui.env.isatty("stderr"):
        for r in shown:  # one line per image: a CI log must not wrap an error over lines
            name, status, size, seconds, detail = cells(r)
            ui.info("  ".join(part for part in (name, status, size, seconds, detail) if part))
    else:
        from rich.table import Table
        from rich.text import Text

        table = Table(title=None, show_edge=False, pad_edge=False)
        for column in ("image", "status", "size", "time", "detail"):
            table.add_column(column, justify="right" if column in ("size", "time") else "left")
        styles = {"generated": "green", "up to date": "dim", "failed": "red"}
        for r in shown:
            name, status, size, seconds, detail = cells(r)
            # server text in `detail`: never read as rich markup
            table.add_row(
                name, f"[{styles.get(status, '')}]{status}[/]", size, seconds, Text(detail)
            )
        ui.console.print(table)
    ui.info(
        f"{totals['generated']} generated, {totals['upToDate']} up to date, "
        f"{totals['failed']} failed"
    )
