"""Opening an API client for the effective settings, including the `local` emulator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from gpti2.client import ApiClient, Credentials, Log
from gpti2.errors import CredentialsRefused
from gpti2.settings import Settings

if TYPE_CHECKING:
    from gpti2.credentials import Token

LOCAL = "local"


@contextlib.contextmanager
def open_client(
    settings: Settings,
    *,
    auth: bool = False,
    allow_insecure_http: bool = False,
    log: Log | None = None,
    warn: Log | None = None,
    pooled: bool = True,
    credentials: Credentials | None = None,
) -> Iterator[ApiClient]:
    """An ApiClient for `settings`; with `auth`, carrying the user's stored credentials
    (or the `credentials` given, for a sign-in that checks them before storing).

    The base URL `local` starts the built-in emulator on a free loopback port for the
    duration of the block, with a token (or session) it provisions itself.
    """
    from gpti2.dialects import ServerApi

    common = {
        "api": ServerApi.from_settings(settings),
        "timeout": settings.timeout,
        "retries": settings.retries,
        "allow_insecure_http": allow_insecure_http,
        "log": log,
        "pooled": pooled,
    }
    if settings.base_url == LOCAL:
        from gpti2.emulator import EmulatorConfig, running_emulator

        with running_emulator(EmulatorConfig(port=0, api=settings.api)) as emulator:
            credentials = emulator.client_credentials()
            with ApiClient(emulator.url, credentials=credentials, **common) as client:
                yield client
        return
    token = None
    if auth and credentials is None:
        from gpti2.credentials import require

        token = require(settings)
        if token.warning and warn is not None:
            warn(token.warning)
        credentials = credentials_for(token.token, settings, token.cookie_name)
    try:
        with ApiClient(settings.base_url, credentials=credentials, **common) as client:
            yield client
    except CredentialsRefused as exc:
        if token is not None:
            raise refused(exc, token, settings) from None
        raise


def credentials_for(token: str, settings: Settings, stored_cookie: str | None) -> Credentials:
    """How a token is sent: the profile's scheme; as a cookie, under the name the server
    set at sign-in unless the profile names one itself."""
    cookie_name = settings.cookie_name
    if stored_cookie and settings.sources["cookie_name"].startswith("default"):
        cookie_name = stored_cookie
    return Credentials(token, settings.auth_scheme, cookie_name)


def login_hint(settings: Settings, token: Token | None = None) -> str:
    """The sign-in command that fits the profile's dialect, and the stored token when
    there is one: its account, and the plain-text file when it was kept there."""
    from gpti2.dialects import get

    if settings.base_url == "local":
        return "--base-url local needs no sign-in: each command signs in to its own emulator"
    command = get(settings.api).login_command
    if token is not None and token.email:
        from gpti2.display import shell_quote

        command = command.replace("ADDRESS", shell_quote(token.email))
    if token is not None and token.source == "file":
        command += " --insecure-storage"
    return f"sign in {'again ' if token is not None else ''}with `{command}`"


def refused(exc: CredentialsRefused, token: Token, settings: Settings) -> CredentialsRefused:
    """Say which token the server refused, and the way out that fits where it came from."""
    from gpti2.credentials import ENV_VAR, account

    detail = exc.message
    if "(" in detail and detail.endswith(")"):
        detail = detail[detail.index("(") + 1 : -1]
    if token.source == "env":
        exc.message = f"the server refused the token in {ENV_VAR} ({detail})"
        exc.hint = f"check the value of {ENV_VAR}, or unset it to use the stored token"
    else:
        where = "the keyring" if token.source == "keyring" else token.location
        what = "session" if token.cookie_name else "token"
        exc.message = (
            f"the server refused the {what} for {account(settings)} from {where} ({detail})"
        )
        exc.hint = login_hint(settings, token)
    return exc
