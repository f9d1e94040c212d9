"""The compare page in a real browser: Debian's Chromium, headless, loads index.html from
disk. The page's own script marks every image with its decoded size once loaded; the DOM
dumped after load shows every cell, every image decoded at its natural size, the error
cell, and that no prompt ran as script. A screenshot is taken too.

Skipped when Chromium is not installed, except where GPTI2_REQUIRE_CHROMIUM is set (CI:
.ci/run installs it and sets the variable), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gpti2 import images

# Read at import: the autouse fixture clears GPTI2_* variables before each test runs.
REQUIRED = bool(os.environ.get("GPTI2_REQUIRE_CHROMIUM"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HOSTILE = (
    '<script>document.body.dataset.pwned = "yes"</script>'
    '<img src=x onerror="document.body.dataset.pwned=1">'
)


@pytest.fixture
def chromium(tmp_path):
    """Run headless Chromium with its own throwaway profile, no network services."""
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("GPTI2_REQUIRE_CHROMIUM is set but chromium is not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    profile = tmp_path / "chromium-profile"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",
            *args,
        ]
        # No session bus: Chromium would start an accessibility bus on it (CI has one).
        env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)

    return run


class Dom(HTMLParser):
    """The parts of the dumped DOM the tests look at."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.body: dict[str, str] = {}
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "figure":
            self.figures.append(found)
        elif tag == "img":
            self.images.append({**found, "cell": self.figures[-1].get("data-cell", "")})
        elif tag == "body":
            self.body = found

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _dom(chromium, page: Path) -> Dom:
    done = chromium("--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = Dom()
    dom.feed(done.stdout)
    assert dom.body.get("data-ready") == "yes", "the page's script did not run"
    return dom


def test_the_compare_page_renders_every_cell_and_image(cli, emulator, chromium, tmp_path):
    out = tmp_path / "cmp"
    run = cli(
        "compare", "a red fox in snow", HOSTILE,
        "-m", "openai:dall-e-3", "-m", "bogus:model", "-m", "fireworks:flux-1",
        "-a", "1:1", "-a", "16:9",
        "-o", str(out), "--base-url", emulator.url, "--retries", "0",
    )  # fmt: skip
    assert run.exit_code == 5, run.stderr
    page = out / "index.html"
    dom = _dom(chromium, page)

    # every cell: 2 prompts x 2 ratios = 4 rows, 3 models
    cells = {f["data-cell"] for f in dom.figures}
    assert cells == {f"r{r}c{c}" for r in range(1, 5) for c in range(1, 4)}
    ok = [f for f in dom.figures if "ok" in f["class"].split()]
    errors = [f for f in dom.figures if "error" in f["class"].split()]
    assert len(ok) == 8 and len(errors) == 4
    assert {f["data-cell"][-2:] for f in errors} == {"c2"}  # the bogus model's column
    assert all(f["data-exit-code"] == "5" for f in errors)
    assert "failed (exit 5)" in "".join(dom.text)

    # every image decoded, at the natural size of the file it shows
    assert len(dom.images) == 8
    for img in dom.images:
        assert img["data-loaded"] == "yes", img
        info = images.describe((out / img["src"]).read_bytes())
        assert (int(img["data-natural-width"]), int(img["data-natural-height"])) == (
            info.width,
            info.height,
        )
    assert {img["data-natural-height"] for img in dom.images} == {"512", "288"}

    # the hostile prompt is text on the page, never markup or script
    assert "pwned" not in dom.body
    assert HOSTILE in "".join(dom.text)

    shot = tmp_path / "page.png"
    done = chromium("--window-size=1400,1000", f"--screenshot={shot}", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    info = images.describe(shot.read_bytes())
    assert (info.format, info.width, info.height) == ("png", 1400, 1000)


def test_a_gallery_image_whose_file_is_gone_is_marked(cli, emulator, chromium, tmp_path):
    kept = cli("generate", "kept", "-o", f"{tmp_path}/", "--base-url", emulator.url)
    gone = cli("generate", "gone", "-o", f"{tmp_path}/", "--base-url", emulator.url)
    Path(gone.stdout.strip()).unlink()
    page = tmp_path / "gallery.html"
    assert cli("gallery", "-o", str(page)).exit_code == 0
    dom = _dom(chromium, page)
    loaded = {Path(i["src"]).name: i["data-loaded"] for i in dom.images}
    assert loaded == {Path(kept.stdout.strip()).name: "yes", Path(gone.stdout.strip()).name: "no"}
    broken = [f for f in dom.figures if "broken" in f["class"].split()]
    assert len(broken) == 1
