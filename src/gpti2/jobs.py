"""The job route: start, status (with lenient reading), waiting, and fetching results."""

from __future__ import annotations

import base64
import contextlib
import math
import mimetypes
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from gpti2 import dialects, files, images
from gpti2.client import ApiClient, Progress, RetryPolicy, loads
from gpti2.dialects import Dialect, status_request
from gpti2.display import has_controls, shown
from gpti2.errors import (
    JobFailedError,
    JobNotFinishedError,
    MayHaveRunError,
    ServerError,
    UsageError,
)
from gpti2.retry import parse_retry_after

MAX_POLL_INTERVAL = 10.0
POLL_GROWTH = 1.25
MAX_HINTED_INTERVAL = 30.0  # the longest Retry-After a wait follows without asking sooner
NEAR_END_INTERVAL = 0.25  # polls once the job should have ended
POLL_MARGIN = 0.05  # asked this long after the expected end
WAIT_PATIENCE = 30.0  # seconds of failing status answers a wait rides out
SECOND_SAMPLE = 0.4  # the second look at a progress figure, for its pace
FIRST_LOOK = 0.4  # the first poll of a job begun just now
LATE_GIVE_UP = 5.0  # an estimate this many seconds past is wrong: back to the plain schedule
DOWNLOADS = 8  # result images downloaded at once, by any command (fetch, start, batch)
DOWNLOAD_SLOTS = threading.BoundedSemaphore(DOWNLOADS)
MAX_IMAGES = 100  # images taken from one job (the `max_images` setting)


class JobStatus(StrEnum):
    """A job's status, normalised from whatever the server calls it."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    UNKNOWN = "unknown"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


_STATUS_WORDS = {
    JobStatus.PENDING: ("pending", "queued", "waiting", "submitted", "created"),
    JobStatus.RUNNING: ("processing", "running", "generating", "in_progress", "started"),
    JobStatus.SUCCEEDED: ("success", "succeeded", "completed", "complete", "done", "finished"),
    JobStatus.FAILED: ("failed", "failure", "error"),
    JobStatus.CANCELED: ("canceled", "cancelled"),
}
_STATUS = {word: status for status, words in _STATUS_WORDS.items() for word in words}


def normalize_status(raw: Any) -> JobStatus:
    """Map a raw status (any case) to a JobStatus; UNKNOWN for anything else."""
    return _STATUS.get(str(raw or "").strip().lower(), JobStatus.UNKNOWN)


@dataclass
class Job:
    """What we know of one job."""

    task_id: str
    status: JobStatus
    raw_status: str | None = None
    progress: float | None = None
    images: list[str] = field(default_factory=list)
    error: str | None = None
    credits_remaining: int | None = None
    # The provider's own id, when the server keeps one apart from its own (ShipAny's
    # `taskId`): shown, never polled with or used in a file name.
    provider_task_id: str | None = None
    retry_after: float | None = None  # when the status answer said to ask again, s

    def ids(self) -> dict[str, str]:
        """`taskId` (the id to use), and `providerTaskId` when the server gave two."""
        ids = {"taskId": self.task_id}
        if self.provider_task_id and self.provider_task_id != self.task_id:
            ids["providerTaskId"] = self.provider_task_id
        return ids

    def as_json(self) -> dict[str, Any]:
        return {
            **self.ids(),
            "status": self.status.value,
            "rawStatus": self.raw_status,
            "progress": self.progress,
            "images": self.images,
            "error": self.error,
        }


def _first(data: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        value = data.get(key)
        if value not in (None, ""):
            return value
    return None


def image_refs(items: Any) -> list[str]:
    """Image references from a list of strings or objects (imageUrl, url, uri, image, src)."""
    if isinstance(items, str):
        items = [items]
    refs = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            item = _first(item, "imageUrl", "url", "uri", "image", "src")
        if isinstance(item, str) and item.strip():
            refs.append(item.strip())
    return refs


def parse_job(payload: Any, task_id: str | None = None, dialect: Dialect | None = None) -> Job:
    """Read a job object leniently (API.md §2.2), envelope already unwrapped; the
    dialect says which field is the job's own id."""
    dialect = dialect or dialects.get(dialects.DEFAULT)
    if not isinstance(payload, dict):
        raise ServerError("malformed response: expected a job object")
    data = dict(payload)
    info = data.get("taskInfo")
    if isinstance(info, str) and info.strip():
        with contextlib.suppress(ValueError):
            info = loads(info)
    if isinstance(info, dict):
        for key, value in info.items():
            data.setdefault(key, value)
    # The id the user typed, when there is one, is the job's name here (and on disk).
    found_id = task_id or _first(data, *dialect.id_keys)
    if not found_id:
        raise ServerError("malformed response: the job has no id")
    if task_id is None:
        found_id = checked_id(str(found_id), from_server=True)
    raw = _first(data, "status", "state")
    progress = data.get("progress")
    credits = _first(data, "creditsRemaining", "credits", "remainingCredits")
    error = _first(data, "error", "errorMessage", "failReason", "message")
    if isinstance(error, dict):
        error = error.get("message")
    status = normalize_status(raw)
    return Job(
        task_id=str(found_id),
        status=status,
        raw_status=None if raw is None else str(raw),
        progress=_finite(progress),
        images=image_refs(data.get("images")),
        error=str(error) if error and status in (JobStatus.FAILED, JobStatus.CANCELED) else None,
        credits_remaining=None if (c := _finite(credits)) is None else int(c),
        provider_task_id=_provider_id(data, dialect),
    )


def _provider_id(data: dict[str, Any], dialect: Dialect) -> str | None:
    key = dialect.provider_id_key
    value = data.get(key) if key else None
    return shown(value, MAX_ID) if isinstance(value, str | int) and str(value) else None


def _finite(value: Any) -> float | None:
    """A number a server sent, or None for anything else (NaN and Infinity included)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and abs(value) < 1e15 else None


MAX_ID = 128


def id_problem(task_id: str) -> str | None:
    """Why `task_id` cannot name files (`<id>-<n>.png`) or be shown as one line, or None."""
    if not task_id:
        return "is empty"
    if len(task_id) > MAX_ID:
        return f"is {len(task_id)} characters long (at most {MAX_ID})"
    if has_controls(task_id) or task_id != task_id.strip():
        return "holds control characters or white space at its ends"
    if "/" in task_id or "\\" in task_id:
        return "holds a path separator"
    if ".." in task_id:
        return "holds '..'"
    return None


def checked_id(task_id: str, *, from_server: bool) -> str:
    """`task_id` when it is safe to use; exit 6 for a server's id, 2 for the user's."""
    problem = id_problem(task_id)
    if problem is None:
        return task_id
    if from_server:
        raise ServerError(f"malformed response: the server's job id {problem}")
    raise UsageError(f"bad job id: it {problem}", hint="give the id `gpti2 job start` printed")


# -- starting -------------------------------------------------------------------------


@dataclass(frozen=True)
class StartRequest:
    """One job start, whatever the dialect (which shapes the body: dialects.py)."""

    prompt: str
    feature_id: str
    mode: str
    model_id: str | None  # None: the dialect's default for the mode
    aspect_ratio: str
    image_urls: tuple[str, ...] = ()


def reference_image(value: str) -> str:
    """An --image value as sent: a URL as is, a local file as a data: URL."""
    if re.match(r"^(https?|data):", value, re.IGNORECASE):
        return value
    path = Path(value).expanduser()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(
            f"cannot read --image {value}: {exc.strerror or exc}",
            hint="give a readable image file, or an https:// URL",
        ) from None
    fmt = images.sniff_format(data)
    mime = f"image/{fmt}" if fmt else (mimetypes.guess_type(path.name)[0] or "")
    if not mime.startswith("image/"):
        raise UsageError(f"--image {value} is not a PNG, JPEG, WebP or GIF image")
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def start(client: ApiClient, request: StartRequest) -> Job:
    """Create the job (route and body in the server's dialect). A paid POST: sent again
    only where the job cannot exist yet, with the same Idempotency-Key."""
    method, path, body = client.api.start(request)
    try:
        payload = client.call(
            method,
            path,
            policy=RetryPolicy.PAID_POST,
            json_body=body,
            headers={"Idempotency-Key": str(uuid.uuid4())},
            auth=True,
        )
    except MayHaveRunError as exc:
        exc.hint = (
            "the job may exist (and be charged) though no id came back;"
            " check the site before starting it again"
        )
        raise
    return parse_job(payload, dialect=client.api.dialect)


# -- polling --------------------------------------------------------------------------


def status(client: ApiClient, task_id: str, route: str | None = None) -> Job:
    """The job as the server sees it now (`route`: the profile's status route unless
    given)."""
    checked_id(task_id, from_server=False)
    if route is None:
        method, path, body = client.api.status(task_id)
    else:
        method, path, body = status_request(route, task_id)
    payload, reply = client.exchange(
        method, path, policy=RetryPolicy.IDEMPOTENT, json_body=body, auth=True
    )
    job = parse_job(payload, task_id, client.api.dialect)
    job.retry_after = parse_retry_after(reply.headers.get("retry-after"))
    return job


@dataclass
class PollSchedule:
    """When to ask about a job again: today's interval, growing 1.25x to 10 s, unless the
    server says more. A `Retry-After` on the status answer is when it says to come back;
    a progress figure that moves gives the expected end, polled right then (and every
    0.25 s just after it), so a wait ends within a fraction of a second of the job."""

    interval: float
    # Seconds since the start of a job begun just now was answered: its progress was
    # about 0 then, which dates the end from the first answer.
    started_ago: float | None = None
    _delay: float = field(init=False)
    _samples: list[tuple[float, float]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._delay = max(self.interval, 0.0)
        if self.started_ago is not None:
            self._samples.append((-self.started_ago, 0.0))

    def plain(self) -> float:
        """The next delay of the plain schedule (after a failed poll: no hint to use)."""
        base = self._delay
        self._delay = min(MAX_POLL_INTERVAL, max(self._delay * POLL_GROWTH, 0.0))
        return base

    def next(self, job: Job, elapsed: float) -> float:
        """Seconds to sleep before the next poll, given the answer at `elapsed`."""
        base = self.plain()
        if job.progress is not None:
            self._samples.append((elapsed, job.progress))
        if job.retry_after is not None and job.retry_after > 0:
            return min(job.retry_after, MAX_HINTED_INTERVAL)
        if len(self._samples) == 1 and self._samples[0][1] > 0:
            return min(base, SECOND_SAMPLE)  # a moving figure: a second look gives its pace
        left = self.expected_left(elapsed)
        if left is None or left < -LATE_GIVE_UP:  # no estimate, or a wrong one
            return base
        return min(base, max(left + POLL_MARGIN, NEAR_END_INTERVAL))

    def expected_left(self, elapsed: float) -> float | None:
        """Seconds until the job should end, from the first and last progress seen."""
        if len(self._samples) < 2:
            return None
        (t0, p0), (t1, p1) = self._samples[0], self._samples[-1]
        if p1 <= p0 or t1 <= t0:
            return None
        rate = (p1 - p0) / (t1 - t0)  # percent per second
        return (100.0 - p1) / rate - (elapsed - t1)


def wait(
    client: ApiClient,
    task_id: str,
    route: str | None = None,
    *,
    interval: float,
    timeout: float,
    on_update: Callable[[Job, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    started_ago: float | None = None,
) -> Job:
    """Poll until the job is terminal; JobNotFinishedError once `timeout` has passed (the
    last poll is at the deadline itself, so the whole `timeout` is waited)."""
    started = clock()
    schedule = PollSchedule(interval, started_ago)
    failing_since: float | None = None
    if started_ago is not None:  # a job begun just now: its first progress, a moment on,
        sleep(min(interval, FIRST_LOOK))  # says its pace (asked at once, it says little)
    while True:
        try:
            job = status(client, task_id, route)
        except ServerError as exc:  # the server or its provider, not the job: keep at it
            elapsed = clock() - started
            failing_since = elapsed if failing_since is None else failing_since
            if elapsed - failing_since >= WAIT_PATIENCE or elapsed >= timeout:
                exc.hint = f"the job may still be running: gpti2 job status {task_id} --wait"
                raise
            sleep(min(schedule.plain(), timeout - elapsed))
            continue
        failing_since = None
        elapsed = clock() - started
        if on_update:
            on_update(job, elapsed)
        if job.status.is_terminal:
            return job
        if elapsed >= timeout:
            raise JobNotFinishedError(
                f"job {task_id} is still {job.status.value} after {timeout:g} s",
                hint=f"come back later: gpti2 job fetch {task_id} --wait",
                job=job,
            )
        sleep(min(schedule.next(job, elapsed), timeout - elapsed))


def failure(job: Job) -> JobFailedError | None:
    """The exit-7 error of a failed or canceled job; None for any other."""
    if job.status in (JobStatus.FAILED, JobStatus.CANCELED):
        reason = job.error or "no reason given"
        return JobFailedError(f"job {job.task_id} {job.status.value}: {reason}")
    return None


def check_finished(job: Job) -> None:
    """Raise exit 7 for failed/canceled and exit 8 for an active job."""
    error = failure(job)
    if error is not None:
        raise error
    if job.status is not JobStatus.SUCCEEDED:
        raise JobNotFinishedError(
            f"job {job.task_id} is {job.status.value}, not finished",
            hint=f"wait for it: gpti2 job fetch {job.task_id} --wait",
        )


# -- fetching -------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedFile:
    """One result image on disk."""

    path: Path
    info: images.ImageInfo
    kept: bool = False  # it was already there and was left alone

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.info.bytes,
            "sha256": self.info.sha256,
            "format": self.info.format,
        }


def existing_result(folder: Path, stem: str) -> Path | None:
    """A result already on disk under `<stem>.<any image extension>`."""
    for ext in sorted(set(images.EXTENSIONS.values())):
        candidate = folder / f"{stem}.{ext}"
        if candidate.is_file():
            return candidate
    return None


def fetch(
    client: ApiClient,
    job: Job,
    folder: Path,
    *,
    force: bool,
    progress: Callable[[int], Progress | None] | None = None,
    limit: int = MAX_IMAGES,
) -> list[SavedFile]:
    """Write every result image (the first `limit`) as `<taskId>-<n>.<ext>`, up to
    DOWNLOADS at once, each with its own progress; existing ones kept unless force."""
    check_finished(job)
    if not job.images:
        raise ServerError(f"job {job.task_id} succeeded but lists no images")
    stem = checked_id(job.task_id, from_server=True)
    files.make_folder(folder)
    saved: dict[int, SavedFile] = {}
    todo: list[tuple[int, str, str]] = []
    for n, ref in enumerate(job.images[:limit], start=1):
        name = f"{stem}-{n}"
        existing = None if force else existing_result(folder, name)
        if existing is None:
            todo.append((n, ref, name))
            continue
        info = images.describe_file(existing)
        if info is None:  # found before downloading anything
            raise UsageError(
                f"{existing} already exists and is not an image",
                hint="move it away, or pass --force to overwrite it",
            )
        saved[n] = SavedFile(existing, info, kept=True)
    saved.update(_save_all(client, todo, folder, force, progress))
    return [saved[n] for n in sorted(saved)]


class _Stopped(Exception):
    """Another download of the same job failed, or the user interrupted: stop this one."""


def _save_all(
    client: ApiClient,
    todo: list[tuple[int, str, str]],
    folder: Path,
    force: bool,
    progress: Callable[[int], Progress | None] | None,
) -> dict[int, SavedFile]:
    """Save each (n, ref, stem) on a few threads; the first failure (in image order) is
    raised once every download has stopped (the others stop at their next chunk)."""
    stop = threading.Event()

    def one(n: int, ref: str, name: str) -> SavedFile:
        report = progress(n) if progress else None

        def checked(done: int, total: int | None) -> None:
            if stop.is_set():
                raise _Stopped
            if report is not None:
                report(done, total)

        try:
            return save_image(client, ref, folder, name, force, checked)
        except _Stopped:
            raise
        except BaseException:
            stop.set()  # the others stop at their next chunk
            raise

    if len(todo) <= 1:
        return {n: one(n, ref, name) for n, ref, name in todo}
    from concurrent.futures import ThreadPoolExecutor

    done: dict[int, SavedFile] = {}
    errors: dict[int, BaseException] = {}
    with ThreadPoolExecutor(min(DOWNLOADS, len(todo)), "gpti2-download") as pool:
        futures = {pool.submit(one, *item): item[0] for item in todo}
        try:
            for future, n in futures.items():
                try:
                    done[n] = future.result()
                except _Stopped:
                    pass
                except Exception as exc:
                    errors[n] = exc
        except BaseException:  # Ctrl-C: the others stop at their next chunk
            stop.set()
            raise
    if errors:
        raise errors[min(errors)]
    return done


_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]{16,}")


def save_image(
    client: ApiClient, ref: str, folder: Path, stem: str, force: bool, report: Progress | None
) -> SavedFile:
    """Write one result image as `<stem>.<ext>`: a data URL or bare base64 item decoded in
    place, anything else (a URL, absolute or relative) downloaded."""
    if ref[:5].lower() == "data:" or _BASE64.fullmatch(ref):
        data = images.decode_base64_image(ref)
        info = images.describe(data)
        path = folder / f"{stem}.{info.extension}"
        files.write_atomic(path, data, force)
        return SavedFile(path, info)
    return _download(client, ref, folder, stem, force, report)


def _download(
    client: ApiClient, url: str, folder: Path, stem: str, force: bool, report: Progress | None
) -> SavedFile:
    """Stream one image to a temporary file (a fresh one for each attempt), check it is a
    whole image, then give it its name: nothing partial is ever left."""
    with DOWNLOAD_SLOTS, files.disk_errors(folder), files.Scratch(folder, stem) as scratch:
        client.send("GET", url, auth=True, sink=scratch.new, progress=report)
        tmp = scratch.finish()
        info = images.describe(tmp.read_bytes())
        path = folder / f"{stem}.{info.extension}"
        files.publish(tmp, path, force)
        return SavedFile(path, info)
