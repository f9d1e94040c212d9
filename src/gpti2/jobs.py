"""The job route: start, status (with lenient reading), waiting, and fetching results."""

from __future__ import annotations

import base64
import contextlib
import math
import mimetypes
import re
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

MAX_POLL_INTERVAL = 10.0
POLL_GROWTH = 1.25
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
    payload = client.call(method, path, policy=RetryPolicy.IDEMPOTENT, json_body=body, auth=True)
    return parse_job(payload, task_id, client.api.dialect)


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
) -> Job:
    """Poll until the job is terminal; JobNotFinishedError once `timeout` has passed (the
    last poll is at the deadline itself, so the whole `timeout` is waited)."""
    started = clock()
    delay = max(interval, 0.0)
    while True:
        job = status(client, task_id, route)
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
        sleep(min(delay, timeout - elapsed))
        delay = min(MAX_POLL_INTERVAL, max(delay * POLL_GROWTH, 0.0))


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
    """Write every result image (the first `limit`) as `<taskId>-<n>.<ext>`; existing
    ones kept unless force."""
    check_finished(job)
    if not job.images:
        raise ServerError(f"job {job.task_id} succeeded but lists no images")
    stem = checked_id(job.task_id, from_server=True)
    files.make_folder(folder)
    saved = []
    for n, ref in enumerate(job.images[:limit], start=1):
        name = f"{stem}-{n}"
        existing = None if force else existing_result(folder, name)
        if existing is not None:
            info = images.describe_file(existing)
            if info is None:  # found before downloading anything
                raise UsageError(
                    f"{existing} already exists and is not an image",
                    hint="move it away, or pass --force to overwrite it",
                )
            saved.append(SavedFile(existing, info, kept=True))
            continue
        report = progress(n) if progress else None
        saved.append(save_image(client, ref, folder, name, force, report))
    return saved


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
    with files.disk_errors(folder), files.Scratch(folder, stem) as scratch:
        client.send("GET", url, auth=True, sink=scratch.new, progress=report)
        tmp = scratch.finish()
        info = images.describe(tmp.read_bytes())
        path = folder / f"{stem}.{info.extension}"
        files.publish(tmp, path, force)
        return SavedFile(path, info)
