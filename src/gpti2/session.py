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
) -> Iterator[ApiClient]:
    """An ApiClient for `settings`; with `auth`, carrying the user's credentials.

    The base URL `local` starts the built-in emulator on a free loopback port for the
    duration of the block, with a token it provisions itself.
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

        with running_emulator(EmulatorConfig(port=0)) as emulator:
            token = emulator.generated_token or emulator.tokens[0]
            with ApiClient(emulator.url, credentials=Credentials(token), **common) as client:
                yield client
        return
    credentials, token = None, None
    if auth:
        from gpti2.credentials import require

        token = require(settings)
        if token.warning and warn is not None:
            warn(token.warning)
        credentials = Credentials(token.token, settings.auth_scheme, settings.cookie_name)
    try:
        with ApiClient(settings.base_url, credentials=credentials, **common) as client:
            yield client
    except CredentialsRefused as exc:
        if token is not None:
            raise refused(exc, token, settings) from None
        raise


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
        exc.message = (
            f"the server refused the token for {account(settings)} from {where} ({detail})"
        )
        exc.hint = "sign in again with `gpti2 auth login`"
    return exc
