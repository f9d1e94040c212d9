"""File safety: every file gpti2 writes goes through here, and each rule lives here once.

- An output is checked before any request: its folder can be written, it is not a
  device, FIFO or socket, not a folder, not a symbolic link to nothing, and an existing
  file is only replaced with `--force` (regular files only; a link is replaced itself,
  never followed).
- Files are published atomically: written to `.NAME.XXXXXXXXXXXX.part` beside the
  target (NAME: the first 100 characters of the target's name), then linked (or, with
  force, renamed) into place.
- A temporary file is named before it is created, inside the guard that removes it, so
  no signal can land between its creation and its clean-up.
- A full disk (or any other write failure) is a UsageError naming the folder (exit 2),
  with nothing left behind.
- Secrets are created 0600 in a 0700 folder, never readable by others even for a moment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from gpti2.errors import UsageError

PART_SUFFIX = ".part"
NAME_KEPT = 100  # characters of a target's name that its temporary files keep
_RANDOM_CHARS = 12  # the hex digits that make each temporary name unique
FORCE_HINT = "pass --force to overwrite it"

_SPECIAL = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


def special_kind(mode: int) -> str | None:
    """'a FIFO', 'a block device', ... for a file mode that is not a regular file or folder."""
    for test, kind in _SPECIAL:
        if test(mode):
            return kind
    return None


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot use {path}: {exc.strerror or exc}") from None


def _followed(path: Path, link: os.stat_result) -> os.stat_result:
    """The stat of what a link points to; a UsageError for a link to nothing."""
    if not stat.S_ISLNK(link.st_mode):
        return link
    try:
        return os.stat(path)
    except OSError:
        target = os.readlink(path)
        raise UsageError(
            f"{path} is a symbolic link to {target}, which does not exist",
            hint="remove the link, or choose another output",
        ) from None


def check_target(path: Path, force: bool) -> None:
    """Refuse, before any request, an output file that must not or cannot be written."""
    link = _lstat(path)
    if link is not None:
        mode = _followed(path, link).st_mode
        kind = special_kind(mode)
        if kind:
            raise UsageError(
                f"{path} is {kind}, not a regular file",
                hint="--force replaces regular files only; choose another output",
            )
        if stat.S_ISDIR(mode):
            raise UsageError(f"{path} is a folder")
        if not force:
            raise UsageError(f"{path} already exists", hint=FORCE_HINT)
    check_folder(path.parent)


def check_folder(folder: Path) -> None:
    """Refuse a folder we could not create a file in (probing with a real file)."""
    probe = folder
    while True:
        link = _lstat(probe)
        if link is not None:
            if not stat.S_ISDIR(_followed(probe, link).st_mode):
                raise UsageError(f"cannot write into {folder}: {probe} is not a folder")
            break
        if probe.parent == probe:
            break
        probe = probe.parent
    with disk_errors(folder), Scratch(probe, "gpti2-probe") as scratch:
        scratch.new()


@contextlib.contextmanager
def disk_errors(folder: Path) -> Iterator[None]:
    """Turn a failed write (full disk, read-only, no permission) into one clear UsageError."""
    try:
        yield
    except UsageError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UsageError(
                f"no space left on the device holding {folder}; nothing was written",
                hint="free some space, or choose another output folder",
            ) from None
        if exc.errno is None:
            raise
        raise UsageError(
            f"cannot write into {folder}: {exc.strerror or exc}",
            hint="choose another output",
        ) from None


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Hold back SIGINT and SIGTERM for a few system calls (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _temp_name(name: str) -> str:
    """A fresh temporary name for the file `name`: `.NAME.XXXXXXXXXXXX.part`."""
    # os.urandom is what secrets.token_hex uses; importing secrets costs start-up.
    return f".{name[:NAME_KEPT]}.{os.urandom(_RANDOM_CHARS // 2).hex()}{PART_SUFFIX}"


# Every temporary file a Scratch of this process has named and not yet removed: what an
# interruption removes when workers may still be writing (never another process's files,
# which no name-matching rule could tell apart: `cat` and `cat.v2` share a prefix).
_live: set[Path] = set()
_live_lock = threading.Lock()


def remove_live_temps() -> None:
    """Remove this process's temporary files that are still there (after Ctrl-C, when
    worker threads that were writing them may never finish)."""
    with _live_lock:
        paths = list(_live)
        _live.clear()
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()


class Scratch:
    """Temporary files beside a target, removed when replaced by a newer one or when the
    block ends, however it ends. Use `with Scratch(folder, name) as s: handle = s.new()`."""

    def __init__(self, folder: Path, name: str, *, private: bool = False) -> None:
        self.folder = folder
        self.name = name
        self.private = private
        self._handles: list[BinaryIO] = []
        self._paths: list[Path] = []

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()

    @property
    def path(self) -> Path:
        """The newest temporary file."""
        return self._paths[-1]

    def new(self) -> BinaryIO:
        """A fresh empty temporary file (any earlier one is removed)."""
        self.discard()
        mode = 0o600 if self.private else 0o666  # the umask applies to 0o666
        while True:
            path = self.folder / _temp_name(self.name)
            self._paths.append(path)  # named first: the clean-up knows it before it exists
            with _live_lock:
                _live.add(path)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
            except FileExistsError:
                self._paths.pop()  # someone else's file: not ours to remove
                with _live_lock:
                    _live.discard(path)
                continue
            except BaseException:
                self.discard()
                raise
            handle = os.fdopen(fd, "wb")
            self._handles.append(handle)
            return handle

    def finish(self) -> Path:
        """Flush the newest file to disk, close it and return its path."""
        handle = self._handles[-1]
        if not handle.closed:
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
        return self.path

    def discard(self) -> None:
        with _shielded():
            for handle in self._handles:
                with contextlib.suppress(OSError):
                    handle.close()
            for path in self._paths:
                with contextlib.suppress(OSError):
                    path.unlink()
            with _live_lock:
                _live.difference_update(self._paths)
            self._handles.clear()
            self._paths.clear()


def make_folder(folder: Path, *, private: bool = False) -> None:
    """Create `folder` (and parents); 0700 for a folder that holds secrets."""
    link = _lstat(folder)
    if link is not None:
        _followed(folder, link)
    with disk_errors(folder):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700 if private else 0o777)


def publish(tmp: Path, path: Path, force: bool) -> None:
    """Give a finished temporary file its final name; without `force`, never replace."""
    if force:
        link = _lstat(path)
        if link is not None:  # checked again: it may have changed since the first check
            mode = link.st_mode  # a link is replaced itself, never followed
            kind = special_kind(mode)
            if kind or stat.S_ISDIR(mode):
                raise UsageError(
                    f"{path} is {kind or 'a folder'}, not a regular file",
                    hint="--force replaces regular files only; choose another output",
                )
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise UsageError(f"{path} already exists", hint=FORCE_HINT) from None
    except OSError:
        # Filesystems without hard links: fall back to a checked rename.
        if os.path.lexists(path):
            raise UsageError(f"{path} already exists", hint=FORCE_HINT) from None
        os.replace(tmp, path)
    else:
        tmp.unlink()


@contextlib.contextmanager
def atomic_output(path: Path, force: bool, *, private: bool = False) -> Iterator[BinaryIO]:
    """Yield a temporary file beside `path`; on success it becomes `path`, on failure it is
    gone. Without `force` an existing file is never replaced, even one that appeared
    meanwhile."""
    with disk_errors(path.parent):
        make_folder(path.parent, private=private)
        with Scratch(path.parent, path.name, private=private) as scratch:
            handle = scratch.new()
            yield handle
            tmp = scratch.finish()
            publish(tmp, path, force)  # the temporary name is gone: nothing to clean


def write_atomic(path: Path, data: bytes, force: bool, *, private: bool = False) -> None:
    """Write `data` to `path` atomically (`private`: mode 0600, for secrets)."""
    with atomic_output(path, force, private=private) as handle:
        handle.write(data)


def readable_by_others(path: Path) -> bool:
    """True when a file's mode lets the group or others read or write it."""
    try:
        return bool(os.stat(path).st_mode & 0o077)
    except OSError:
        return False
