"""The wire: what answers mean, apart from how they travel (client.py).

Reading JSON bodies, the `{code, message, data}` envelope, the human text of an error
body, and which error (and exit code) an HTTP status or an envelope code stands for.
How a dialect words its envelope errors lives with the dialect (dialects.py); the rule
here is the default for servers that speak the project's own API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from gpti2.display import shown
from gpti2.errors import (
    CredentialsRefused,
    CreditsError,
    Gpti2Error,
    RejectedError,
    ServerError,
)

# Decides the error of an envelope whose code is not success: (code, message) -> error.
EnvelopeErrors = Callable[[int, str], Gpti2Error]


class Reply(NamedTuple):
    """A finished HTTP exchange with its body read (bounded)."""

    status: int
    reason: str
    headers: Mapping[str, str]  # lower-case names
    body: bytearray
    url: str
    set_cookies: tuple[str, ...] = ()  # every Set-Cookie header, apart (they hold commas)

    def json(self) -> Any:
        """The body as JSON; a malformed response otherwise."""
        try:
            return loads(self.body)
        except ValueError:
            preview = error_text(self.body, self.headers.get("content-type", ""))
            raise ServerError(
                f"malformed response from {host_of(self.url)}: expected JSON"
                + (f", got {preview!r}" if preview else ", got an empty body")
            ) from None


def host_of(url: str) -> str:
    try:
        return shown(urlsplit(url).netloc, 100)
    except ValueError:
        return shown(url, 100)


def loads(data: bytes | bytearray | str) -> Any:
    """json.loads where a document nested too deeply is a ValueError like any bad JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def error_text(body: bytes | bytearray, content_type: str = "") -> str:
    """The human part of an error body: JSON error/message/detail, an HTML title, or a
    prefix; made safe to show (redacted, no control characters, at most 200 characters)."""
    if not body:
        return ""
    try:
        payload = loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("error", "message", "detail"):
            value = payload.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value.strip():
                return shown(value)
    text = bytes(body[:4096]).decode("utf-8", "replace")
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title:
        return shown(title.group(1))
    if "html" in content_type.lower() or text.lstrip().startswith("<"):
        text = re.sub(r"<[^>]+>", " ", text)
    return shown(text)


_CREDIT_WORDS = re.compile(r"credit|balance|insufficient|quota", re.IGNORECASE)
_AUTH_WORDS = re.compile(
    r"sign.?in|log.?in|unauthori|authori[sz]|not authenticated|session|token", re.IGNORECASE
)


def unwrap(payload: Any, errors: EnvelopeErrors | None = None) -> Any:
    """Unwrap a `{code, message, data}` envelope; raise its error when the code says so
    (`errors` words it, the project's own rule by default)."""
    if not (
        isinstance(payload, dict)
        and isinstance(payload.get("code"), int)
        and not isinstance(payload.get("code"), bool)
        and ("data" in payload or "message" in payload)
    ):
        return payload
    if payload["code"] in (0, 200):
        data = payload.get("data")
        return {} if data is None else data
    message = str(payload.get("message") or f"error code {payload['code']}")
    raise (errors or envelope_error)(payload["code"], message)


def envelope_error(code: int, message: str) -> Gpti2Error:
    """The error for an envelope whose code is not success (HTTP status may be 200), read
    from its words: credits (4), sign-in (3), anything else rejected (5)."""
    if _CREDIT_WORDS.search(message):
        return CreditsError(message, hint="top up your credits, then try again")
    if _AUTH_WORDS.search(message) or code in (401, 403):
        return CredentialsRefused(message, hint="sign in again with `gpti2 auth login`")
    return RejectedError(f"the server rejected the request: {message} (code {code})")


def error_for_status(reply: Reply) -> Gpti2Error:
    """Map an HTTP error status to the error (and exit code) the user sees."""
    text = error_text(reply.body, reply.headers.get("content-type", ""))
    status_line = f"{reply.status} {reply.reason}".strip()
    if text and reply.reason and text.lower().startswith(reply.reason.lower()):
        detail = f"{reply.status} {text}"  # not "401 Unauthorized: Unauthorized: sign in"
    else:
        detail = f"{status_line}: {text}" if text and text != status_line else status_line
    host = host_of(reply.url)
    if reply.status in (401, 403):
        return CredentialsRefused(
            f"not signed in or session expired ({detail})",
            hint="sign in with `gpti2 auth login`, or set GPTI2_TOKEN",
        )
    if reply.status == 402 or (400 <= reply.status < 500 and _CREDIT_WORDS.search(text)):
        return CreditsError(
            f"insufficient credits ({detail})", hint="top up your credits, then try again"
        )
    if 400 <= reply.status < 500 and reply.status not in (408, 429):
        rejected = RejectedError(f"the server rejected the request ({detail})")
        rejected.status = reply.status
        return rejected
    return ServerError(f"server error from {host}: {detail}")
