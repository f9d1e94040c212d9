"""The worker pool of batch and compare (gpti2/workers.py): Ctrl-C gives in-flight work
its grace before the clean-up runs."""

from __future__ import annotations

import _thread
import threading
import time

import pytest

from gpti2 import workers


def test_ctrl_c_waits_for_work_in_flight_before_the_clean_up() -> None:
    stop = threading.Event()
    finished: list[int] = []
    seen_at_clean_up: list[list[int]] = []

    busy = threading.Barrier(3)

    def work(n: int) -> None:
        if n < 3:
            busy.wait(5)
        if n == 0:
            _thread.interrupt_main()  # Ctrl-C while every worker is busy
        time.sleep(0.3)
        finished.append(n)

    with pytest.raises(KeyboardInterrupt):
        workers.parallel(
            range(10),
            work,
            concurrency=3,
            stop=stop,
            name="test",
            on_interrupt=lambda: seen_at_clean_up.append(sorted(finished)),
        )
    assert stop.is_set()
    assert seen_at_clean_up == [[0, 1, 2]]  # the three in flight ended first; no more began
    time.sleep(0.4)
    assert sorted(finished) == [0, 1, 2]


def test_a_worker_that_outlives_the_grace_does_not_hold_up_the_clean_up(monkeypatch) -> None:
    monkeypatch.setattr(workers, "GRACE", 0.2)
    release = threading.Event()
    began = time.monotonic()
    cleaned: list[float] = []

    def work(n: int) -> None:
        _thread.interrupt_main()
        release.wait(5)

    with pytest.raises(KeyboardInterrupt):
        workers.parallel(
            [1],
            work,
            concurrency=1,
            stop=threading.Event(),
            name="test",
            on_interrupt=lambda: cleaned.append(time.monotonic() - began),
        )
    release.set()
    assert len(cleaned) == 1 and 0.2 <= cleaned[0] < 2
