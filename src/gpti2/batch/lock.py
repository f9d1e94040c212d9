"""The lock file: what each image was made from, by which origin, and its bytes' digest.

Files beside `<stem>.lock.json` (hidden, never to be committed):
- `.<lock name>.journal`: one JSON line per finished image or started job, appended (and
  flushed to disk) as it happens, folded into the lock when the run ends or, after a
  crash, when the next run starts. The lock itself is rendered once per run, not once
  per image.
- `.<lock name>.flock`: held with `flock(2)` for the length of a run, so two runs on one
  manifest never interleave their writes: alone by a run on the whole manifest or a
  merge, shared by shards (each also holds its fragment's `.flock` alone, and waits for
  shards of another total); `.<lock name>.gate` lets one shard at a time check that.
- `.<lock name>.stat`: size, modification time and digest of each file last seen, so a
  rerun hashes only files that changed (`--check --deep` hashes all).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gpti2 import files
from gpti2.errors import UsageError
from gpti2.history import origin_of as origin_of  # one rule: the lock and the history

LOCK_VERSION = 1
LOCAL = "local"
RUNNING = "running"


def may_serve_placeholders(origin: str) -> bool:
    """True for `local` and loopback origins (`gpti2 serve`): the emulator's placeholders
    are what they make. Anywhere else a placeholder is never a real image."""
    from gpti2.client import is_loopback

    return origin == LOCAL or is_loopback(urlsplit(origin).hostname or "")


def origin_label(origin: str) -> str:
    """An origin as a sentence says it."""
    return "the local emulator" if origin == LOCAL else origin


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _loads(text: str, path: Path, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        problem = "JSON nested too deeply"
    except ValueError as exc:
        problem = str(exc)
    raise UsageError(
        f"cannot read {what} {path}: {problem}", hint="delete it to regenerate everything"
    )


def read_document(path: Path, what: str = "lock file") -> dict[str, Any] | None:
    """The parsed JSON object of a lock or fragment; None when there is no file; a
    UsageError (exit 2) for anything that is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {what} {path}: {exc}") from None
    data = _loads(text, path, what)
    records = data.get("images") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or data.get("version") != LOCK_VERSION
        or not isinstance(records, dict)
    ):
        raise UsageError(f"{path} is not a version {LOCK_VERSION} gpti2 {what}")
    return data


def render(records: dict[str, dict[str, Any]], **extra: Any) -> bytes:
    """The lock's text: sorted keys, two-space indent."""
    document = {"version": LOCK_VERSION, **extra, "images": records}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def sidecar(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}")


class Lock:
    """A lock's (or fragment's) records, with the journal that keeps each change safe."""

    def __init__(
        self, path: Path, records: dict[str, dict[str, Any]], extra: dict[str, Any] | None = None
    ) -> None:
        self.path = path
        self.records = records
        self.extra = extra or {}
        self.without_origin = 0  # records of an older gpti2, read as made by this origin
        self.journaled = False  # a journal was read into the records
        self._mutex = threading.Lock()
        self._journal: Any = None

    @classmethod
    def read(cls, path: Path, origin: str) -> Lock:
        """The lock at `path` with its journal applied (nothing written)."""
        data = read_document(path) or {"images": {}}
        records = {k: v for k, v in data["images"].items() if isinstance(v, dict)}
        extra = {k: v for k, v in data.items() if k not in ("version", "images")}
        lock = cls(path, records, extra)
        for record in records.values():
            if "origin" not in record:
                record["origin"] = origin
                lock.without_origin += 1
        lock._apply_journal()
        return lock

    @property
    def journal_path(self) -> Path:
        return sidecar(self.path, "journal")

    def _apply_journal(self) -> None:
        try:
            lines = self.journal_path.read_bytes().splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise UsageError(f"cannot read {self.journal_path}: {exc.strerror or exc}") from None
        for line in lines:
            try:
                item = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a line cut short by a crash: that change never finished
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            record = item.get("record")
            if record is None:
                self.records.pop(item["name"], None)
            elif isinstance(record, dict):
                self.records[item["name"]] = record
            self.journaled = True

    # -- writing (inside a run) -----------------------------------------------------

    def record(self, name: str, record: dict[str, Any] | None) -> None:
        """Set (or with None drop) one record, safe on disk before this returns."""
        line = json.dumps({"name": name, "record": record}, separators=(",", ":")) + "\n"
        with self._mutex:
            if record is None:
                self.records.pop(name, None)
            else:
                self.records[name] = record
            if self._journal is None:
                files.make_folder(self.path.parent)
                self._journal = open(self.journal_path, "ab")  # noqa: SIM115 (closed in save)
            self._journal.write(line.encode())
            self._journal.flush()
            os.fdatasync(self._journal.fileno())

    def keep_only(self, names: set[str]) -> bool:
        """Drop records the manifest no longer names; True when any were dropped."""
        with self._mutex:
            stale = set(self.records) - names
            for name in stale:
                del self.records[name]
            return bool(stale)

    def save(self) -> None:
        """Write the whole lock atomically and remove the journal it now holds."""
        with self._mutex:
            files.write_atomic(self.path, render(self.records, **self.extra), force=True)
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            self.journal_path.unlink(missing_ok=True)
            self.journaled = False


NO_WAIT_HINT = "let it finish, or run without --no-wait to wait for it"


@contextlib.contextmanager
def exclusive(
    path: Path, *, wait: bool, on_wait: Callable[[str], None], what: str
) -> Iterator[None]:
    """Hold the run lock of `path` (a sidecar `flock`) alone: no other run on the manifest,
    sharded or not, meanwhile. Without `wait` a busy lock is exit 2."""
    fd = _run_lock(path)
    try:
        if not _take(fd, fcntl.LOCK_EX):
            _busy(wait, on_wait, what, _holder(fd), NO_WAIT_HINT)
            fcntl.flock(fd, fcntl.LOCK_EX)
        _sign(fd)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def shared(
    path: Path,
    own: Path,
    rivals: Callable[[], list[tuple[str, Path]]],
    *,
    wait: bool,
    on_wait: Callable[[str], None],
    what: str,
) -> Iterator[None]:
    """A shard's run locks: `path`'s shared with the other shards (they make other images,
    each into its own fragment), `own` (its fragment's) alone. A run on the whole manifest
    or a merge (`exclusive` on `path`) and the shards wait for each other, and so do two
    runs of one shard. So do shards of another total, whose shares overlap this one:
    `rivals()` names their fragments, `(label, path)`."""
    manifest_fd, own_fd = _run_lock(path), None
    try:
        own_fd = _run_lock(own)
        told = False
        while True:
            with _gate(path):  # one shard at a time looks for the others
                busy = _claim(manifest_fd, own_fd, rivals)
            if busy is None:
                break
            fd, who, rival = busy
            try:
                hint = f"a shard of another N makes some of the same images; {NO_WAIT_HINT}"
                if not told:
                    _busy(wait, on_wait, what, who, hint if rival else NO_WAIT_HINT)
                    told = True
                fcntl.flock(fd, fcntl.LOCK_SH)  # returns once its holder is done
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                if rival:
                    os.close(fd)
        _sign(manifest_fd)
        _sign(own_fd)
        yield
    finally:
        for fd in (manifest_fd, own_fd):
            if fd is not None:
                os.close(fd)


def _claim(
    manifest_fd: int, own_fd: int, rivals: Callable[[], list[tuple[str, Path]]]
) -> tuple[int, str, bool] | None:
    """Take a shard's run locks, or else hold none and say what to wait for: (the lock,
    who holds it, whether it is a rival's, to close after)."""
    if not _take(manifest_fd, fcntl.LOCK_SH):
        return manifest_fd, _holder(manifest_fd), False
    if not _take(own_fd, fcntl.LOCK_EX):
        fcntl.flock(manifest_fd, fcntl.LOCK_UN)
        return own_fd, _holder(own_fd), False
    for label, fragment in rivals():
        try:
            fd = os.open(sidecar(fragment, "flock"), os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue  # gone: not running
        if _take(fd, fcntl.LOCK_SH):
            os.close(fd)  # nobody runs it: closing lets go at once
            continue
        fcntl.flock(own_fd, fcntl.LOCK_UN)
        fcntl.flock(manifest_fd, fcntl.LOCK_UN)
        return fd, _holder(fd, label), True
    return None


def _run_lock(path: Path) -> int:
    """The open sidecar `flock` file of `path`, created if need be."""
    with files.disk_errors(path.parent):
        files.make_folder(path.parent)
        return os.open(sidecar(path, "flock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


@contextlib.contextmanager
def _gate(path: Path) -> Iterator[None]:
    """A moment's lock (`.<lock name>.gate`) for shards looking at each other's locks."""
    with files.disk_errors(path.parent):
        fd = os.open(sidecar(path, "gate"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _take(fd: int, how: int) -> bool:
    """Take a `flock` (LOCK_EX or LOCK_SH) without waiting; False when it is held."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int, label: str = "") -> str:
    """` (shard 1/2, pid 123)`: who holds a run lock, as far as its file says."""
    pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
    parts = [part for part in (label, f"pid {pid}" if pid.isdigit() else "") if part]
    return f" ({', '.join(parts)})" if parts else ""


def _sign(fd: int) -> None:
    """Write this process's id into a run lock it holds, for the messages of the others."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)


def _busy(wait: bool, on_wait: Callable[[str], None], what: str, who: str, hint: str) -> None:
    """Refuse (without `wait`, exit 2) or say that this run waits."""
    if not wait:
        raise UsageError(f"another gpti2 batch is running on {what}{who}", hint=hint)
    on_wait(f"waiting for another gpti2 batch on {what}{who} to finish…")


# -- files on disk --------------------------------------------------------------------


def file_sha256(path: Path) -> str | None:
    """The SHA-256 of a file's bytes, None when it cannot be read."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


class StatCache:
    """Digests of files by (size, mtime): a file whose size and modification time are
    those seen when it was last hashed is not hashed again."""

    def __init__(self, path: Path, *, deep: bool = False) -> None:
        self.path = path
        self.deep = deep  # hash every file, whatever the cache says
        self.entries: dict[str, list[Any]] = {}
        self.changed = False
        try:
            data = json.loads(path.read_bytes())
            if isinstance(data, dict):
                self.entries = {
                    k: v for k, v in data.items() if isinstance(v, list) and len(v) == 4
                }
        except (OSError, ValueError, RecursionError):
            pass

    def look(self, path: Path, key: str, *, deep: bool | None = None) -> tuple[str | None, bool]:
        """(digest, is an emulator image) of the file at `path`; (None, False) when it is
        not a readable regular file."""
        from gpti2 import images

        try:
            st = os.stat(path)
        except OSError:
            return None, False
        if not os.path.isfile(path):
            return None, False
        seen = self.entries.get(key)
        if (
            not (self.deep if deep is None else deep)
            and seen
            and seen[0] == st.st_size
            and seen[1] == st.st_mtime_ns
        ):
            return seen[2], bool(seen[3])
        digest = file_sha256(path)
        if digest is None:
            return None, False
        emulator = images.is_emulator_file(path)
        self.remember(key, st, digest, emulator)
        return digest, emulator

    def remember(self, key: str, st: os.stat_result, digest: str, emulator: bool) -> None:
        self.entries[key] = [st.st_size, st.st_mtime_ns, digest, emulator]
        self.changed = True

    def save(self) -> None:
        if not self.changed:
            return
        with contextlib.suppress(OSError, UsageError):  # only a cache: never fail a run
            body = json.dumps(self.entries, separators=(",", ":")).encode()
            files.write_atomic(self.path, body, force=True)
            self.changed = False
