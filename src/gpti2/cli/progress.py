"""What a person at a terminal sees while waiting: a clock that ticks on its own (also while
a request is in flight), download bars with size and speed, and nothing left behind when
the wait ends badly. Imported only when progress is shown (it imports rich).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.filesize import decimal, pick_unit_and_suffix
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text


def elapsed_text(seconds: float) -> str:
    """`7 s`, `1 min 05 s`: how long a person has been waiting."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


class Clock:
    """A status text followed by the time since the wait began, read at every refresh, so
    the clock moves even while the code is blocked in a request."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        return Text(f"{self.text} ({elapsed_text(time.monotonic() - self.started)})")


@contextlib.contextmanager
def status(console: Console, text: str) -> Iterator[Callable[[str], None]]:
    """A spinner with a ticking clock; yields a function that changes its text."""
    from gpti2.display import shown  # may hold server text: made safe before it is drawn

    clock = Clock(shown(text, None))

    def update(message: str) -> None:
        clock.text = shown(message, None)

    with console.status(clock, spinner="dots"):
        yield update


class SizeColumn(ProgressColumn):
    """`1.2/3.4 MB` once the size is known, `1.2 MB` before; never `?`."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text(decimal(int(task.completed)), style="progress.download")
        unit, suffix = pick_unit_and_suffix(
            int(task.total), ["bytes", "kB", "MB", "GB", "TB"], 1000
        )
        places = 0 if unit == 1 else 1
        done, total = task.completed / unit, task.total / unit
        return Text(f"{done:,.{places}f}/{total:,.{places}f} {suffix}", style="progress.download")


class SpeedColumn(ProgressColumn):
    """Transfer speed: the running estimate, or the average once done; blank before."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.completed and task.elapsed:
            speed = task.completed / task.elapsed
        return Text(f"{decimal(int(speed))}/s" if speed else "", style="progress.data.speed")


@contextlib.contextmanager
def download_bars(console: Console) -> Iterator[Callable[[int], Callable[[int, int | None], None]]]:
    """One bar per download; they stay after success and are removed on any failure,
    Ctrl-C or SIGTERM (nothing half-drawn is left on the screen)."""
    columns = (TextColumn("{task.description}"), BarColumn(), SizeColumn(), SpeedColumn())
    bars = Progress(*columns, console=console, transient=False)

    def factory(n: int) -> Callable[[int, int | None], None]:
        task = bars.add_task(f"image {n}", total=None)

        def report(done: int, total: int | None) -> None:
            bars.update(task, completed=done, total=total)
            if total is not None and done >= total:
                bars.stop_task(task)  # the clock stops: the average speed stays right

        return report

    with bars:
        try:
            yield factory
        except BaseException:
            bars.live.transient = True  # erase the bars on the way out
            raise


def stable_column(width: int) -> Any:
    """A table column of a fixed width, so rows that come and go do not move the others."""
    from rich.table import Column

    return Column(width=width, no_wrap=True, overflow="ellipsis")
