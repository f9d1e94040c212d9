"""When a request is sent again (API.md 4): the two named policies and their pure rules.

Every request that makes an image costs money, and servers retry their providers
themselves, so a paid POST is sent again only where the server cannot have started work.
"""

from __future__ import annotations

import re
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import random
    from datetime import datetime

BACKOFF_BASE, BACKOFF_FACTOR, BACKOFF_CAP = 0.5, 2.0, 20.0
RETRY_AFTER_CAP = 60.0  # a longer wait is an error that says when to come back

_IDEMPOTENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# The server (or a proxy in front of it) says it did not take the request.
_NOT_TAKEN_STATUSES = frozenset({429, 502, 503, 504})


class RetryPolicy(Enum):
    """How a request may be repeated; every caller names one."""

    # GETs (status polls, downloads) and POST status queries: repeating them changes
    # nothing, so transport errors, 408, 429 and 5xx are all retried.
    IDEMPOTENT = "idempotent"
    # A request that makes an image (the quick route, a job start): retried only when the
    # connection failed before sending, or on 429/502/503/504. A 500, a read timeout or a
    # connection dropped after sending may mean the generation ran.
    PAID_POST = "paid POST"

    def retries_status(self, status: int) -> bool:
        """Whether an answer with this HTTP status is worth another attempt."""
        if self is RetryPolicy.PAID_POST:
            return status in _NOT_TAKEN_STATUSES
        return status in _IDEMPOTENT_STATUSES

    def retries_failure(self, *, not_sent: bool) -> bool:
        """Whether a transport failure is worth another attempt (`not_sent`: the connection
        failed before any of the request went out)."""
        return not_sent or self is RetryPolicy.IDEMPOTENT

    @property
    def paid(self) -> bool:
        return self is RetryPolicy.PAID_POST


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), uncapped; None
    when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    import email.utils
    from datetime import UTC, datetime

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max((when - now).total_seconds(), 0.0)


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: base 0.5 s, factor 2, cap 20 s."""
    import random

    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * BACKOFF_FACTOR**attempt)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def come_back_at(seconds: float, now: datetime | None = None) -> str:
    """`HH:MM:SS UTC` (with the date when it is not today) `seconds` from now."""
    from datetime import UTC, datetime, timedelta

    now = now or datetime.now(UTC)
    when = now + timedelta(seconds=seconds)
    if when.date() == now.date():
        return when.strftime("%H:%M:%S UTC")
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")
