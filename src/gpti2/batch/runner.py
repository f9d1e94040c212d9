"""Planning (what must be generated, and why) and running a batch concurrently."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpti2.batch.lock import RUNNING, Lock, StatCache, may_serve_placeholders, now, origin_label
from gpti2.batch.manifest import SHAPE_WORDS, Entry, Manifest
from gpti2.errors import ExitCode, Gpti2Error, JobFailedError, RejectedError, UsageError

if TYPE_CHECKING:
    from gpti2 import images
    from gpti2.batch.shard import Shard
    from gpti2.client import ApiClient


# -- planning -------------------------------------------------------------------------


@dataclass
class Item:
    """An entry and why it must be generated (None: up to date); `task_id` is a job of a
    run before to resume."""

    entry: Entry
    reason: str | None
    task_id: str | None = None


def changed_fields(entry: Entry, record: dict[str, Any]) -> str:
    """`prompt changed`, `model, aspect ratio changed`: what differs from the lock."""
    before = record.get("inputs")
    if not isinstance(before, dict):
        return "settings changed"
    shape = entry.shape()
    changed = [word for key, word in SHAPE_WORDS.items() if before.get(key) != shape[key]]
    return f"{', '.join(changed) or 'settings'} changed"


def why(
    manifest: Manifest, entry: Entry, record: dict[str, Any] | None, origin: str, files: StatCache
) -> tuple[str | None, str | None]:
    """(why `entry` must be generated or None, the job id to resume or None)."""
    if record is None:
        return "new", None
    if record.get("fingerprint") != entry.fingerprint():
        return changed_fields(entry, record), None
    made_by = record.get("origin")
    if made_by != origin:
        return f"made by {origin_label(str(made_by))}", None
    if record.get("state") == RUNNING:
        task_id = record.get("taskId")
        if entry.route == "job" and isinstance(task_id, str) and task_id:
            return f"job {task_id} still running", task_id
        return "unfinished", None
    relative = str(record.get("path", ""))
    if not manifest.is_home(entry, relative):
        return "output_dir changed", None
    digest, emulator = files.look(manifest.root / relative, relative)
    if digest is None:
        return "missing", None
    if digest != record.get("sha256"):
        return "file changed", None
    if emulator and not may_serve_placeholders(origin):
        return "made by the local emulator", None  # whatever the lock says
    return None, None


def plan(
    manifest: Manifest,
    lock: Lock,
    *,
    origin: str,
    force: bool,
    only: list[str],
    files: StatCache,
    shard: Shard | None = None,
) -> list[Item]:
    """Decide, without any request, which entries need generating."""
    unknown = [name for name in only if name not in manifest.names()]
    if unknown:
        raise UsageError(f"--only {unknown[0]!r}: no such image in {manifest.path}")
    items = []
    for entry in manifest.entries:
        if (only and entry.name not in only) or (shard and not shard.holds(entry.name)):
            continue
        record = lock.records.get(entry.name)
        reason, task_id = why(manifest, entry, record, origin, files)
        if force and task_id is None:
            reason = "forced"
        items.append(Item(entry, reason, task_id))
    return items


def conflicts(manifest: Manifest, lock: Lock, items: list[Item]) -> list[Path]:
    """Files in the way of an image to generate that the lock does not know as ours."""
    from gpti2 import jobs

    found = []
    for item in items:
        if item.reason is None or item.reason == "forced":
            continue
        record = lock.records.get(item.entry.name) or {}
        existing = jobs.existing_result(item.entry.folder, item.entry.name)
        if existing is not None and manifest.relative(existing) != record.get("path"):
            found.append(existing)
    return found


# -- running --------------------------------------------------------------------------

GENERATED, UP_TO_DATE, FAILED = "generated", "up to date", "failed"
RUNNING_JOB, NOT_DONE = "running", "not done"


@dataclass
class Result:
    """How one image of the batch ended (`running`: a job left running by an interruption,
    `not done`: interrupted before it finished)."""

    name: str
    status: str
    path: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    error: str | None = None
    exit_code: int = 0
    seconds: float = 0.0
    task_id: str | None = None
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "taskId": self.task_id,
            "error": self.error,
        }


def up_to_date(item: Item, lock: Lock) -> Result:
    """The result of an image that needed nothing."""
    record = lock.records[item.entry.name]
    return Result(
        item.entry.name,
        UP_TO_DATE,
        record.get("path"),
        record.get("sha256"),
        record.get("bytes"),
        task_id=record.get("taskId"),
    )


class BatchFailed(Gpti2Error):
    """Some images failed: the exit code is that of the first failure in manifest order."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code  # type: ignore[assignment]


class Interrupted(Exception):
    """The batch was asked to stop."""


@dataclass
class Events:
    """Callbacks for a progress display (called from worker threads). `end` sees every
    result as it happens: the place for anything that records outcomes."""

    begin: Callable[[Entry, str], None] = lambda entry, stage: None
    end: Callable[[Result], None] = lambda result: None


@dataclass
class Runner:
    """Generates the planned images with one shared client and `concurrency` workers.

    Every finished image and every started job is in the lock's journal before the next
    step, so an interrupted run keeps its images and a later run resumes its jobs.
    """

    manifest: Manifest
    lock: Lock
    client: ApiClient
    status_route: str
    origin: str
    concurrency: int = 4
    poll_interval: float = 2.0
    wait_timeout: float = 600.0
    events: Events = field(default_factory=Events)
    stop: threading.Event = field(default_factory=threading.Event)
    cache: StatCache | None = None  # told of every file written, so reruns need not hash it
    results: dict[str, Result] = field(default_factory=dict)
    started: dict[str, str] = field(default_factory=dict)  # name: task id, unfinished
    # A job's journal line and its place in `started` change together: an interruption
    # (read by the main thread in `outcome`) sees both or neither.
    _journal_mutex: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(self, items: list[Item]) -> list[Result]:
        """Every item's result, in manifest order (KeyboardInterrupt when stopped; then
        `outcome(items)` says where each stands)."""
        for item in items:
            if item.reason is None:
                self.results[item.entry.name] = up_to_date(item, self.lock)
        todo = [item for item in items if item.reason is not None]
        quick_items = [i for i in todo if i.entry.route == "quick"]
        job_items = [i for i in todo if i.entry.route == "job"]
        began = {i.entry.name: time.monotonic() for i in todo}
        for item in job_items:
            if item.task_id:
                self.started[item.entry.name] = item.task_id

        def start_job(item: Item) -> None:
            if item.task_id:
                return  # resumed: its job runs already
            try:
                self._start(item.entry)
            except Exception as exc:
                self._failed(item, exc, began[item.entry.name])

        def finish_job(item: Item) -> None:
            self._finish_job(item, began[item.entry.name])

        def quick_image(item: Item) -> None:
            self._quick(item, began[item.entry.name])

        # Jobs first, so they run on the server while the quick images are made.
        self._parallel([i for i in job_items if not i.task_id], start_job)
        self._parallel(quick_items, quick_image)
        self._parallel([i for i in job_items if i.entry.name in self.started], finish_job)
        return self.outcome(items)

    def outcome(self, items: list[Item]) -> list[Result]:
        """Where every item stands now, in manifest order."""
        out = []
        with self._journal_mutex:
            started = dict(self.started)
        for item in items:
            name = item.entry.name
            result = self.results.get(name)
            if result is None:
                task_id = started.get(name)
                status = RUNNING_JOB if task_id else NOT_DONE
                result = Result(name, status, task_id=task_id)
            result.reason = item.reason
            out.append(result)
        return out

    # -- workers ----------------------------------------------------------------------

    def _start(self, entry: Entry) -> str:
        """Start the entry's job (the jobs core's start); its id is in the journal, with
        `state: running`, before anything waits on it."""
        from gpti2 import jobrun, jobs

        def started(job: jobs.Job) -> None:
            record = {
                "fingerprint": entry.fingerprint(),
                "inputs": entry.shape(),
                "origin": self.origin,
                "taskId": job.task_id,
                "state": RUNNING,
                "startedAt": now(),
            }
            # The file an earlier run made stays the lock's own until the new one replaces
            # it, so a rerun resumes the job rather than taking that file for a stranger's.
            earlier = (self.lock.records.get(entry.name) or {}).get("path")
            if isinstance(earlier, str):
                record["path"] = earlier
            with self._journal_mutex:
                self.lock.record(entry.name, record)
                self.started[entry.name] = job.task_id
            self.events.begin(entry, f"started job {job.task_id}")

        self.events.begin(entry, "starting")
        request = jobs.StartRequest(
            entry.prompt,
            entry.feature_id or "",
            entry.mode or "text_to_image",
            entry.model,
            entry.aspect_ratio,
        )
        outcome = jobrun.start(
            self.client, request, jobrun.Plan(), jobrun.JobEvents(started=started)
        )
        return outcome.job.task_id

    def _finish_job(self, item: Item, began: float) -> None:
        from gpti2 import files, jobs
        from gpti2.errors import ServerError

        entry = item.entry
        task_id = self.started[entry.name]
        resumed = item.task_id == task_id
        try:
            try:
                job = self._wait(entry, task_id)
                jobs.check_finished(job)
            except (JobFailedError, RejectedError):
                if not resumed:
                    raise
                # The job of an earlier run failed or is unknown here: start a new one.
                task_id = self._start(entry)
                job = self._wait(entry, task_id)
                jobs.check_finished(job)
            if not job.images:
                raise ServerError(f"job {task_id} succeeded but lists no images")
            self._check_stop()
            self.events.begin(entry, f"fetching {task_id}")
            files.make_folder(entry.folder)
            saved = jobs.save_image(
                self.client, job.images[0], entry.folder, entry.name, True, self._progress
            )
            self.started.pop(entry.name, None)
            self._done(item, saved.path, saved.info, began, task_id)
        except Exception as exc:
            self._failed(item, exc, began)

    def _wait(self, entry: Entry, task_id: str) -> Any:
        from gpti2 import jobs

        self.events.begin(entry, f"waiting for {task_id}")
        return jobs.wait(
            self.client,
            task_id,
            self.status_route,
            interval=self.poll_interval,
            timeout=self.wait_timeout,
            sleep=self._sleep,
        )

    def _quick(self, item: Item, began: float) -> None:
        from gpti2 import files, quick

        entry = item.entry
        self.events.begin(entry, "generating")
        try:
            request = quick.QuickRequest(
                entry.prompt, entry.provider or "", entry.model, entry.aspect_ratio
            )
            image = quick.generate(self.client, request)
            self._check_stop()
            target = entry.folder / f"{entry.name}.{image.info.extension}"
            files.write_atomic(target, image.data, force=True)
            self._done(item, target, image.info, began)
        except Exception as exc:
            self._failed(item, exc, began)

    def _done(
        self,
        item: Item,
        path: Path,
        info: images.ImageInfo,
        began: float,
        task_id: str | None = None,
    ) -> None:
        entry = item.entry
        relative = self.manifest.relative(path)
        record = {
            "fingerprint": entry.fingerprint(),
            "inputs": entry.shape(),
            "origin": self.origin,
            "path": relative,
            "sha256": info.sha256,
            "bytes": info.bytes,
            "generatedAt": now(),
        }
        if task_id:
            record["taskId"] = task_id
        self.lock.record(entry.name, record)
        if self.cache is not None:
            from gpti2 import images

            with contextlib.suppress(OSError):
                emulator = images.is_emulator_file(path)
                self.cache.remember(relative, os.stat(path), info.sha256, emulator)
        result = Result(
            entry.name,
            GENERATED,
            relative,
            info.sha256,
            info.bytes,
            seconds=time.monotonic() - began,
            task_id=task_id,
        )
        self.results[entry.name] = result
        self.events.end(result)

    def _failed(self, item: Item, exc: Exception, began: float) -> None:
        if isinstance(exc, Interrupted):
            raise exc
        code = int(exc.exit_code) if isinstance(exc, Gpti2Error) else int(ExitCode.INTERNAL)
        message = exc.message if isinstance(exc, Gpti2Error) else f"{type(exc).__name__}: {exc}"
        name = item.entry.name
        result = Result(
            name,
            FAILED,
            error=message,
            exit_code=code,
            seconds=time.monotonic() - began,
            task_id=self.started.pop(name, None),
        )
        self.results[name] = result
        self.events.end(result)

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted

    def _progress(self, done: int, total: int | None) -> None:
        self._check_stop()

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Interrupted

    def _parallel(self, items: list[Item], work: Callable[[Item], None]) -> None:
        """Run `work` over `items` on daemon threads; Ctrl-C stops handing out work."""
        from gpti2 import workers

        workers.parallel(
            items,
            work,
            concurrency=self.concurrency,
            stop=self.stop,
            name="gpti2-batch",
            on_interrupt=self.interrupt,
            stopped=(Interrupted,),
        )

    def interrupt(self) -> None:
        """After Ctrl-C (the workers stopped or given up on): remove temporary files left."""
        from gpti2 import files

        files.remove_live_temps()  # this run's own: never another shard's
