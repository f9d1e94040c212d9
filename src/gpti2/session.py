"""Opening an API client for the effective settings, including the `local` emulator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from gpti2.client import ApiClient, Credentials, Log
from gpti2.settings import Settings

LOCAL = "local"


@contextlib.contextmanager
def open_client(
    settings: Settings,
    *,
    auth: bool = False,
    allow_insecure_http: bool = False,
    log: Log | None = None,
) -> Iterator[ApiClient]:
    """An ApiClient for `settings`; with `auth`, carrying the user's credentials.

    The base URL `local` starts the built-in emulator on a free loopback port for the
    duration of the block, with a token it provisions itself.
    """
    common = {
        "timeout": settings.timeout,
        "retries": settings.retries,
        "allow_insecure_http": allow_insecure_http,
        "log": log,
    }
    if settings.base_url == LOCAL:
        from gpti2.emulator import EmulatorConfig, running_emulator

        with running_emulator(EmulatorConfig(port=0)) as emulator:
            token = emulator.generated_token or emulator.tokens[0]
            with ApiClient(emulator.url, credentials=Credentials(token), **common) as client:
                yield client
        return
    credentials = None
    if auth:
        from gpti2.credentials import require

        credentials = Credentials(
            require(settings).token, settings.auth_scheme, settings.cookie_name
        )
    with ApiClient(settings.base_url, credentials=credentials, **common) as client:
        yield client
