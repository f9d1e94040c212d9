"""`compare`: every prompt with every model (and ratio), run concurrently into one folder.

The plan is a list of cells in grid order (prompt, then ratio, then model); the runner
generates them on a pool of worker threads sharing one client, reports each through
`Events`, and records each in the history. The page is made by `gallery`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpti2 import files, images, jobs, quick
from gpti2.errors import UsageError

if TYPE_CHECKING:
    from gpti2.client import ApiClient
    from gpti2.history import Attempt


@dataclass(frozen=True)
class Cell:
    """One image of the grid."""

    prompt_index: int  # from 1, as in the file name
    prompt: str
    provider: str | None  # None on the job route
    model: str
    aspect_ratio: str

    @property
    def model_label(self) -> str:
        return f"{self.provider}:{self.model}" if self.provider else self.model

    @property
    def stem(self) -> str:
        """`<prompt index>-<provider>-<model slug>-<ratio>`, the file name without extension."""
        provider = images.slugify(self.provider) if self.provider else "job"
        ratio = self.aspect_ratio.replace(":", "x")
        return f"{self.prompt_index}-{provider}-{images.slugify(self.model)}-{ratio}"

    @property
    def label(self) -> str:
        return f"{self.prompt_index} {self.model_label} {self.aspect_ratio}"


@dataclass
class CellResult:
    """How one cell ended: an image on disk, or an error."""

    cell: Cell
    path: Path | None = None
    info: images.ImageInfo | None = None
    error: str | None = None
    exit_code: int = 0
    elapsed_ms: int = 0
    task_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "prompt": self.cell.prompt,
            "provider": self.cell.provider,
            "model": self.cell.model,
            "aspectRatio": self.cell.aspect_ratio,
            "path": str(self.path) if self.path else None,
            "error": self.error,
            "elapsedMs": self.elapsed_ms,
        }


def parse_model(text: str, default_provider: str, route: str) -> tuple[str | None, str]:
    """(provider, model) of a `-m` value: `PROVIDER:MODEL` or `MODEL` on the quick route
    (the default provider), the job model id on the job route."""
    text = text.strip()
    if route == "job":
        if not text:
            raise UsageError("-m: empty model id")
        return None, text
    provider, sep, model = text.partition(":")
    if not sep:
        provider, model = default_provider, text
    if not provider.strip() or not model.strip():
        raise UsageError(f"-m {text!r}: expected PROVIDER:MODEL, for example openai:dall-e-3")
    return provider.strip(), model.strip()


def plan(prompts: list[str], models: list[tuple[str | None, str]], ratios: list[str]) -> list[Cell]:
    """The cross product in grid order: rows are (prompt, ratio), columns models."""
    unique_models = list(dict.fromkeys(models))
    unique_ratios = list(dict.fromkeys(ratios))
    return [
        Cell(n, prompt, provider, model, ratio)
        for n, prompt in enumerate(prompts, start=1)
        for ratio in unique_ratios
        for provider, model in unique_models
    ]


def check_output(folder: Path, cells: list[Cell], page: Path, force: bool) -> None:
    """Refuse, before any request, a folder we cannot write or files already in the way."""
    from gpti2 import gallery

    files.check_folder(folder)
    if not force:
        for cell in cells:
            existing = jobs.existing_result(folder, cell.stem)
            if existing is not None:
                raise UsageError(
                    f"{existing} already exists", hint="choose another -o, or pass --force"
                )
    gallery.check_page(page, force)


@dataclass
class Events:
    """Callbacks for a progress display (called from worker threads)."""

    begin: Callable[[Cell], None] = lambda cell: None
    end: Callable[[CellResult], None] = lambda result: None


@dataclass
class Runner:
    """Generates the cells with one shared client and `concurrency` worker threads."""

    client: ApiClient
    folder: Path
    route: str = "quick"
    concurrency: int = 4
    force: bool = False
    feature_id: str = ""
    mode: str = "text_to_image"
    poll_interval: float = 2.0
    wait_timeout: float = 600.0
    events: Events = field(default_factory=Events)
    history: Callable[[str, Any], Attempt] | None = None  # (command, request) -> Attempt
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, cells: list[Cell]) -> list[CellResult]:
        """Every cell's result, in grid order; Ctrl-C stops handing out cells."""
        from gpti2 import workers

        files.make_folder(self.folder)
        results: dict[int, CellResult] = {}

        def interrupt() -> None:
            files.remove_live_temps()  # what a worker still writing left behind

        workers.parallel(
            list(enumerate(cells)),
            lambda item: results.__setitem__(item[0], self._one(item[1])),
            concurrency=self.concurrency,
            stop=self.stop,
            name="gpti2-compare",
            on_interrupt=interrupt,
        )
        return [results[n] for n in range(len(cells)) if n in results]

    def _request(self, cell: Cell) -> Any:
        if self.route == "job":
            return jobs.StartRequest(
                cell.prompt, self.feature_id, self.mode, cell.model, cell.aspect_ratio
            )
        return quick.QuickRequest(cell.prompt, cell.provider or "", cell.model, cell.aspect_ratio)

    def _one(self, cell: Cell) -> CellResult:
        from gpti2.history import failure_of

        began = time.monotonic()
        self.events.begin(cell)
        request = self._request(cell)
        attempt = self.history("compare", request) if self.history else None
        result = CellResult(cell)
        try:
            if self.route == "job":
                result.path, result.info = self._job(request, cell, result)
            else:
                image = quick.generate(self.client, request)
                path = self.folder / f"{cell.stem}.{image.info.extension}"
                files.write_atomic(path, image.data, self.force)
                result.path, result.info = path, image.info
            if attempt is not None:
                attempt.wrote(result.path, result.info, task_id=result.task_id)
        except Exception as exc:
            result.exit_code, result.error = failure_of(exc)
            if attempt is not None:
                attempt.failed(exc, task_id=result.task_id)
        result.elapsed_ms = round((time.monotonic() - began) * 1000)
        self.events.end(result)
        return result

    def _job(self, request: Any, cell: Cell, result: CellResult) -> tuple[Path, images.ImageInfo]:
        from gpti2.errors import ServerError

        result.task_id = jobs.start(self.client, request).task_id
        job = jobs.wait(
            self.client,
            result.task_id,
            interval=self.poll_interval,
            timeout=self.wait_timeout,
            sleep=self._sleep,
        )
        jobs.check_finished(job)
        if not job.images:
            raise ServerError(f"job {result.task_id} succeeded but lists no images")
        saved = jobs.save_image(self.client, job.images[0], self.folder, cell.stem, True, None)
        return saved.path, saved.info

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise KeyboardInterrupt
