"""Outside text made fit to show: the one place where server, transport or file text
becomes part of a message.

The order is the rule: credentials are removed first, then escape sequences and control
characters, then white space is collapsed and the text cut. Cutting or collapsing first
could leave part of a secret, or hide one from the redaction.

Kept free of heavy imports: errors.py uses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_SECRET = 4  # shorter values would redact ordinary words

_secrets: set[str] = set()

# Terminal escape sequences, removed whole (not only their ESC): CSI, OSC (title,
# clipboard), DCS/SOS/PM/APC strings, other two-byte escapes, and their 8-bit forms.
_ESCAPES = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]?
    | \x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?
    | \x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?
    | \x1b[ -/]*[0-~]?
    | \x9b[0-?]*[ -/]*[@-~]?
    | [\x90\x98\x9d\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?
    """,
    re.VERBOSE,
)
# Control characters (C0, DEL, C1) and the invisible ones that reorder or hide text.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_CONTROLS_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]"
)


def add_secret(value: str | None) -> None:
    """Remember a credential: from now on it is redacted from everything shown."""
    if value and len(value) >= MIN_SECRET:
        _secrets.add(value)


def redact(text: str, extra: Iterable[str | None] = ()) -> str:
    """`text` with every known credential (and `extra` ones) replaced by [redacted]."""
    known = _secrets.union(s for s in extra if s and len(s) >= MIN_SECRET)
    for secret in sorted(known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def strip_controls(text: str) -> str:
    """Remove escape sequences; control characters become spaces."""
    return _CONTROLS.sub(" ", _ESCAPES.sub("", text))


def has_controls(text: str) -> bool:
    """True when `text` holds a control or escape character."""
    return bool(_CONTROLS.search(text))


def cut(text: str, limit: int | None) -> str:
    """The first `limit` characters (API.md: an error text is the first 200)."""
    return text if limit is None else text[:limit]


def shown(text: object, limit: int | None = 200, secrets: Iterable[str | None] = ()) -> str:
    """One safe line: redacted, escape sequences and controls removed, white space
    collapsed, cut at `limit` characters."""
    clean = strip_controls(redact(str(text), secrets))
    return cut(" ".join(clean.split()), limit)


def shown_block(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Several safe lines (a traceback): as `shown` but keeping line breaks and indents."""
    return _CONTROLS_BUT_NEWLINE.sub(" ", _ESCAPES.sub("", redact(text, secrets)))


def json_safe(text: str) -> str:
    """JSON text with DEL and C1 controls escaped too (json.dumps leaves them raw), so a
    terminal never receives them; still the same JSON value."""
    return re.sub("[\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", text)


def shell_quote(text: str) -> str:
    """Shell-quote a word of a command a hint suggests, as people type it: bare when safe,
    else in double quotes where they are safe, else single quotes."""
    import shlex

    if re.fullmatch(r"[\w@%+=:,./-]+", text):
        return text
    return f'"{text}"' if not any(c in text for c in '"$`\\!') else shlex.quote(text)
