"""Batch manifests: validation, fingerprints, the lock file, and the concurrent runner."""

from __future__ import annotations

import hashlib
import json
import queue
import re
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpti2 import files, images, jobs, quick
from gpti2.client import ApiClient, loads
from gpti2.errors import ExitCode, Gpti2Error, ServerError, UsageError
from gpti2.settings import Settings, parse_value

LOCK_VERSION = 1
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


# -- the manifest ---------------------------------------------------------------------


class _Shared(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    route: Literal["quick", "job"] | None = None
    provider: str | None = None
    model: str | None = None
    aspect_ratio: str | None = None
    output_dir: str | None = None
    feature_id: str | None = None


class _Image(_Shared):
    name: str
    prompt: str


class _Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    defaults: _Shared = Field(default_factory=_Shared)
    images: list[_Image] = Field(default_factory=list)


@dataclass(frozen=True)
class Entry:
    """One image of the manifest, every setting resolved."""

    name: str
    prompt: str
    route: str
    provider: str | None
    model: str
    aspect_ratio: str
    feature_id: str | None
    mode: str | None
    folder: Path

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of everything that shapes the image."""
        shape = {
            "route": self.route,
            "provider": self.provider,
            "model": self.model,
            "feature": self.feature_id,
            "mode": self.mode,
            "aspectRatio": self.aspect_ratio,
            "prompt": self.prompt,
        }
        canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class Manifest:
    path: Path
    entries: list[Entry]

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.lock.json")

    def relative(self, path: Path) -> str:
        """A path as the lock records it: relative to the manifest's folder, `/` separators.
        The file itself is not followed: a link named there is that name, wherever it points."""
        return (path.parent.resolve() / path.name).relative_to(self.root.resolve()).as_posix()


def _where(raw: dict[str, Any], loc: tuple[Any, ...]) -> str:
    if loc and loc[0] == "images" and len(loc) > 1 and isinstance(loc[1], int):
        items = raw.get("images") if isinstance(raw.get("images"), list) else []
        item = items[loc[1]] if loc[1] < len(items) else None
        name = item.get("name") if isinstance(item, dict) else None
        label = f"[[images]] #{loc[1] + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
        return label + (f", key {loc[2]!r}" if len(loc) > 2 else "")
    if loc and loc[0] == "defaults":
        return "[defaults]" + (f", key {loc[1]!r}" if len(loc) > 1 else "")
    return f"key {loc[0]!r}" if loc else "the manifest"


def _validation_message(path: Path, raw: dict[str, Any], exc: ValidationError) -> str:
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        what = "unknown key"
    elif kind == "missing":
        what = "missing required key"
    elif kind == "literal_error":
        what = 'must be "quick" or "job"'
    else:
        what = error["msg"].lower()
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return f"{path}: {_where(raw, loc)}: {what}{more}"


def load_manifest(path: Path, settings: Settings) -> Manifest:
    """Parse and validate a manifest; a UsageError naming file, entry and key otherwise."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no manifest at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read manifest {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    try:
        spec = _Manifest.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(_validation_message(path, raw, exc)) from None

    root = path.parent.resolve()
    seen: set[str] = set()
    entries = []
    for index, image in enumerate(spec.images):
        where = f"{path}: [[images]] #{index + 1} ({image.name!r})"
        if not NAME.fullmatch(image.name) or ".." in image.name:
            raise UsageError(
                f"{where}: unsafe name",
                hint="names are file stems: [A-Za-z0-9][A-Za-z0-9._-]*, without '..'",
            )
        if image.name in seen:
            raise UsageError(f"{where}: duplicate name")
        seen.add(image.name)
        if not image.prompt.strip():
            raise UsageError(f"{where}: the prompt is empty")

        def pick(key: str, image: _Image = image) -> Any:
            value = getattr(image, key)
            return value if value is not None else getattr(spec.defaults, key)

        route = pick("route") or "quick"
        ratio = pick("aspect_ratio") or settings.aspect_ratio
        ratio = parse_value("aspect_ratio", ratio, f"{where}, key 'aspect_ratio'")
        folder = (root / (pick("output_dir") or ".")).resolve()
        if not folder.is_relative_to(root):
            raise UsageError(
                f"{where}: output_dir {pick('output_dir')!r} is outside the manifest's folder"
            )
        job = route == "job"
        entries.append(
            Entry(
                name=image.name,
                prompt=image.prompt.strip(),
                route=route,
                provider=None if job else (pick("provider") or settings.provider),
                model=pick("model") or (settings.job_model if job else settings.model),
                aspect_ratio=ratio,
                feature_id=(pick("feature_id") or settings.feature_id) if job else None,
                mode="text_to_image" if job else None,
                folder=folder,
            )
        )
    return Manifest(path, entries)


# -- the lock file --------------------------------------------------------------------


class Lock:
    """The lock file's records, rewritten atomically (and thread-safely) on each change."""

    def __init__(self, path: Path, records: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.records = records
        self._mutex = threading.Lock()

    @classmethod
    def read(cls, path: Path) -> Lock:
        try:
            data = loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path, {})
        except (OSError, ValueError) as exc:
            raise UsageError(
                f"cannot read lock file {path}: {exc}", hint="delete it to regenerate everything"
            ) from None
        records = data.get("images") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("version") != LOCK_VERSION
            or not isinstance(records, dict)
        ):
            raise UsageError(f"{path} is not a version {LOCK_VERSION} gpti2 lock file")
        return cls(path, {k: v for k, v in records.items() if isinstance(v, dict)})

    def render(self) -> str:
        return (
            json.dumps({"version": LOCK_VERSION, "images": self.records}, indent=2, sort_keys=True)
            + "\n"
        )

    def save(self) -> None:
        files.write_atomic(self.path, self.render().encode(), force=True)

    def record(self, name: str, record: dict[str, Any]) -> None:
        with self._mutex:
            self.records[name] = record
            self.save()

    def keep_only(self, names: set[str]) -> bool:
        """Drop records the manifest no longer names; True when any were dropped."""
        with self._mutex:
            stale = set(self.records) - names
            for name in stale:
                del self.records[name]
            return bool(stale)


# -- planning -------------------------------------------------------------------------


@dataclass
class Item:
    """An entry and why it must be generated (None: up to date)."""

    entry: Entry
    reason: str | None


def _file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def plan(manifest: Manifest, lock: Lock, *, force: bool, only: list[str]) -> list[Item]:
    """Decide, without any request, which entries need generating."""
    unknown = [name for name in only if name not in {e.name for e in manifest.entries}]
    if unknown:
        raise UsageError(f"--only {unknown[0]!r}: no such image in {manifest.path}")
    items = []
    for entry in manifest.entries:
        if only and entry.name not in only:
            continue
        record = lock.records.get(entry.name)
        if force:
            reason: str | None = "forced"
        elif record is None:
            reason = "new"
        elif record.get("fingerprint") != entry.fingerprint():
            reason = "changed"
        else:
            recorded = manifest.root / str(record.get("path", ""))
            sha = _file_sha256(recorded) if recorded.is_file() else None
            reason = (
                None if sha == record.get("sha256") else ("missing" if sha is None else "modified")
            )
        items.append(Item(entry, reason))
    return items


def conflicts(manifest: Manifest, lock: Lock, items: list[Item]) -> list[Path]:
    """Files in the way of an image to generate that the lock does not know as ours."""
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


@dataclass
class Result:
    """How one image of the batch ended."""

    name: str
    status: str  # generated, up to date, failed
    path: str | None = None
    sha256: str | None = None
    bytes: int | None = None
    error: str | None = None
    exit_code: int = 0
    seconds: float = 0.0
    reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "path": self.path,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "error": self.error,
        }


def up_to_date(item: Item, lock: Lock) -> Result:
    """The result of an image that needed nothing."""
    record = lock.records[item.entry.name]
    return Result(
        item.entry.name, "up to date", record.get("path"), record.get("sha256"), record.get("bytes")
    )


class Interrupted(Exception):
    """The batch was asked to stop."""


@dataclass
class Events:
    """Callbacks for a progress display (called from worker threads)."""

    begin: Callable[[Entry, str], None] = lambda entry, stage: None
    end: Callable[[Result], None] = lambda result: None


@dataclass
class Runner:
    """Generates the planned images with one shared client and `concurrency` workers."""

    manifest: Manifest
    lock: Lock
    client: ApiClient
    status_route: str
    concurrency: int = 4
    poll_interval: float = 2.0
    wait_timeout: float = 600.0
    events: Events = field(default_factory=Events)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, items: list[Item]) -> list[Result]:
        """Every item's result, in manifest order."""
        results = {i.entry.name: up_to_date(i, self.lock) for i in items if i.reason is None}
        todo = [item.entry for item in items if item.reason is not None]
        quick_entries = [e for e in todo if e.route == "quick"]
        job_entries = [e for e in todo if e.route == "job"]
        started: dict[str, tuple[str, float]] = {}

        def start_job(entry: Entry) -> None:
            began = time.monotonic()
            self.events.begin(entry, "starting")
            try:
                request = jobs.StartRequest(
                    entry.prompt,
                    entry.feature_id or "",
                    entry.mode or "text_to_image",
                    entry.model,
                    entry.aspect_ratio,
                )
                started[entry.name] = (jobs.start(self.client, request).task_id, began)
                self.events.begin(entry, f"started job {started[entry.name][0]}")
            except Exception as exc:
                results[entry.name] = self._failed(entry, exc, began)

        def finish_job(entry: Entry) -> None:
            task_id, began = started[entry.name]
            self.events.begin(entry, f"waiting for {task_id}")
            try:
                job = jobs.wait(
                    self.client,
                    task_id,
                    self.status_route,
                    interval=self.poll_interval,
                    timeout=self.wait_timeout,
                    sleep=self._sleep,
                )
                jobs.check_finished(job)
                if not job.images:
                    raise ServerError(f"job {task_id} succeeded but lists no images")
                self._check_stop()
                saved = jobs.save_image(
                    self.client, job.images[0], entry.folder, entry.name, True, self._progress
                )
                results[entry.name] = self._done(entry, saved.path, saved.info, began)
            except Exception as exc:
                results[entry.name] = self._failed(entry, exc, began)

        # Jobs first, so they run on the server while the quick images are made.
        self._parallel(job_entries, start_job)
        self._parallel(quick_entries, lambda e: results.__setitem__(e.name, self._quick(e)))
        self._parallel([e for e in job_entries if e.name in started], finish_job)
        return [results[item.entry.name] for item in items]

    # -- workers ----------------------------------------------------------------------

    def _quick(self, entry: Entry) -> Result:
        began = time.monotonic()
        self.events.begin(entry, "generating")
        try:
            request = quick.QuickRequest(
                entry.prompt, entry.provider or "", entry.model, entry.aspect_ratio
            )
            image = quick.generate(self.client, request)
            self._check_stop()
            target = entry.folder / f"{entry.name}.{image.info.extension}"
            files.write_atomic(target, image.data, force=True)
            return self._done(entry, target, image.info, began)
        except Exception as exc:
            return self._failed(entry, exc, began)

    def _done(self, entry: Entry, path: Path, info: images.ImageInfo, began: float) -> Result:
        relative = self.manifest.relative(path)
        self.lock.record(
            entry.name,
            {
                "fingerprint": entry.fingerprint(),
                "path": relative,
                "sha256": info.sha256,
                "bytes": info.bytes,
                "generatedAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            },
        )
        result = Result(
            entry.name,
            "generated",
            relative,
            info.sha256,
            info.bytes,
            seconds=time.monotonic() - began,
        )
        self.events.end(result)
        return result

    def _failed(self, entry: Entry, exc: Exception, began: float) -> Result:
        if isinstance(exc, Interrupted):
            raise exc
        code = int(exc.exit_code) if isinstance(exc, Gpti2Error) else int(ExitCode.INTERNAL)
        message = exc.message if isinstance(exc, Gpti2Error) else f"{type(exc).__name__}: {exc}"
        result = Result(
            entry.name, "failed", error=message, exit_code=code, seconds=time.monotonic() - began
        )
        self.events.end(result)
        return result

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted

    def _progress(self, done: int, total: int | None) -> None:
        self._check_stop()

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise Interrupted

    def _parallel(self, entries: list[Entry], work: Callable[[Entry], None]) -> None:
        """Run `work` over `entries` on daemon threads; Ctrl-C stops handing out work."""
        if not entries:
            return
        pending: queue.SimpleQueue[Entry] = queue.SimpleQueue()
        for entry in entries:
            pending.put(entry)

        def worker() -> None:
            while not self.stop.is_set():
                try:
                    entry = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    work(entry)
                except Interrupted:
                    return

        threads = [
            threading.Thread(target=worker, name=f"gpti2-batch-{i}", daemon=True)
            for i in range(max(1, min(self.concurrency, len(entries))))
        ]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.1)
        except KeyboardInterrupt:
            self.interrupt(threads)
            raise
        if self.stop.is_set():
            raise KeyboardInterrupt

    def interrupt(self, threads: list[threading.Thread]) -> None:
        """Stop: let in-flight workers notice, then remove any temporary file they left."""
        self.stop.set()
        deadline = time.monotonic() + 2.0
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        for entry in self.manifest.entries:
            for leftover in entry.folder.glob(f".{entry.name}.*.part"):
                leftover.unlink(missing_ok=True)
