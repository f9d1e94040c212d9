"""`gpti2 gallery`: the compare page, made from history rows or from a folder of images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gpti2.cli.common import ForceOption, JsonOption, command_app, enter

app = command_app()


@app.command("gallery", no_args_is_help=False)
def gallery(
    ctx: typer.Context,
    folder: Annotated[
        Path | None,
        typer.Argument(help="A folder of images (default: the history).", metavar="DIR"),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option("-q", "--search", help="Full-text search over prompts.", metavar="TEXT"),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Only this model (ID or PROVIDER:ID).", metavar="ID"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only rows since: 2h, 7d, today, or a date (UTC).", metavar="WHEN"
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("-n", "--limit", help="At most N history rows (0: all).", min=0, metavar="N"),
    ] = 200,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="The page to write (default: DIR/index.html, or ./gallery.html).",
            metavar="PAGE",
        ),
    ] = None,
    open_page: Annotated[
        bool, typer.Option("--open", help="Open the page in the browser.")
    ] = False,
    force: ForceOption = False,
    json_out: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="Nothing on stderr but errors.")] = False,
) -> None:
    """Make the compare page from the history (searched and filtered) or from a folder.

    From the history: a row per prompt, a column per model, every image of that pair in
    its cell. From a folder: its images, placed by the history row of their bytes."""
    from gpti2 import gallery as pages
    from gpti2 import history
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    db = history.db_path(ui.env.environ)
    if folder is not None:
        if search or model or since:
            raise UsageError("-q, --model and --since search the history, not a folder")
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
        page = output or folder / "index.html"
        pages.check_page(page, force)
        grid = pages.from_folder(folder, db)
    else:
        page = output or Path("gallery.html")
        pages.check_page(page, force)
        query = history.Query(
            text=search,
            model=model,
            since=history.parse_since(since) if since else None,
            limit=limit,
        )
        shown = [("history", str(db))]
        shown += [(k, v) for k, v in (("search", search), ("model", model), ("since", since)) if v]
        grid = pages.from_rows(history.search(db, query), shown)
    pages.write_page(page, grid, force)
    images = sum(len(shots) for shots in grid.cells.values())
    if ui.state.json:
        ui.out_json(
            {
                "page": str(page),
                "images": images,
                "rows": len(grid.rows),
                "columns": len(grid.columns),
            }
        )
    else:
        ui.out(str(page))
    ui.info(f"{images} images in {len(grid.rows)} rows and {len(grid.columns)} columns")
    if open_page:
        import webbrowser

        if not webbrowser.open(page.absolute().as_uri()):
            ui.warn(f"no browser to open {page} with")
