"""`gpti2 history`: what gpti2 made, newest first; `history show ID`; `history path`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from gpti2.cli.common import JsonOption, QuietOption, Ui, command_app, enter

if TYPE_CHECKING:
    from pathlib import Path

app = command_app(
    "Every image gpti2 wrote and every failed attempt, newest first; search them.\n\n"
    "A file moved or deleted since is shown as such; `history show ID` compares its SHA-256."
)

QuietLong = Annotated[bool, typer.Option("--quiet", help="Nothing on stderr but errors.")]
SearchOption = Annotated[
    str | None,
    typer.Option("-q", "--search", help="Full-text search over prompts.", metavar="TEXT"),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="Only this model (ID or PROVIDER:ID).", metavar="ID"),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since", help="Only rows since: 2h, 7d, today, or a date (UTC).", metavar="WHEN"
    ),
]


def _path(ui: Ui) -> Path:
    from gpti2 import history

    return history.db_path(ui.env.environ)


@app.callback(invoke_without_command=True, no_args_is_help=False)
def history_list(
    ctx: typer.Context,
    search: SearchOption = None,
    model: ModelOption = None,
    since: SinceOption = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed attempts.")] = False,
    limit: Annotated[
        int, typer.Option("-n", "--limit", help="At most N rows (0: all).", min=0, metavar="N")
    ] = 20,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="One JSON object a line.")] = False,
    json_out: JsonOption = False,
    quiet: QuietLong = False,
) -> None:
    """Every image gpti2 wrote and every failed attempt, newest first; search them.

    A file moved or deleted since is shown as such."""
    if ctx.invoked_subcommand is not None:
        return
    from gpti2 import history

    ui = enter(ctx, json_out, quiet)
    query = history.Query(
        text=search,
        model=model,
        since=history.parse_since(since) if since else None,
        failed=failed,
        limit=limit,
    )
    rows = [_with_file(row) for row in history.search(_path(ui), query)]
    if jsonl:
        import json

        for row in rows:
            ui.out(json.dumps(row, ensure_ascii=False))
    elif ui.state.json:
        ui.out_json(rows)
    elif ui.env.isatty("stdout"):
        _table(ui, rows)
    else:
        for row in rows:
            ui.out("\t".join(_plain(row)))
    if not rows and not (jsonl or ui.state.json):
        ui.info("no history yet" if query == history.Query(limit=limit) else "nothing found")


def _with_file(row: dict[str, Any], full: bool = False) -> dict[str, Any]:
    from gpti2 import history

    return {**row, "file": history.file_state(row, full)}


def _local_time(stamp: str) -> str:
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _model(row: dict[str, Any]) -> str:
    """PROVIDER:MODEL, the model alone, or "" when the row does not know it (a `job fetch`
    of a job started elsewhere)."""
    model = row.get("model") or ""
    return f"{row['provider']}:{model}" if row.get("provider") and model else model


def _outcome(row: dict[str, Any]) -> str:
    if row["exitCode"]:
        return f"failed ({row['exitCode']})"
    state = row.get("file")
    if state is None:
        return "stdout" if not row.get("path") else "ok"
    return "ok" if state == "present" else state


def _plain(row: dict[str, Any]) -> list[str]:
    from gpti2.display import shown

    where = row.get("error") if row["exitCode"] else (row.get("path") or "-")
    cells = (row["id"], row["time"], row["command"], _model(row), _outcome(row), where)
    # An unknown field is an empty cell (never the word None), so columns stay in place.
    return ["" if cell is None else shown(cell, None) for cell in (*cells, row.get("prompt"))]


def _table(ui: Ui, rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from gpti2.display import shown

    table = Table(show_edge=False, pad_edge=False, expand=False)
    table.add_column("id", justify="right", style="dim")
    table.add_column("when", no_wrap=True)
    table.add_column("model", no_wrap=True)
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("prompt", overflow="ellipsis", no_wrap=True, max_width=40)
    table.add_column("file", overflow="fold", min_width=24)
    styles = {"ok": "green", "stdout": "green", "missing": "yellow", "changed": "yellow"}

    def cell(text: str) -> Text:
        """What a row knows, or a dim `-` where it does not."""
        return Text(shown(text, None)) if text else Text("-", style="dim")

    for row in rows:
        outcome = _outcome(row)
        if row["exitCode"]:
            said = f"{outcome}: {row['error']}" if row.get("error") else outcome
            where = Text(shown(said, 160), style="red")
            size = ""
        else:
            label = row.get("path") or "(stdout)"
            if outcome in ("missing", "changed"):
                label += f" ({outcome})"
            where = Text(shown(label, None), style=styles.get(outcome, ""))
            size = f"{row['width']}x{row['height']}" if row.get("width") else ""
        table.add_row(
            str(row["id"]),
            _local_time(row["time"]),
            cell(_model(row)),
            cell(size),
            cell(row.get("prompt") or ""),
            where,
        )
    Console(file=ui.env.stdout_, highlight=False, soft_wrap=False).print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    row_id: Annotated[int, typer.Argument(help="The row's id.", metavar="ID")],
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Show one history row in full, and whether its file is still there unchanged."""
    from gpti2 import history
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    row = history.get(_path(ui), row_id)
    if row is None:
        raise UsageError(f"no history row {row_id}", hint="list them: gpti2 history")
    row = _with_file(row, full=True)
    if ui.state.json:
        ui.out_json(row)
        return
    for name, value in describe(row):
        ui.out(f"{name + ':':<22}{value}")


def describe(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, shown value) of a row, for people."""
    from gpti2.display import shown

    pairs = []
    for name, value in row.items():
        if value is None:
            continue
        if name == "time":
            value = f"{value} ({_local_time(value)} local)"
        pairs.append((name, shown(value, None)))
    return pairs


@app.command("path")
def path(ctx: typer.Context, json_out: JsonOption = False, quiet: QuietOption = False) -> None:
    """Print where the history database is."""
    ui = enter(ctx, json_out, quiet)
    where = _path(ui)
    if ui.state.json:
        ui.out_json({"path": str(where), "exists": where.exists()})
    else:
        ui.out(str(where))
