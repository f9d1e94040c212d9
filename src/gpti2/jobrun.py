"""A job's whole life as one core sequence: start it, wait for it, fetch its images.

Commands stay thin: they say what to do (a `Plan`) and how to show it (`JobEvents`), as
`batch.Runner` takes its `Events`, and print the `Outcome`. Nothing here prints.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from gpti2 import jobs

if TYPE_CHECKING:
    from gpti2.client import ApiClient, Progress
    from gpti2.jobs import Job, SavedFile, StartRequest

Update = Callable[["Job", float], None]
ProgressFactory = Callable[[int], "Progress | None"]


@contextlib.contextmanager
def _quietly(*args: object) -> Iterator[None]:
    yield


@contextlib.contextmanager
def _no_updates(task_id: str) -> Iterator[Update]:
    yield lambda job, elapsed: None


@contextlib.contextmanager
def _no_progress(job: Job) -> Iterator[ProgressFactory]:
    yield lambda n: None


@dataclass
class JobEvents:
    """How a display follows a job: each phase is a context manager around its work."""

    # around the start request
    starting: Callable[[], ContextManager[None]] = _quietly
    # the job exists: its id is known (say it at once, so an interrupted wait can resume)
    started: Callable[[Job], None] = lambda job: None
    # around one status query (no waiting)
    asking: Callable[[str], ContextManager[None]] = _quietly
    # around the polls; yields what to call with each answer and the time waited
    waiting: Callable[[str], ContextManager[Update]] = _no_updates
    # around the downloads; yields a progress callback factory by image number
    downloading: Callable[[Job], ContextManager[ProgressFactory]] = _no_progress


@dataclass(frozen=True)
class Plan:
    """What to do once a job exists."""

    wait: bool = False
    poll_interval: float = 2.0
    wait_timeout: float = 600.0
    folder: Path | None = None  # where to fetch the images; None: no fetch
    force: bool = False
    max_images: int = jobs.MAX_IMAGES


@dataclass
class Outcome:
    """Where a job ended up: as started (when this run started it), last seen, saved."""

    job: Job
    started: Job | None = None
    saved: list[SavedFile] = field(default_factory=list)


def start(
    client: ApiClient, request: StartRequest, plan: Plan, events: JobEvents | None = None
) -> Outcome:
    """Start a job, then (with `plan.wait`) follow it to its end and fetch its images.
    `events.started` hears of the job before any waiting, so a failure later (exit 7 or
    8) can still name it."""
    events = events or JobEvents()
    with events.starting():
        job = jobs.start(client, request)
    answered = time.monotonic()  # the job was made just before its answer came back
    events.started(job)
    if not plan.wait:
        return Outcome(job, started=job)
    outcome = follow(client, job.task_id, plan, events, started_at=answered)
    outcome.started = job
    return outcome


def follow(
    client: ApiClient,
    task_id: str,
    plan: Plan,
    events: JobEvents | None = None,
    *,
    started_at: float | None = None,
) -> Outcome:
    """The job as it is now (or, with `plan.wait`, once it has ended), and with
    `plan.folder` its images fetched there. `started_at`: when this run's start of the job
    was answered (time.monotonic), so its progress figure dates the end from the first
    answer."""
    events = events or JobEvents()
    if plan.wait:
        with events.waiting(task_id) as update:
            job = jobs.wait(
                client,
                task_id,
                interval=plan.poll_interval,
                timeout=plan.wait_timeout,
                on_update=update,
                started_ago=None if started_at is None else time.monotonic() - started_at,
            )
    else:
        with events.asking(task_id):
            job = jobs.status(client, task_id)
    if plan.folder is None:
        return Outcome(job)
    with events.downloading(job) as progress:
        saved = jobs.fetch(
            client, job, plan.folder, force=plan.force, progress=progress, limit=plan.max_images
        )
    return Outcome(job, saved=saved)
