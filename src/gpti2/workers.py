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


GRACE = 2.0  # seconds in-flight workers get to notice an interruption


def parallel(
    items: Iterable[T],
    work: Callable[[T], None],
    *,
    concurrency: int,
    stop: threading.Event,
    name: str,
    on_interrupt: Callable[[], None],
    stopped: tuple[type[BaseException], ...] = (),
) -> None:
    """Run `work` over `items` on at most `concurrency` daemon threads, handing out no more
    work once `stop` is set. Ctrl-C sets `stop`, gives the workers GRACE seconds to notice,
    calls `on_interrupt()` (to remove what they left) and goes on; a worker ending with one
    of `stopped` just stops; `stop` set at the end is a KeyboardInterrupt.

    The workers' ends are counted here rather than seen through `Thread.join`: a join that
    Ctrl-C interrupts can leave a running thread reported as finished (CPython 3.11)."""
    pending: queue.SimpleQueue[T] = queue.SimpleQueue()
    count = 0
    for item in items:
        pending.put(item)
        count += 1
    if not count:
        return
    size = max(1, min(concurrency, count))
    ended = [0]
    changed = threading.Condition()

    def worker() -> None:
        try:
            while not stop.is_set():
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    work(item)
                except stopped:
                    return
        finally:
            with changed:
                ended[0] += 1
                changed.notify_all()

    launched = 0  # threads asked to start (Ctrl-C may come while one starts)
    try:
        for i in range(size):
            launched += 1
            threading.Thread(target=worker, name=f"{name}-{i}", daemon=True).start()
        with changed:
            while ended[0] < size:
                changed.wait(0.1)
    except KeyboardInterrupt:
        stop.set()
        with changed:
            changed.wait_for(lambda: ended[0] >= launched, timeout=GRACE)
        on_interrupt()
        raise
    if stop.is_set():
        raise KeyboardInterrupt
