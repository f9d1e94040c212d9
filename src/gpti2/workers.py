"""A pool of daemon worker threads for batch and compare.

Daemon threads, not a ThreadPoolExecutor: on Ctrl-C the command must end at once, not
after every request in flight has timed out; the caller cleans up what they left.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


def parallel(
    items: Iterable[T],
    work: Callable[[T], None],
    *,
    concurrency: int,
    stop: threading.Event,
    name: str,
    on_interrupt: Callable[[list[threading.Thread]], None],
    stopped: tuple[type[BaseException], ...] = (),
) -> None:
    """Run `work` over `items` on at most `concurrency` daemon threads, handing out no more
    work once `stop` is set. Ctrl-C calls `on_interrupt(threads)` and goes on; a worker
    ending with one of `stopped` just stops; `stop` set at the end is a KeyboardInterrupt."""
    pending: queue.SimpleQueue[T] = queue.SimpleQueue()
    count = 0
    for item in items:
        pending.put(item)
        count += 1
    if not count:
        return

    def worker() -> None:
        while not stop.is_set():
            try:
                item = pending.get_nowait()
            except queue.Empty:
                return
            try:
                work(item)
            except stopped:
                return

    threads = [
        threading.Thread(target=worker, name=f"{name}-{i}", daemon=True)
        for i in range(max(1, min(concurrency, count)))
    ]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            while thread.is_alive():
                thread.join(0.1)
    except KeyboardInterrupt:
        on_interrupt(threads)
        raise
    if stop.is_set():
        raise KeyboardInterrupt
