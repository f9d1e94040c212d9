"""Signing in and asking who you are (API.md 2.0): email sign-in where the dialect has one
(better-auth on ShipAny Two), and the cheap check of a token or session before it is
stored."""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from gpti2.client import ApiClient, RetryPolicy, host_of
from gpti2.display import add_secret, shown
from gpti2.errors import AuthError, CredentialsRefused, Gpti2Error, RejectedError, ServerError

# The made-up id of the status query that checks a token where there is no session route:
# a server that knows the token answers "not found", one that does not answers 401/403.
PROBE_ID = "gpti2-sign-in-check"


@dataclass(frozen=True)
class SignedIn:
    """The session cookie a sign-in set, as it is stored."""

    value: str  # the signed value exactly as set (`token.signature`, URL-encoded)
    cookie_name: str
    expires: float | None  # epoch seconds
    email: str | None
    name: str | None


@dataclass(frozen=True)
class Who:
    """Whom the server says the credentials belong to (what it told us of them)."""

    email: str | None = None
    name: str | None = None
    expires: float | None = None  # of the session, epoch seconds

    @property
    def label(self) -> str:
        if self.email and self.name:
            return f"{self.email} ({self.name})"
        return self.email or self.name or "an account it did not name"


def parse_set_cookie(header: str, now: float | None = None) -> tuple[str, str, float | None]:
    """(name, value, expiry) of one Set-Cookie header; expiry from Max-Age, else Expires."""
    first, *attributes = header.split(";")
    name, _, value = first.partition("=")
    expires: float | None = None
    max_age: float | None = None
    for attribute in attributes:
        key, _, raw = attribute.strip().partition("=")
        key = key.strip().lower()
        if key == "max-age":
            try:
                max_age = float(raw.strip())
            except ValueError:
                continue
        elif key == "expires":
            try:
                expires = parsedate_to_datetime(raw.strip()).timestamp()
            except (TypeError, ValueError, IndexError):
                continue
    if max_age is not None:  # Max-Age wins over Expires (RFC 6265)
        expires = (time.time() if now is None else now) + max_age
    return name.strip(), value.strip(), expires


def sign_in(client: ApiClient, email: str, password: str) -> SignedIn:
    """Sign in with email and password on the base origin's sign-in route; the session
    cookie the server set. The password goes nowhere else and is never shown."""
    dialect = client.api.dialect
    if not dialect.sign_in_route:
        raise AuthError(f"api {dialect.name} has no email sign-in")
    add_secret(password)  # redacted from every log line and message from now on
    try:
        reply = client.send(
            "POST",
            dialect.sign_in_route,
            policy=RetryPolicy.IDEMPOTENT,  # a sign-in costs nothing; one more is harmless
            json_body={"email": email, "password": password},
            secret_body=True,
        )
    except CredentialsRefused as exc:
        raise AuthError(
            f"sign-in refused by {host_of(client.base_url)}: {_detail(exc)}",
            hint="check the email address and the password",
        ) from None
    except RejectedError as exc:
        raise AuthError(f"sign-in refused by {host_of(client.base_url)}: {_detail(exc)}") from None
    names = dialect.cookie_names(client.base_url)
    for header in reply.set_cookies:
        name, value, expires = parse_set_cookie(header)
        if name in names and value:
            add_secret(value)
            add_secret(value.partition(".")[0])
            user = _user(reply.json())
            return SignedIn(value, name, expires, user.get("email") or email, user.get("name"))
    raise ServerError(
        f"{host_of(client.base_url)} answered the sign-in without a session cookie"
        f" (expected {' or '.join(names)})",
        hint="is the base URL the site itself, and `api` its dialect?",
    )


def who_am_i(client: ApiClient) -> Who | None:
    """Ask the server whose credentials the client carries: a Who, or None when the server
    says they are not signed in (refused, expired, or signed out)."""
    dialect = client.api.dialect
    try:
        if dialect.session_route:
            answer = client.call(
                "GET", dialect.session_route, policy=RetryPolicy.IDEMPOTENT, auth=True
            )
            return _who(answer)
        from gpti2 import jobs

        jobs.status(client, PROBE_ID)
    except CredentialsRefused:
        return None
    except RejectedError:  # "not found": the server knew the token
        pass
    return Who()


def sign_out(client: ApiClient) -> bool:
    """End the session on the server too, where the dialect can; False where it cannot."""
    route = client.api.dialect.sign_out_route
    if not route or client.credentials is None or client.credentials.scheme != "cookie":
        return False
    client.call("POST", route, policy=RetryPolicy.IDEMPOTENT, json_body={}, auth=True)
    return True


def _who(answer: Any) -> Who | None:
    """A get-session answer: `{"session": {...}, "user": {...}}`, or null when signed out."""
    if not isinstance(answer, dict) or not isinstance(answer.get("user"), dict):
        return None
    user = _user(answer)
    session = answer.get("session") if isinstance(answer.get("session"), dict) else {}
    return Who(user.get("email"), user.get("name"), _instant(session.get("expiresAt")))


def _user(payload: Any) -> dict[str, str]:
    user = payload.get("user") if isinstance(payload, dict) else None
    if not isinstance(user, dict):
        return {}
    return {k: shown(user[k], 100) for k in ("email", "name") if isinstance(user.get(k), str)}


def _instant(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 time (`2026-12-05T08:10:06.143Z`)."""
    from datetime import datetime

    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _detail(exc: Gpti2Error) -> str:
    message = exc.message
    if "(" in message and message.endswith(")"):
        return message[message.index("(") + 1 : -1]
    return message


def iso(timestamp: float) -> str:
    """A moment for machines: `2026-12-05T08:10:06Z`."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def when(timestamp: float) -> str:
    """A moment for people: `2026-12-05 08:10 UTC`."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")
