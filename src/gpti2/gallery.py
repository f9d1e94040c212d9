"""The gallery page: a grid of images (rows prompts, columns models) in one self-contained
HTML file, made from a `compare` run, from history rows, or from a folder of images.

The page needs no server and makes no request anywhere: images are referenced by paths
relative to the page, the style and the small script are inline, and a Content Security
Policy (with the hashes of that style and script) forbids everything else. Every string
on it (prompts, server errors, file names) is HTML-escaped: they come from outside.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gpti2 import files
from gpti2.errors import UsageError

if TYPE_CHECKING:
    from gpti2.compare import CellResult

GENERATOR = "gpti2"
_MARK = f'<meta name="generator" content="{GENERATOR}">'


@dataclass
class Shot:
    """One image in a cell, or one failure."""

    path: Path | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    bytes: int | None = None
    elapsed_ms: int | None = None
    error: str | None = None
    exit_code: int = 0
    when: str | None = None
    alt: str = ""


@dataclass
class Row:
    """A row of the grid: a prompt (with its aspect ratio when several are compared)."""

    prompt: str
    ratio: str | None = None
    number: int | None = None  # shown beside the prompt (compare: the file names' index)


@dataclass
class Grid:
    """What the page shows."""

    title: str
    settings: list[tuple[str, str]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    cells: dict[tuple[int, int], list[Shot]] = field(default_factory=dict)

    def add(self, row: Row, column: str, shot: Shot) -> None:
        """Put `shot` in the cell of `row` and `column` (made when new)."""
        if row not in self.rows:
            self.rows.append(row)
        if column not in self.columns:
            self.columns.append(column)
        key = (self.rows.index(row), self.columns.index(column))
        self.cells.setdefault(key, []).append(shot)


# -- making grids ---------------------------------------------------------------------


def from_compare(results: Iterable[CellResult], settings: list[tuple[str, str]]) -> Grid:
    """The grid of a compare run, in its own order."""
    grid = Grid("gpti2 compare", settings)
    results = list(results)
    ratios = {r.cell.aspect_ratio for r in results}
    for result in results:
        cell = result.cell
        row = Row(cell.prompt, cell.aspect_ratio if len(ratios) > 1 else None, cell.prompt_index)
        info = result.info
        grid.add(
            row,
            cell.model_label,
            Shot(
                path=result.path,
                width=info.width if info else None,
                height=info.height if info else None,
                format=info.format if info else None,
                bytes=info.bytes if info else None,
                elapsed_ms=result.elapsed_ms,
                error=result.error,
                exit_code=result.exit_code,
                alt=f"{cell.prompt} ({cell.model_label}, {cell.aspect_ratio})",
            ),
        )
    if len(ratios) == 1:
        grid.settings.append(("aspect ratio", next(iter(ratios))))
    return grid


def _model_label(row: Mapping[str, Any]) -> str:
    model = row.get("model") or "unknown model"
    return f"{row['provider']}:{model}" if row.get("provider") else str(model)


def shot_of(row: Mapping[str, Any]) -> Shot:
    """A history row as a shot."""
    return Shot(
        path=Path(row["path"]) if row.get("path") else None,
        width=row.get("width"),
        height=row.get("height"),
        format=row.get("format"),
        bytes=row.get("bytes"),
        elapsed_ms=row.get("elapsedMs"),
        error=row.get("error") if row.get("exitCode") else None,
        exit_code=row.get("exitCode") or 0,
        when=row.get("time"),
        alt=f"{row.get('prompt') or ''} ({_model_label(row)})",
    )


def from_rows(rows: Iterable[Mapping[str, Any]], settings: list[tuple[str, str]]) -> Grid:
    """The grid of history rows (newest first): a row per prompt and requested ratio, a
    column per model, every image of that pair in its cell."""
    grid = Grid("gpti2 gallery", settings)
    for row in rows:
        if not row.get("path") and not row.get("exitCode"):
            continue  # written to stdout: nothing to show
        prompt = row.get("prompt") or "(no prompt recorded)"
        ratio = row.get("requestedAspectRatio") or row.get("aspectRatio")
        grid.add(Row(prompt, ratio), _model_label(row), shot_of(row))
    return grid


def from_folder(folder: Path, history_path: Path | None) -> Grid:
    """The grid of the images in `folder` (not its subfolders), each placed by the history
    row of its bytes when there is one."""
    from gpti2 import history, images

    grid = Grid("gpti2 gallery", [("folder", str(folder.absolute()))])
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        info = images.describe_file(path) if path.suffix.lower() != ".html" else None
        if info is None:
            continue
        row = history.by_sha256(history_path, info.sha256) if history_path else None
        shot = Shot(
            path=path,
            width=info.width,
            height=info.height,
            format=info.format,
            bytes=info.bytes,
            alt=path.name,
        )
        if row is None:
            grid.add(Row("(not in the history)"), "unknown", shot)
            continue
        shot.elapsed_ms, shot.when = row.get("elapsedMs"), row.get("time")
        shot.alt = f"{row.get('prompt') or ''} ({_model_label(row)})"
        ratio = row.get("requestedAspectRatio") or row.get("aspectRatio")
        grid.add(Row(row.get("prompt") or "(no prompt recorded)", ratio), _model_label(row), shot)
    return grid


# -- the page -------------------------------------------------------------------------

STYLE = """
:root { color-scheme: light dark; --bg: #f6f5f2; --card: #fff; --ink: #1d1d1f;
  --muted: #6b6b70; --line: #e2e0da; --bad: #b3261e; --bad-bg: #fdecea; --accent: #3a5bd9; }
@media (prefers-color-scheme: dark) { :root { --bg: #151517; --card: #1f1f23;
  --ink: #ececf0; --muted: #9a9aa3; --line: #2e2e34; --bad: #ff8a80; --bad-bg: #3a1d1c;
  --accent: #8ea6ff; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 24px 28px 8px; }
h1 { margin: 0 0 4px; font-size: 22px; font-weight: 650; letter-spacing: -0.01em; }
.summary { margin: 0 0 12px; color: var(--muted); }
dl.settings { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px;
  margin: 0; font-size: 13px; }
dl.settings dt { color: var(--muted); }
dl.settings dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
  overflow-wrap: anywhere; }
main { padding: 16px 28px 28px; overflow-x: auto; }
table.grid { border-collapse: separate; border-spacing: 12px; margin: -12px; }
th { text-align: left; vertical-align: top; font-weight: 600; }
thead th { position: sticky; top: 0; background: var(--bg); padding: 6px 4px;
  font-size: 14px; z-index: 1; }
thead th code { font-size: 13px; }
tbody th { width: 220px; min-width: 180px; padding: 4px; font-weight: 500; }
tbody th .n { display: inline-block; min-width: 22px; padding: 1px 6px; margin-bottom: 6px;
  border-radius: 999px; background: var(--line); color: var(--muted); font-size: 12px;
  text-align: center; }
tbody th .prompt { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
tbody th .ratio { display: block; margin-top: 6px; color: var(--muted); font-size: 12px; }
td { vertical-align: top; padding: 0; min-width: 240px; }
.stack { display: flex; flex-direction: column; gap: 10px; }
figure.shot { margin: 0; width: 320px; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; overflow: hidden; box-shadow: 0 1px 2px rgba(0,0,0,.05); }
figure.shot a.frame { display: flex; align-items: center; justify-content: center;
  background: repeating-conic-gradient(rgba(127,127,127,.12) 0 25%, transparent 0 50%)
  0 0 / 16px 16px; min-height: 120px; }
figure.shot img { display: block; max-width: 100%; max-height: 320px; width: auto;
  height: auto; }
figure.shot figcaption { display: flex; flex-wrap: wrap; gap: 4px 10px; padding: 8px 10px;
  font-size: 12px; color: var(--muted); border-top: 1px solid var(--line); }
figure.shot figcaption .dim { font-variant-numeric: tabular-nums; color: var(--ink); }
figure.error { border-color: var(--bad); background: var(--bad-bg); }
figure.error .message { padding: 14px 12px; color: var(--bad); min-height: 120px; }
figure.error .message strong { display: block; margin-bottom: 4px; }
figure.error .message p { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere;
  font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
figure.broken a.frame::after { content: "file missing"; color: var(--bad); padding: 40px; }
figure.broken img { display: none; }
td.empty { color: var(--muted); font-size: 13px; padding: 12px; }
footer { padding: 0 28px 24px; color: var(--muted); font-size: 12px; }
"""

# Marks each image with its decoded size once the page has loaded, and an image that did
# not load (a file moved since) as broken; tests read these marks in a real browser.
SCRIPT = """
window.addEventListener("load", function () {
  var shots = document.querySelectorAll("figure.shot img");
  for (var i = 0; i < shots.length; i++) {
    var img = shots[i];
    var ok = img.complete && img.naturalWidth > 0;
    img.dataset.naturalWidth = String(img.naturalWidth);
    img.dataset.naturalHeight = String(img.naturalHeight);
    img.dataset.loaded = ok ? "yes" : "no";
    if (!ok) { img.closest("figure").classList.add("broken"); }
  }
  document.body.dataset.ready = "yes";
});
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _src(path: Path, page: Path) -> str:
    """A URL for `path` relative to the page's folder."""
    relative = os.path.relpath(path.absolute(), page.absolute().parent)
    return quote(Path(relative).as_posix())


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KB"
    return f"{count / 1024 / 1024:.1f} MB"


def _shot(shot: Shot, page: Path, key: str) -> str:
    facts = []
    if shot.width and shot.height:
        facts.append(f'<span class="dim">{shot.width}×{shot.height}</span>')
    if shot.format:
        facts.append(f"<span>{_e(shot.format)}</span>")
    if shot.bytes is not None:
        facts.append(f"<span>{_e(_size(shot.bytes))}</span>")
    if shot.elapsed_ms is not None:
        facts.append(f"<span>{shot.elapsed_ms / 1000:.1f} s</span>")
    if shot.when:
        facts.append(f"<span>{_e(shot.when[:16].replace('T', ' '))} UTC</span>")
    caption = f"<figcaption>{''.join(facts)}</figcaption>" if facts else ""
    if shot.error is not None or shot.path is None:
        message = shot.error or "no image"
        return (
            f'<figure class="shot error" data-cell="{key}" data-exit-code="{shot.exit_code}">'
            f'<div class="message"><strong>failed (exit {shot.exit_code})</strong>'
            f"<p>{_e(message)}</p></div>{caption}</figure>"
        )
    src = _e(_src(shot.path, page))
    size = f' width="{shot.width}" height="{shot.height}"' if shot.width and shot.height else ""
    return (
        f'<figure class="shot ok" data-cell="{key}"><a class="frame" href="{src}">'
        f'<img src="{src}"{size} alt="{_e(shot.alt)}"></a>{caption}</figure>'
    )


def render(grid: Grid, page: Path) -> str:
    """The page's HTML; image paths are made relative to where `page` will be."""
    from gpti2 import __version__

    shots = sum(len(v) for v in grid.cells.values())
    failed = sum(1 for v in grid.cells.values() for s in v if s.error is not None)
    summary = (
        f"{shots} image{'s' if shots != 1 else ''} · {len(grid.rows)} "
        f"row{'s' if len(grid.rows) != 1 else ''} × {len(grid.columns)} "
        f"model{'s' if len(grid.columns) != 1 else ''}" + (f" · {failed} failed" if failed else "")
    )
    head = "".join(f'<th scope="col"><code>{_e(c)}</code></th>' for c in grid.columns)
    body = []
    for r, row in enumerate(grid.rows):
        ratio = f'<span class="ratio">{_e(row.ratio)}</span>' if row.ratio else ""
        cells = []
        for c in range(len(grid.columns)):
            found = grid.cells.get((r, c))
            if not found:
                cells.append('<td class="empty">nothing</td>')
                continue
            inner = "".join(_shot(s, page, f"r{r + 1}c{c + 1}") for s in found)
            cells.append(f'<td><div class="stack">{inner}</div></td>')
        body.append(
            f'<tr><th scope="row"><span class="n">{row.number or r + 1}</span>'
            f'<p class="prompt">{_e(row.prompt)}</p>{ratio}</th>{"".join(cells)}</tr>'
        )
    settings = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in grid.settings)
    policy = (
        f"default-src 'none'; img-src 'self' file: data:; style-src {_hash(STYLE)}; "
        f"script-src {_hash(SCRIPT)}; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n'
        f"{_MARK}\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(grid.title)}</title>\n<style>{STYLE}</style>\n"
        f"<script>{SCRIPT}</script>\n</head>\n<body>\n"
        f"<header><h1>{_e(grid.title)}</h1>"
        f'<p class="summary">{_e(summary)}</p>'
        f'<dl class="settings">{settings}</dl></header>\n'
        f'<main><table class="grid"><thead><tr><th></th>{head}</tr></thead>\n'
        f"<tbody>\n{chr(10).join(body)}\n</tbody></table></main>\n"
        f"<footer>Made by gpti2 {_e(__version__)}. This page loads nothing from the "
        "network; its images are the files beside it, as the server sent them.</footer>\n"
        "</body></html>\n"
    )


def check_page(page: Path, force: bool) -> None:
    """Refuse a page path that holds something gpti2 did not make (without force)."""
    files.check_target(page, force=True)
    if force or not page.exists():
        return
    try:
        with page.open("rb") as handle:
            made_by_us = _MARK.encode() in handle.read(4096)
    except OSError:
        made_by_us = False
    if not made_by_us:
        raise UsageError(
            f"{page} already exists and is not a gpti2 page",
            hint="choose another -o, or pass --force to overwrite it",
        )


def write_page(page: Path, grid: Grid, force: bool) -> None:
    """Write the page atomically (a page gpti2 made before is replaced)."""
    check_page(page, force)
    files.write_atomic(page, render(grid, page).encode("utf-8"), force=True)
