"""`gpti2 inspect FILE...`: what an image file is and where it came from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gpti2.cli.common import JsonOption, QuietOption, Ui, command_app, enter

if TYPE_CHECKING:
    from gpti2.provenance import FileReport

app = command_app()


@app.command("inspect")
def inspect(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="Image files.", metavar="FILE")],
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Show an image's format, size, SHA-256, C2PA manifest and where gpti2 made it.

    The history row is found by the file's SHA-256, so a renamed or copied file is still
    recognised. Exit 2 when a file is missing or not an image (the others are still
    shown)."""
    from gpti2 import provenance
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    reports = [provenance.inspect_file(path) for path in paths]
    rows = _history_rows(ui, reports)
    if ui.state.json:
        ui.out_json([r.as_json(rows.get(r.sha256 or "")) for r in reports])
    else:
        for n, report in enumerate(reports):
            if n:
                ui.out("")
            for line in describe(report, rows.get(report.sha256 or "")):
                ui.out(line)
    bad = [r for r in reports if r.error]
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise UsageError(f"{bad[0].path}: {bad[0].error}{more}").after_answer()


def _history_rows(ui: Ui, reports: list[FileReport]) -> dict[str, dict[str, Any]]:
    """The newest history row of each image's bytes, by SHA-256 (none when the history
    cannot be read: a warning, not a failure)."""
    from gpti2 import history
    from gpti2.errors import UsageError

    path = history.db_path(ui.env.environ)
    found: dict[str, dict[str, Any]] = {}
    try:
        for report in reports:
            if report.sha256 and not report.error and report.sha256 not in found:
                row = history.by_sha256(path, report.sha256)
                if row is not None:
                    found[report.sha256] = row
    except UsageError as exc:
        ui.warn(exc.message)
    return found


def describe(report: FileReport, row: dict[str, Any] | None) -> list[str]:
    """The lines `gpti2 inspect` prints for one file."""
    from gpti2.display import shown

    lines = [shown(report.path, None)]
    if report.error:
        return [*lines, f"  error      {report.error}"]
    size = f"{report.width}x{report.height}" if report.width else "size unknown"
    lines.append(f"  image      {report.format} {size}, {report.bytes:,} bytes")
    if report.problem:
        lines.append(f"  warning    {report.problem}")
    lines.append(f"  sha256     {report.sha256}")
    if not report.c2pa_present:
        c2pa = "none"
    elif report.claim_generator:
        c2pa = f"present, claim generator {shown(report.claim_generator, 200)}"
    else:
        c2pa = "present (claim generator not readable)"
    lines.append(f"  c2pa       {c2pa}")
    if report.emulator:
        lines.append("  emulator   yes: a placeholder from gpti2's emulator, not a real image")
    if row is None:
        lines.append("  history    not found (not made by gpti2 here, or history was off)")
        return lines
    model = f"{row['provider']}:{row['model']}" if row.get("provider") else row.get("model")
    lines.append(f"  history    #{row['id']}, {row['time']}, {row['command']}, {model}")
    lines.append(f"  origin     {row['origin']}")
    if row.get("taskId"):
        lines.append(f"  job        {shown(row['taskId'], 200)}")
    lines.append(f"  prompt     {shown(row.get('prompt') or '', None)}")
    if row.get("path") and row["path"] != str(Path(report.path).absolute()):
        lines.append(f"  written as {shown(row['path'], None)}")
    return lines
