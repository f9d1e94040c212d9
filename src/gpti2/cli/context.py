"""The wiring of one invocation: its state, its terminal and environment, its settings and
its HTTP client. Output lives in `common.Ui`; this module decides, it never prints.

Kept free of heavy imports: `gpti2 --help` loads this module.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpti2.client import ApiClient, Credentials
    from gpti2.settings import Settings


class Environment:
    """The streams, terminals and environment variables a command sees.

    Every field left as None means "the process's own, read when used", so an
    Environment made before a test runner swaps `sys.stdout` still follows it. Tests
    replace what they need (`Environment(stderr_isatty=True)`) instead of patching `sys`.
    """

    def __init__(
        self,
        stdin: IO[str] | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        stdin_isatty: bool | None = None,
        stdout_isatty: bool | None = None,
        stderr_isatty: bool | None = None,
        vars: Mapping[str, str] | None = None,
    ) -> None:
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.stdin_isatty, self.stdout_isatty = stdin_isatty, stdout_isatty
        self.stderr_isatty = stderr_isatty
        self.vars = vars

    @property
    def stdin_(self) -> IO[str]:
        return self.stdin if self.stdin is not None else sys.stdin

    @property
    def stdout_(self) -> IO[str]:
        return self.stdout if self.stdout is not None else sys.stdout

    @property
    def stderr_(self) -> IO[str]:
        return self.stderr if self.stderr is not None else sys.stderr

    @property
    def environ(self) -> Mapping[str, str]:
        return self.vars if self.vars is not None else os.environ

    def isatty(self, stream: str) -> bool:
        """Whether `stdin`, `stdout` or `stderr` is a terminal."""
        forced = getattr(self, f"{stream}_isatty")
        if forced is not None:
            return forced
        handle = getattr(self, f"{stream}_")
        try:
            return bool(handle.isatty())
        except (AttributeError, ValueError):  # closed or not a real stream
            return False

    def flag(self, name: str) -> bool:
        """An environment variable used as a switch (set, and not 0/false/no)."""
        return self.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


class State:
    """Root options and output mode of one invocation (the click context's obj)."""

    def __init__(
        self,
        base_url: str | None = None,
        profile: str | None = None,
        timeout: float | None = None,
        retries: int | None = None,
        no_progress: bool = False,
        allow_insecure_http: bool = False,
        verbose: bool = False,
        json: bool = False,
        quiet: bool = False,
        env: Environment | None = None,
    ) -> None:
        self.base_url, self.profile = base_url, profile
        self.timeout, self.retries = timeout, retries
        self.no_progress, self.allow_insecure_http = no_progress, allow_insecure_http
        self.verbose, self.json, self.quiet = verbose, json, quiet
        self.env = Environment() if env is None else env

    def flags(self, **command_flags: Any) -> dict[str, Any]:
        """Root flags plus a command's own, for `settings.resolve`."""
        return {
            "base_url": self.base_url,
            "profile": self.profile,
            "timeout": self.timeout,
            "retries": self.retries,
            **command_flags,
        }

    def root_pairs(self) -> list[tuple[str, str]]:
        """The `--base-url`/`--profile` the user gave, for hints that suggest a command."""
        pairs = []
        if self.base_url is not None:
            pairs.append(("--base-url", self.base_url))
        if self.profile is not None:
            pairs.append(("--profile", self.profile))
        return pairs


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job): unwound like Ctrl-C, so nothing partial is left."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def terminate_like_interrupt() -> None:
    """Make SIGTERM unwind like Ctrl-C (from the main thread only, where signals go)."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def resolve_settings(
    state: State,
    flag_names: dict[str, str] | None = None,
    new_profile: bool = False,
    **flags: Any,
) -> Settings:
    """Effective settings: these flags over the environment, profile and defaults."""
    from gpti2.settings import resolve

    return resolve(
        state.flags(**flags),
        env=state.env.environ,
        flag_names=flag_names,
        missing_profile_ok=new_profile,
    )


@contextlib.contextmanager
def open_client(
    state: State,
    settings: Settings,
    *,
    auth: bool = False,
    log: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
    pooled: bool = True,
    credentials: Credentials | None = None,
) -> Iterator[ApiClient]:
    """The HTTP client for these settings (starting the emulator for `local`); `pooled`
    as in `ApiClient`."""
    from gpti2.session import open_client as open_session

    with open_session(
        settings,
        auth=auth,
        allow_insecure_http=state.allow_insecure_http,
        log=log if state.verbose else None,
        warn=warn,
        pooled=pooled,
        credentials=credentials,
    ) as client:
        yield client
