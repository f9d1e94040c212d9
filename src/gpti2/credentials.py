"""Where the token lives: GPTI2_TOKEN, the OS keyring, or the explicit 0600 fallback file."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gpti2.errors import AuthError
from gpti2.settings import Settings

SERVICE = "gpti2"
ENV_VAR = "GPTI2_TOKEN"
KEYRING_TIMEOUT = 3.0
NO_KEYRING_HINT = (
    "set the GPTI2_TOKEN environment variable, or run `gpti2 auth login --insecure-storage`"
    " to keep the token in a plain-text file readable only by you"
)

T = TypeVar("T")


class KeyringUnavailable(AuthError):
    """No keyring backend works here (none installed, or it does not answer)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"no usable keyring: {why}", hint=NO_KEYRING_HINT)


class KeyringRefused(AuthError):
    """A keyring exists but refused the operation (locked, access denied)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the keyring refused: {why}", hint=NO_KEYRING_HINT)


@dataclass(frozen=True)
class Token:
    """A token and where it came from: env, keyring or file."""

    token: str
    source: str
    location: str | None = None
    warning: str | None = None  # something the user should fix, said once per command
    # A session an email sign-in stored: the cookie it came in, when it ends, whose it is.
    cookie_name: str | None = None
    expires: float | None = None
    email: str | None = None

    def __post_init__(self) -> None:
        from gpti2.display import add_secret

        add_secret(self.token)

    @property
    def masked(self) -> str:
        return mask(self.token)

    def __repr__(self) -> str:
        return f"Token(source={self.source!r}, token={self.masked!r})"


def mask(token: str) -> str:
    """The first 4 characters, then an ellipsis (only the ellipsis when they are not plain
    printable ASCII: a stored value may hold anything)."""
    head = token[:4]
    return (head if head.isascii() and head.isprintable() else "") + "…"


def account(settings: Settings) -> str:
    """`<profile>@<host[:port]>`, the keyring user name for these settings."""
    netloc = urlsplit(settings.base_url).netloc or settings.base_url
    return f"{settings.profile}@{netloc.rsplit('@', 1)[-1].lower()}"


def token_file() -> Path:
    """The fallback file (only written with --insecure-storage)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("gpti2")) / "tokens.json"


# -- keyring, every call bounded --------------------------------------------------------


def _bounded(call: Callable[[], T]) -> T:
    """Run a keyring call in a thread; a call that does not return in 3 s is no keyring."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="gpti2-keyring", daemon=True)
    thread.start()
    thread.join(KEYRING_TIMEOUT)
    if thread.is_alive():
        raise KeyringUnavailable(
            f"it did not answer within {KEYRING_TIMEOUT:g} s"
            " (a locked keyring, or no D-Bus session?)"
        )
    if "error" in outcome:
        _raise_keyring_error(outcome["error"])
    return outcome["value"]


def _raise_keyring_error(exc: BaseException) -> None:
    import keyring.errors

    if isinstance(exc, keyring.errors.NoKeyringError):
        raise KeyringUnavailable("no keyring backend is available") from None
    if isinstance(exc, keyring.errors.InitError):
        raise KeyringUnavailable(str(exc) or type(exc).__name__) from None
    if isinstance(exc, keyring.errors.KeyringError | OSError):
        raise KeyringRefused(str(exc) or type(exc).__name__) from None
    # D-Bus and Secret Service libraries raise their own types when there is no session.
    name = type(exc).__module__ + "." + type(exc).__name__
    if any(part in name.lower() for part in ("dbus", "jeepney", "secretstorage")):
        raise KeyringUnavailable(f"{type(exc).__name__}: {exc}") from None
    raise exc


def _backend() -> Any:
    import keyring

    backend = keyring.get_keyring()
    if getattr(backend, "priority", 1) <= 0:  # the "fail" backend, or an empty chain
        raise KeyringUnavailable("no keyring backend is available")
    return backend


def keyring_get(user: str) -> str | None:
    return _bounded(lambda: _backend().get_password(SERVICE, user))


def check_keyring(settings: Settings) -> None:
    """Raise KeyringUnavailable or KeyringRefused now when the keyring cannot hold a token,
    so `auth login` says so before the user pastes one."""
    keyring_get(account(settings))


def keyring_set(user: str, token: str) -> None:
    _bounded(lambda: _backend().set_password(SERVICE, user, token))


def keyring_delete(user: str) -> bool:
    """Remove the entry; False when there was none."""
    import keyring.errors

    def delete() -> bool:
        try:
            _backend().delete_password(SERVICE, user)
        except keyring.errors.PasswordDeleteError:
            return False
        return True

    return _bounded(delete)


# -- the plain-text fallback file -------------------------------------------------------


def _read_file(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise AuthError(f"cannot read the token file {path}: {why}") from None
    return {k: v for k, v in data.items() if isinstance(v, str)} if isinstance(data, dict) else {}


def _write_file(path: Path, tokens: dict[str, str]) -> None:
    """Write the file with mode 0600 from its first byte, in a 0700 folder, atomically."""
    from gpti2.files import write_atomic

    data = json.dumps(tokens, indent=2, sort_keys=True).encode()
    write_atomic(path, data, force=True, private=True)


# -- what the commands use --------------------------------------------------------------


def store(
    settings: Settings,
    token: str,
    *,
    insecure_storage: bool,
    session: Session | None = None,
) -> Token:
    """Save the token in the keyring, or with `insecure_storage` in the 0600 file; with
    `session`, what an email sign-in says of it (cookie name, expiry, account) too."""
    user = account(settings)
    secret = token if session is None else session.encode(token)
    extra = {} if session is None else session.fields()
    if insecure_storage:
        path = token_file()
        tokens = _read_file(path)
        tokens[user] = secret
        _write_file(path, tokens)
        return Token(token, "file", str(path), **extra)
    keyring_set(user, secret)
    return Token(token, "keyring", f"{SERVICE} / {user}", **extra)


@dataclass(frozen=True)
class Session:
    """What is kept with a session cookie's value (stored as one JSON string)."""

    cookie_name: str
    expires: float | None
    email: str | None

    def encode(self, value: str) -> str:
        return json.dumps({"session": value, **self.fields()}, sort_keys=True)

    def fields(self) -> dict[str, Any]:
        return {"cookie_name": self.cookie_name, "expires": self.expires, "email": self.email}


def _stored(secret: str, source: str, location: str, warning: str | None = None) -> Token:
    """A Token from what the keyring or file holds: a bare token, or a session record."""
    if secret.startswith('{"'):
        try:
            record = json.loads(secret)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("session"), str):
            expires = record.get("expires")
            return Token(
                record["session"],
                source,
                location,
                warning,
                cookie_name=record.get("cookie_name") or None,
                expires=float(expires) if isinstance(expires, int | float) else None,
                email=record.get("email") or None,
            )
    return Token(secret, source, location, warning)


def load(settings: Settings, env: dict[str, str] | None = None) -> Token | None:
    """The token in use: GPTI2_TOKEN, else the keyring, else the fallback file."""
    env = os.environ if env is None else env  # type: ignore[assignment]
    if env.get(ENV_VAR, "").strip():
        return Token(env[ENV_VAR].strip(), "env", ENV_VAR)
    user = account(settings)
    refused: KeyringRefused | None = None
    try:
        token = keyring_get(user)
    except KeyringUnavailable:
        token = None
    except KeyringRefused as exc:
        token, refused = None, exc
    if token:
        return _stored(token, "keyring", f"{SERVICE} / {user}")
    path = token_file()
    from_file = _read_file(path).get(user)
    if from_file:
        from gpti2.files import readable_by_others

        warning = None
        if readable_by_others(path):
            warning = f"the token file {path} can be read by other users; run: chmod 600 {path}"
        return _stored(from_file, "file", str(path), warning)
    if refused is not None:
        raise refused
    return None


def require(settings: Settings) -> Token:
    """The token in use, or the one "no token" error every command shares."""
    token = load(settings)
    if token is None:
        from gpti2.dialects import get

        command = get(settings.api).login_command  # `--email ADDRESS` where there is one
        hint = f"run `{command}`, or set {ENV_VAR}"
        if settings.base_url == "local":  # `auth login` refuses it: nothing to sign in to
            hint = "--base-url local needs no sign-in: each command makes its own token"
        raise AuthError(f"no token for {account(settings)}", hint=hint)
    return token


def remove(settings: Settings) -> list[str]:
    """Remove the stored token from the keyring and the file; where it was removed from."""
    user = account(settings)
    removed = []
    with contextlib.suppress(KeyringUnavailable):
        if keyring_delete(user):
            removed.append("keyring")
    path = token_file()
    tokens = _read_file(path)
    if tokens.pop(user, None) is not None:
        if tokens:
            _write_file(path, tokens)
        else:
            path.unlink()
        removed.append(f"file {path}")
    return removed


# -- what a token may hold ----------------------------------------------------------------


def token_problem(token: str) -> str | None:
    """Why `token` cannot go in an HTTP header (never quoting it), or None."""
    if not token:
        return "is empty"
    if not token.isascii():
        return "holds non-ASCII characters"
    if any(ch.isspace() for ch in token):
        return "holds white space (a space, tab or line break)"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in token):
        return "holds control characters"
    return None


def cookie_name_problem(name: str) -> str | None:
    """Why `name` cannot be a cookie name, or None."""
    from gpti2.settings import parse_value

    try:
        parse_value("cookie_name", name)
    except Exception as exc:  # the settings rule, said once
        return getattr(exc, "message", str(exc))
    return None
