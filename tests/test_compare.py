"""`gpti2 compare` and `gpti2 gallery`: the cross product into one folder and one page, made
safely (every string escaped, nothing loaded from the network), recorded in the history."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import TOKEN, gpti2_command
from gpti2 import history

HOSTILE = '<script>document.body.dataset.pwned = "yes"</script> & "quotes" <b>'


def _links(page: Path) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]*)"', page.read_text())


def test_the_cross_product_into_one_folder_and_page(cli, emulator, tmp_path) -> None:
    out = tmp_path / "cmp"
    run = cli(
        "compare",
        "a red fox",
        "a lighthouse",
        "-m",
        "openai:dall-e-3",
        "-m",
        "replicate:flux-schnell",
        "-a",
        "1:1",
        "-a",
        "16:9",
        "-o",
        str(out),
        "--base-url",
        emulator.url,
    )
    assert run.exit_code == 0, run.stderr
    assert run.stdout == f"{out / 'index.html'}\n"
    names = sorted(p.name for p in out.iterdir())
    expected = sorted(
        f"{n}-{model}-{ratio}.png"
        for n in (1, 2)
        for model in ("openai-dall-e-3", "replicate-flux-schnell")
        for ratio in ("1x1", "16x9")
    )
    assert names == sorted([*expected, "index.html"])
    page = (out / "index.html").read_text()
    assert page.count('class="shot ok"') == 8 and "a lighthouse" in page
    assert all(link in expected for link in _links(out / "index.html"))
    rows = history.search(history.db_path(), history.Query(limit=0))
    assert len(rows) == 8 and {r["command"] for r in rows} == {"compare"}
    assert {(r["provider"], r["model"]) for r in rows} == {
        ("openai", "dall-e-3"),
        ("replicate", "flux-schnell"),
    }
    # plain progress lines when stderr is not a terminal, numbered in order
    counts = re.findall(r"^\[(\d+)/8\]", run.stderr, re.M)
    assert counts == [str(n) for n in range(1, 9)]


def test_json_and_the_exit_code_of_the_first_failed_cell(cli, emulator, tmp_path) -> None:
    run = cli(
        "compare",
        "a fox",
        HOSTILE,
        "-m",
        "openai:dall-e-3",
        "-m",
        "bogus:model",
        "-o",
        str(tmp_path / "c"),
        "--json",
        "--base-url",
        emulator.url,
        "--retries",
        "0",
    )
    assert run.exit_code == 5, run.stderr
    answer = run.json
    assert answer["page"] == str(tmp_path / "c" / "index.html")
    cells = answer["cells"]
    assert [(c["prompt"], c["provider"], c["model"]) for c in cells] == [
        ("a fox", "openai", "dall-e-3"),
        ("a fox", "bogus", "model"),
        (HOSTILE, "openai", "dall-e-3"),
        (HOSTILE, "bogus", "model"),
    ]
    assert set(cells[0]) == {
        "prompt",
        "provider",
        "model",
        "aspectRatio",
        "path",
        "error",
        "elapsedMs",
    }
    assert cells[0]["error"] is None and Path(cells[0]["path"]).is_file()
    assert cells[1]["path"] is None and "rejected" in cells[1]["error"]
    page = Path(answer["page"]).read_text()
    assert HOSTILE not in page and "&lt;script&gt;document.body" in page
    assert page.count('class="shot error"') == 2 and "failed (exit 5)" in page
    assert "1 bogus:model 1:1" in run.stderr  # the first failure, in grid order
    failed = history.search(history.db_path(), history.Query(failed=True, limit=0))
    assert len(failed) == 2 and {r["exitCode"] for r in failed} == {5}


def test_the_page_loads_nothing_from_the_network(cli, emulator, tmp_path) -> None:
    run = cli(
        "compare",
        "x",
        "-m",
        "openai:dall-e-3",
        "-o",
        str(tmp_path / "c"),
        "--base-url",
        emulator.url,
    )
    page = (tmp_path / "c" / "index.html").read_text()
    assert run.exit_code == 0
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)[1]
    assert "default-src 'none'" in policy and "http" not in policy
    for link in _links(tmp_path / "c" / "index.html"):
        assert "://" not in link and not link.startswith("//")
    assert "<link" not in page and "@import" not in page and "url(http" not in page


def test_files_in_the_way_are_refused_before_any_request(cli, scripted, tmp_path) -> None:
    scripted.add(500, "should never be asked")
    out = tmp_path / "c"
    out.mkdir()
    (out / "1-openai-dall-e-3-1x1.png").write_bytes(b"mine")
    run = cli("compare", "x", "-m", "openai:dall-e-3", "-o", str(out), "--base-url", scripted.url)
    assert run.exit_code == 2 and "already exists" in run.stderr
    (out / "1-openai-dall-e-3-1x1.png").unlink()
    (out / "index.html").write_text("<p>my own page</p>")
    run = cli("compare", "x", "-m", "openai:dall-e-3", "-o", str(out), "--base-url", scripted.url)
    assert run.exit_code == 2 and "not a gpti2 page" in run.stderr
    assert scripted.seen == []


def test_a_second_run_into_the_same_folder_needs_force(cli, emulator, tmp_path) -> None:
    args = ("compare", "x", "-m", "openai:dall-e-3", "-o", str(tmp_path / "c"))
    assert cli(*args, "--base-url", emulator.url).exit_code == 0
    assert cli(*args, "--base-url", emulator.url).exit_code == 2
    assert cli(*args, "--force", "--base-url", emulator.url).exit_code == 0


def test_default_folder_is_a_new_compare_folder(cli, emulator) -> None:
    run = cli("compare", "x", "-m", "dall-e-3", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    page = Path(run.stdout.strip())
    assert re.fullmatch(r"compare-\d{8}-\d{6}(-\d+)?", page.parent.name)
    assert (page.parent / "1-openai-dall-e-3-1x1.png").is_file()  # the default provider


def test_cells_run_concurrently(cli, make_emulator, tmp_path) -> None:
    emu = make_emulator(latency=0.4)
    started = time.monotonic()
    run = cli(
        "compare", "a", "b", "-m", "openai:m1", "-m", "openai:m2", "-j", "4",
        "-o", str(tmp_path / "c"), "--base-url", emu.url,
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    assert time.monotonic() - started < 4 * 0.4  # one after the other would take 1.6 s


def test_job_route(cli, emulator, tmp_path) -> None:
    env = {"GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "0.05"}
    run = cli(
        "compare", "a fox", "-m", "gpt-image-2-t2i", "--route", "job", "-o", str(tmp_path / "c"),
        "--json", "--base-url", emulator.url, env=env,
    )  # fmt: skip
    assert run.exit_code == 0, run.stderr
    [cell] = run.json["cells"]
    assert Path(cell["path"]).name == "1-job-gpt-image-2-t2i-1x1.png"
    [row] = history.search(history.db_path(), history.Query())
    assert row["route"] == "job" and row["taskId"] and row["command"] == "compare"
    assert cli("compare", "x", "-m", "m", "--route", "later").exit_code == 2


def test_progress_bar_at_a_terminal(emulator, tmp_path) -> None:
    from gpti2.cli.common import Ui
    from gpti2.cli.compare import _display
    from gpti2.cli.context import Environment, State
    from gpti2.compare import Cell, CellResult

    err = io.StringIO()
    ui = Ui(State(env=Environment(stderr=err, stderr_isatty=True, vars={})))
    cell = Cell(1, "p", "openai", "m", "1:1")
    with _display(ui, 2) as events:
        events.begin(cell)
        events.end(CellResult(cell, error="boom", exit_code=6))
    assert "failed" in err.getvalue() and "1 openai:m 1:1: boom" in err.getvalue()


def test_open_hands_the_page_to_the_browser(emulator, tmp_path) -> None:
    browser = tmp_path / "browser.sh"
    seen = tmp_path / "seen.txt"
    browser.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    browser.chmod(0o755)
    env = {**os.environ, "BROWSER": str(browser)}
    out = tmp_path / "c"
    subprocess.run(
        [*gpti2_command(), "compare", "x", "-m", "openai:dall-e-3", "-o", str(out), "--open",
         "--base-url", emulator.url, "-q"],
        env=env, check=True, timeout=60,
    )  # fmt: skip
    for _ in range(50):
        if seen.exists():
            break
        time.sleep(0.05)
    assert seen.read_text().strip() == (out / "index.html").as_uri()


def _generate(cli, url: str, prompt: str, model: str, folder: Path) -> Path:
    provider, _, name = model.partition(":")
    run = cli("generate", prompt, "-p", provider, "-m", name, "-o", f"{folder}/", "--base-url", url)
    assert run.exit_code == 0, run.stderr
    return Path(run.stdout.strip())


def test_gallery_from_the_history(cli, emulator, tmp_path) -> None:
    for prompt in ("a red fox", "a blue hare"):
        for model in ("openai:dall-e-3", "fireworks:flux-1"):
            _generate(cli, emulator.url, prompt, model, tmp_path / "imgs")
    _generate(cli, emulator.url, "a red fox", "openai:dall-e-3", tmp_path / "again")
    run = cli("gallery", "-o", str(tmp_path / "g.html"), "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json == {"page": str(tmp_path / "g.html"), "images": 5, "rows": 2, "columns": 2}
    page = (tmp_path / "g.html").read_text()
    assert "imgs/a-red-fox-" in page and "again/a-red-fox-" in page
    fox = cli(
        "gallery", "-q", "fox", "--model", "dall-e-3", "-o", str(tmp_path / "f.html"), "--json"
    )
    assert fox.json["images"] == 2 and fox.json["columns"] == 1
    # a page gpti2 made is replaced; anything else is not, without --force
    assert cli("gallery", "-o", str(tmp_path / "g.html")).exit_code == 0
    (tmp_path / "mine.html").write_text("mine")
    assert cli("gallery", "-o", str(tmp_path / "mine.html")).exit_code == 2
    assert cli("gallery", "-o", str(tmp_path / "mine.html"), "--force").exit_code == 0


def test_gallery_of_a_folder_places_images_by_their_history(cli, emulator, tmp_path) -> None:
    folder = tmp_path / "mixed"
    path = _generate(cli, emulator.url, "a known fox", "openai:dall-e-3", folder)
    path.rename(folder / "renamed.png")
    (folder / "stranger.gif").write_bytes(b"GIF89a\x02\x00\x02\x00\x00\x00\x00;")
    (folder / "notes.txt").write_text("not an image")
    run = cli("gallery", str(folder), "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json["page"] == str(folder / "index.html") and run.json["images"] == 2
    page = (folder / "index.html").read_text()
    assert "a known fox" in page and "(not in the history)" in page
    assert 'src="renamed.png"' in page and 'src="stranger.gif"' in page
    assert cli("gallery", str(folder), "-q", "fox").exit_code == 2


def test_gallery_help_and_json_shape(cli) -> None:
    run = cli("gallery", "-o", "empty.html", "--json")
    assert run.exit_code == 0, run.stderr
    assert json.loads(run.stdout)["images"] == 0
    assert sys.executable  # the page is still written for an empty history
    assert Path("empty.html").read_text().startswith("<!doctype html>")
