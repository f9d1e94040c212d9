"""The history: every image gpti2 writes, and every failed attempt, as one SQLite row.

`history.db` lives in the user data folder (`GPTI2_DATA_DIR` moves it). Writes are safe
from many threads (one connection per process behind a lock) and from several processes
(WAL, a busy timeout). Recording never fails a command: a history that cannot be written
is reported once through the `warn` callback and the command goes on. No credential is
stored: the rows hold what was asked and what was written, the origin without userinfo,
and error texts after redaction.

Kept free of heavy imports (sqlite3 is loaded on first use): `gpti2 generate` records here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from gpti2.errors import UsageError

if TYPE_CHECKING:
    import sqlite3

    from gpti2.images import ImageInfo
    from gpti2.settings import Settings

# The columns, named as `gpti2 history --json` shows them, in that order.
FIELDS = (
    "id",
    "time",
    "command",
    "route",
    "origin",
    "provider",
    "model",
    "featureId",
    "mode",
    "prompt",
    "requestedAspectRatio",
    "aspectRatio",
    "taskId",
    "path",
    "sha256",
    "bytes",
    "format",
    "width",
    "height",
    "elapsedMs",
    "exitCode",
    "error",
)
_INTEGERS = {"id", "bytes", "width", "height", "elapsedMs", "exitCode"}
SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 15000
_SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS history (
        {", ".join(f"{name} {'INTEGER' if name in _INTEGERS else 'TEXT'}" for name in FIELDS)},
        PRIMARY KEY (id))""",
    "CREATE INDEX IF NOT EXISTS history_sha256 ON history (sha256)",
    "CREATE INDEX IF NOT EXISTS history_time ON history (time)",
    "CREATE INDEX IF NOT EXISTS history_task ON history (taskId)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS history_fts USING fts5 (
        prompt, content='history', content_rowid='id',
        tokenize='unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER IF NOT EXISTS history_fts_insert AFTER INSERT ON history BEGIN
        INSERT INTO history_fts (rowid, prompt) VALUES (new.id, new.prompt);
    END""",
    """CREATE TRIGGER IF NOT EXISTS history_fts_delete AFTER DELETE ON history BEGIN
        INSERT INTO history_fts (history_fts, rowid, prompt)
        VALUES ('delete', old.id, old.prompt);
    END""",
    """CREATE TABLE IF NOT EXISTS jobs (
        taskId TEXT NOT NULL, origin TEXT NOT NULL, time TEXT, prompt TEXT, model TEXT,
        featureId TEXT, mode TEXT, requestedAspectRatio TEXT,
        PRIMARY KEY (taskId, origin))""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The user data folder: `GPTI2_DATA_DIR`, else platformdirs' user data folder."""
    environ = os.environ if environ is None else environ
    override = environ.get("GPTI2_DATA_DIR", "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("gpti2"))


def db_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the history database lives."""
    return data_dir(environ) / "history.db"


def enabled(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """False with `history = false` in the profile or GPTI2_NO_HISTORY set."""
    environ = os.environ if environ is None else environ
    off = environ.get("GPTI2_NO_HISTORY", "").strip().lower() not in ("", "0", "false", "no")
    return bool(settings.values.get("history", True)) and not off


def origin_of(base_url: str) -> str:
    """Which server made an image: `local`, or `scheme://host[:port]` (the port only when
    it is not the scheme's default; never any userinfo)."""
    if base_url == "local":
        return "local"
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(parts.scheme)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


def now() -> str:
    """The time as rows record it: ISO 8601 UTC with milliseconds (sorts as text)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def image_fields(path: Path | None, info: ImageInfo) -> dict[str, Any]:
    """A row's fields for an image written to `path` (None: written to stdout)."""
    return {
        "path": str(Path(path).absolute()) if path is not None else None,
        "sha256": info.sha256,
        "bytes": info.bytes,
        "format": info.format,
        "width": info.width,
        "height": info.height,
        "aspectRatio": ratio_of(info.width, info.height),
    }


def ratio_of(width: int | None, height: int | None) -> str | None:
    """The reduced `W:H` of a size."""
    import math

    if not width or not height:
        return None
    common = math.gcd(width, height)
    return f"{width // common}:{height // common}"


# -- writing --------------------------------------------------------------------------


class _Store:
    """One read-write connection per database file and process, shared by its threads."""

    def __init__(self, path: Path) -> None:
        import sqlite3

        self.path = path
        self.lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        try:
            _prepare(self.db)
        except BaseException:
            self.db.close()
            raise

    def insert(self, table: str, row: Mapping[str, Any], replace: bool = False) -> None:
        names = [name for name in row if name != "id"]
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        sql = f"{verb} INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        with self.lock:
            self.db.execute(sql, [row[name] for name in names])


def _prepare(db: sqlite3.Connection) -> None:
    """WAL, the busy timeout, and the schema (made once, by whichever process is first)."""
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        db.execute("PRAGMA synchronous = NORMAL")
        return
    for attempt in range(50):  # changing the journal mode does not wait on a busy database
        try:
            db.execute("PRAGMA journal_mode = WAL")
            break
        except Exception as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.02)
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            for statement in _SCHEMA:
                db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


_stores: dict[Path, _Store] = {}
_stores_lock = threading.Lock()
_warned: set[Path] = set()


def _store(path: Path) -> _Store:
    """The open store of `path`; a process uses one history, so any other is closed."""
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            for other in _stores.values():
                other.db.close()
            _stores.clear()
            store = _stores[path] = _Store(path)
        return store


def close_all() -> None:
    """Close every open history connection (tests, and processes that outlive a command)."""
    with _stores_lock:
        for store in _stores.values():
            store.db.close()
        _stores.clear()
        _warned.clear()


class Recorder:
    """Where one command records its rows: a database, or nowhere when history is off.

    `add` never raises: a failure is reported once through `warn`, and later rows of the
    same command are dropped quietly."""

    def __init__(self, path: Path | None, warn: Callable[[str], None] | None = None) -> None:
        self.path, self.warn = path, warn
        self.failed = False

    def add(self, row: Mapping[str, Any], table: str = "history") -> None:
        if self.path is None or self.failed:
            return
        try:
            _store(self.path).insert(table, row, replace=table == "jobs")
        except Exception as exc:
            self.failed = True
            with _stores_lock:
                _stores.pop(self.path, None)
                first = self.path not in _warned
                _warned.add(self.path)
            if self.warn is not None and first:
                self.warn(_problem(self.path, exc))


def _problem(path: Path, exc: BaseException) -> str:
    from gpti2.display import shown

    reason = shown(getattr(exc, "strerror", None) or exc, 300)
    hint = ""
    if "not a database" in reason or "malformed" in reason:
        hint = " (move it away to start a new history)"
    elif "readonly" in reason or "read-only" in reason or "unable to open" in reason:
        hint = " (it cannot be written; GPTI2_NO_HISTORY=1 turns history off)"
    return f"history not recorded in {path}: {reason}{hint}"


def recorder(
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Recorder:
    """The Recorder for a command with these settings (a no-op one when history is off)."""
    if not enabled(settings, environ):
        return Recorder(None)
    return Recorder(db_path(environ), warn)


class Attempt:
    """What a command asked for; `wrote` and `failed` record how it ended."""

    def __init__(
        self,
        recorder: Recorder,
        command: str,
        route: str,
        origin: str,
        prompt: str | None,
        model: str | None,
        provider: str | None = None,
        feature_id: str | None = None,
        mode: str | None = None,
        requested_aspect_ratio: str | None = None,
        task_id: str | None = None,
    ) -> None:
        self.recorder, self.command, self.route, self.origin = recorder, command, route, origin
        self.prompt, self.model, self.provider = prompt, model, provider
        self.feature_id, self.mode = feature_id, mode
        self.requested_aspect_ratio, self.task_id = requested_aspect_ratio, task_id
        self.started = time.monotonic()

    def _row(self, **values: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "time": now(),
            "command": self.command,
            "route": self.route,
            "origin": self.origin,
            "provider": self.provider,
            "model": self.model,
            "featureId": self.feature_id,
            "mode": self.mode,
            "prompt": self.prompt,
            "requestedAspectRatio": self.requested_aspect_ratio,
            "taskId": self.task_id,
            "elapsedMs": round((time.monotonic() - self.started) * 1000),
            "exitCode": 0,
        }
        row.update(values)
        return row

    def wrote(
        self, path: Path | None, info: ImageInfo, *, task_id: str | None = None, **extra: Any
    ) -> None:
        """Record an image written to `path` (None: written to stdout)."""
        self.recorder.add(
            self._row(
                **image_fields(path, info),
                **({"taskId": task_id} if task_id else {}),
                **extra,
            )
        )

    def wrote_files(self, saved: Iterable[Any]) -> None:
        """Record the files a job fetch wrote (`jobs.SavedFile`; kept ones were not)."""
        for item in saved:
            if not getattr(item, "kept", False):
                self.wrote(item.path, item.info)

    @contextlib.contextmanager
    def failures(self) -> Iterator[None]:
        """Record an exception leaving the block as a failed attempt, then let it go on."""
        try:
            yield
        except BaseException as exc:
            self.failed(exc)
            raise

    def failed(self, exc: BaseException, *, task_id: str | None = None) -> None:
        """Record a failed attempt with the exit code and message the user sees (a job
        still running, exit 8, has not failed)."""
        code, message = failure_of(exc)
        if code == 8:
            return
        self.recorder.add(
            self._row(exitCode=code, error=message, **({"taskId": task_id} if task_id else {}))
        )

    def started_job(self, task_id: str) -> None:
        """Remember what a job was asked for, so a later `job fetch` row carries it."""
        self.task_id = task_id
        self.recorder.add(
            {
                "taskId": task_id,
                "origin": self.origin,
                "time": now(),
                "prompt": self.prompt,
                "model": self.model,
                "featureId": self.feature_id,
                "mode": self.mode,
                "requestedAspectRatio": self.requested_aspect_ratio,
            },
            table="jobs",
        )


def attempt(
    command: str,
    request: Any,
    settings: Settings,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Attempt:
    """The Attempt of sending `request` (a `quick.QuickRequest` or a `jobs.StartRequest`)
    with these settings; its rows go where `recorder` says."""
    job = hasattr(request, "feature_id")
    return Attempt(
        recorder(settings, environ, warn),
        command=command,
        route="job" if job else "quick",
        origin=origin_of(settings.base_url),
        prompt=request.prompt,
        model=request.model_id,
        provider=getattr(request, "provider", None),
        feature_id=getattr(request, "feature_id", None),
        mode=getattr(request, "mode", None),
        requested_aspect_ratio=request.aspect_ratio,
    )


def job_attempt(
    settings: Settings,
    environ: Mapping[str, str] | None,
    warn: Callable[[str], None] | None,
    command: str,
    task_id: str,
) -> Attempt:
    """The Attempt of fetching a job, with what `job start` asked for when it is known."""
    found = recorder(settings, environ, warn)
    origin = origin_of(settings.base_url)
    asked = job_request(found.path, task_id, origin) if found.path else None
    asked = asked or {}
    return Attempt(
        found,
        command=command,
        route="job",
        origin=origin,
        prompt=asked.get("prompt"),
        model=asked.get("model"),
        feature_id=asked.get("featureId"),
        mode=asked.get("mode"),
        requested_aspect_ratio=asked.get("requestedAspectRatio"),
        task_id=task_id,
    )


def batch_end(
    end: Callable[[Any], None],
    settings: Settings,
    environ: Mapping[str, str] | None,
    warn: Callable[[str], None] | None,
    manifest: Any,
) -> Callable[[Any], None]:
    """A batch `end` callback that records each finished image (a `batch.Result`, found by
    name among the `batch.Manifest`'s entries), then calls `end`."""
    from gpti2 import images

    found = recorder(settings, environ, warn)
    by_name = {entry.name: entry for entry in manifest.entries}
    origin = origin_of(settings.base_url)

    def record(result: Any) -> None:
        entry = by_name.get(result.name)
        if entry is not None and result.status in ("generated", "failed"):
            path = manifest.root / result.path if result.path else None
            info = images.describe_file(path) if path else None
            row = {
                "time": now(),
                "command": "batch",
                "route": entry.route,
                "origin": origin,
                "provider": entry.provider,
                "model": entry.model,
                "featureId": entry.feature_id,
                "mode": entry.mode,
                "prompt": entry.prompt,
                "requestedAspectRatio": entry.aspect_ratio,
                "taskId": getattr(result, "task_id", None),
                "elapsedMs": round(result.seconds * 1000),
                "exitCode": result.exit_code,
                "error": result.error,
            }
            if info is not None and path is not None:
                row.update(image_fields(path, info))
            found.add(row)
        end(result)

    return record


def failure_of(exc: BaseException) -> tuple[int, str]:
    """(exit code, message) of an exception as the user sees it."""
    from gpti2.display import shown
    from gpti2.errors import ExitCode, Gpti2Error

    if isinstance(exc, Gpti2Error):
        return int(exc.exit_code), exc.message
    if isinstance(exc, KeyboardInterrupt):
        return int(ExitCode.INTERRUPTED), "interrupted"
    return int(ExitCode.INTERNAL), shown(f"{type(exc).__name__}: {exc}", 1000)


# -- reading --------------------------------------------------------------------------


def _reader(path: Path) -> sqlite3.Connection | None:
    """A connection for reading, or None when there is no history yet."""
    import sqlite3

    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True)
    except sqlite3.Error:
        db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


def _unreadable(path: Path, exc: BaseException) -> UsageError:
    return UsageError(
        f"cannot read the history {path}: {exc}",
        hint="move it away to start a new history",
    )


def _rows(path: Path, sql: str, params: Iterable[Any]) -> list[dict[str, Any]]:
    import sqlite3

    try:
        db = _reader(path)
        if db is None:
            return []
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                return []
            cursor = db.execute(sql, list(params))
            return [dict(zip(FIELDS, values, strict=True)) for values in cursor]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise _unreadable(path, exc) from None


def fts_query(text: str) -> str:
    """A safe FTS5 query for what a person typed: every word must appear (the last one as
    a prefix), quoted so that no FTS syntax in the text is ever interpreted."""
    import re

    words = re.findall(r"\w+", text)
    if not words:
        raise UsageError(f"nothing to search for in {text!r}", hint="search for words")
    return (
        " ".join(f'"{w}"' for w in words[:-1])
        + (" " if len(words) > 1 else "")
        + (f'"{words[-1]}"*')
    )


_SINCE = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(value: str, clock: Callable[[], datetime] | None = None) -> str:
    """The row time for `--since`: a duration back from now (`30m`, `2h`, `7d`, `1w`), a
    date (`2026-11-28`) or a date and time (`2026-11-28T09:00`, UTC unless it says)."""
    import re

    text = value.strip()
    current = (clock or (lambda: datetime.now(UTC)))()
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text.lower())
    if found:
        moment = current - timedelta(seconds=float(found[1]) * _SINCE[found[2]])
    elif text.lower() in ("today", "yesterday"):
        moment = current.replace(hour=0, minute=0, second=0, microsecond=0)
        moment -= timedelta(days=1 if text.lower() == "yesterday" else 0)
    else:
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise UsageError(
                f"bad value {value!r} for --since",
                hint="a duration such as 2h or 7d, or a date such as 2026-11-28",
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Query(NamedTuple):
    """A history search: every filter optional; newest first, at most `limit` (0: all)."""

    text: str | None = None
    model: str | None = None
    since: str | None = None
    failed: bool = False
    limit: int = 20

    def sql(self) -> tuple[str, list[Any]]:
        columns = ", ".join(f"h.{name}" for name in FIELDS)
        where, params = [], []
        if self.text:
            source = "history_fts f JOIN history h ON h.id = f.rowid"
            where.append("history_fts MATCH ?")
            params.append(fts_query(self.text))
            order = "f.rowid DESC"
        else:
            source, order = "history h", "h.id DESC"
        if self.model:
            where.append("(h.model = ? OR h.provider || ':' || h.model = ?)")
            params += [self.model, self.model]
        if self.since:
            where.append("h.time >= ?")
            params.append(self.since)
        if self.failed:
            where.append("h.exitCode != 0")
        sql = f"SELECT {columns} FROM {source}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order}"
        if self.limit:
            sql += " LIMIT ?"
            params.append(self.limit)
        return sql, params


def search(path: Path, query: Query) -> list[dict[str, Any]]:
    """The rows matching `query`, newest first."""
    sql, params = query.sql()
    return _rows(path, sql, params)


def get(path: Path, row_id: int) -> dict[str, Any] | None:
    """One row by id."""
    found = _rows(path, f"SELECT {', '.join(FIELDS)} FROM history WHERE id = ?", [row_id])
    return found[0] if found else None


def by_sha256(path: Path, sha256: str) -> dict[str, Any] | None:
    """The newest row that wrote these exact bytes."""
    found = _rows(
        path,
        f"SELECT {', '.join(FIELDS)} FROM history WHERE sha256 = ? ORDER BY id DESC LIMIT 1",
        [sha256],
    )
    return found[0] if found else None


def job_request(path: Path, task_id: str, origin: str) -> dict[str, Any] | None:
    """What `job start` asked for, for a job fetched later (None when unknown)."""
    import sqlite3

    try:
        db = _reader(path)
        if db is None:
            return None
        try:
            db.row_factory = sqlite3.Row
            found = db.execute(
                "SELECT * FROM jobs WHERE taskId = ? AND origin = ?", [task_id, origin]
            ).fetchone()
            return dict(found) if found else None
        finally:
            db.close()
    except sqlite3.Error:
        return None


def file_state(row: Mapping[str, Any], full: bool = False) -> str | None:
    """`present`, `missing` or `changed` for a row's file (None: no file recorded).

    Without `full`, a file of the recorded size counts as present (cheap enough for long
    listings); with it, its SHA-256 is compared."""
    path = row.get("path")
    if not path:
        return None
    try:
        size = os.stat(path).st_size
    except OSError:
        return "missing"
    if row.get("bytes") is not None and size != row["bytes"]:
        return "changed"
    if full and row.get("sha256"):
        import hashlib

        digest = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            return "missing"
        if digest.hexdigest() != row["sha256"]:
            return "changed"
    return "present"
