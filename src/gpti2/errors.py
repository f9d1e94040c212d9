"""Exception types. Each carries the exit code and, where useful, a hint for the user."""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from gpti2.display import add_secret, shown

MESSAGE_LIMIT = 1000


class ExitCode(IntEnum):
    """The exit codes of CLI.md."""

    OK = 0
    INTERNAL = 1
    USAGE = 2
    AUTH = 3
    CREDITS = 4
    REJECTED = 5
    SERVER = 6
    JOB_FAILED = 7
    NOT_FINISHED = 8
    OUT_OF_DATE = 9
    INTERRUPTED = 130


class Gpti2Error(Exception):
    """An error the user should see as one `error:` line (and maybe a `hint:` line)."""

    exit_code: ExitCode = ExitCode.INTERNAL
    # True when the command already printed its answer on stdout (its --json object),
    # so the error must not add a second one.
    answered: bool = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __setattr__(self, name: str, value: Any) -> None:
        # Messages and hints may hold server text: they are made safe when set, so every
        # place that shows one (the error line, a batch summary, a traceback) is safe.
        if name in ("message", "hint") and value is not None:
            value = shown(value, MESSAGE_LIMIT)
            if name == "message":
                self.args = (value,)
        super().__setattr__(name, value)

    def after_answer(self) -> Gpti2Error:
        """Mark that stdout already holds the command's answer."""
        self.answered = True
        return self

    def redact(self, secret: str | None, mask: str = "[redacted]") -> Gpti2Error:
        """Remove `secret` from the message (a server may echo a token back)."""
        if secret:
            add_secret(secret)
            self.message = self.message.replace(secret, mask)
        return self


class UsageError(Gpti2Error):
    """Bad flag, bad local input, bad config, an output that would be overwritten."""

    exit_code = ExitCode.USAGE


class AuthError(Gpti2Error):
    """No token, a refused token, or no usable keyring."""

    exit_code = ExitCode.AUTH


class CredentialsRefused(AuthError):
    """The server refused the credentials that were sent (401 or 403)."""


class CreditsError(Gpti2Error):
    """The account has not enough credits."""

    exit_code = ExitCode.CREDITS


class RejectedError(Gpti2Error):
    """The server rejected the request (4xx other than auth and credits)."""

    exit_code = ExitCode.REJECTED
    status: int | None = None  # the HTTP status, when the rejection came as one


class ServerError(Gpti2Error):
    """Server or network failure after retries, or a malformed response."""

    exit_code = ExitCode.SERVER


class MayHaveRunError(ServerError):
    """A paid request failed after it was sent (a 500, a timeout, a dropped connection):
    the server may have generated, and charged, anyway; it is never sent again."""


class JobFailedError(Gpti2Error):
    """The job ended failed or canceled."""

    exit_code = ExitCode.JOB_FAILED


class JobNotFinishedError(Gpti2Error):
    """The job is still active (no --wait, or --wait-timeout reached)."""

    exit_code = ExitCode.NOT_FINISHED

    def __init__(self, message: str, hint: str | None = None, job: object = None) -> None:
        super().__init__(message, hint)
        self.job = job  # the last state seen


class OutOfDateError(Gpti2Error):
    """`batch --check` found images to generate."""

    exit_code = ExitCode.OUT_OF_DATE
