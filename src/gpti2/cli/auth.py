"""`gpti2 auth`: the token in the OS keyring, GPTI2_TOKEN, or the explicit fallback file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Annotated

import typer

from gpti2.cli.common import JsonOption, QuietOption, command_app, enter

app = command_app("Sign in: store, show and remove the API token.")


@app.command("login")
def login(
    ctx: typer.Context,
    with_token: Annotated[
        bool, typer.Option("--with-token", help="Read the token from stdin (for scripts).")
    ] = False,
    insecure_storage: Annotated[
        bool,
        typer.Option(
            "--insecure-storage",
            help="Store the token in a plain-text file (mode 0600) instead of the keyring.",
        ),
    ] = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Store a token for the active profile and host."""
    from gpti2 import credentials
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    if not insecure_storage:  # before asking: a pasted token is never wasted
        with _keyring_hint(with_token):
            credentials.check_keyring(settings)
    if with_token:
        token = ui.env.stdin_.read().strip()
    elif ui.env.isatty("stdin"):
        import getpass

        token = getpass.getpass(f"Token for {credentials.account(settings)}: ").strip()
    else:
        raise UsageError(
            "no terminal to ask for the token",
            hint="pipe it in: echo $TOKEN | gpti2 auth login --with-token",
        )
    problem = credentials.token_problem(token)
    if problem:
        raise UsageError(f"the token {problem}", hint="paste the token alone")
    with _keyring_hint(with_token):
        saved = credentials.store(settings, token, insecure_storage=insecure_storage)
    if ui.state.json:
        ui.out_json(
            {
                "profile": settings.profile,
                "account": credentials.account(settings),
                "storage": saved.source,
                "location": saved.location,
            }
        )
    if saved.source == "file":
        ui.warn(f"the token is stored in plain text in {saved.location} (mode 0600)")
    else:
        ui.info(f"stored the token for {credentials.account(settings)} in the keyring")
    if os.environ.get(credentials.ENV_VAR, "").strip():
        ui.warn(f"{credentials.ENV_VAR} is set and takes precedence until you unset it")


@contextlib.contextmanager
def _keyring_hint(with_token: bool) -> Iterator[None]:
    """A keyring problem, with the ways out written for how the token is given."""
    from gpti2 import credentials

    try:
        yield
    except (credentials.KeyringUnavailable, credentials.KeyringRefused) as exc:
        again = "gpti2 auth login --insecure-storage"
        if with_token:
            again = "echo $TOKEN | gpti2 auth login --with-token --insecure-storage"
        exc.hint = (
            f"set the {credentials.ENV_VAR} environment variable, or run `{again}` to keep"
            " the token in a plain-text file readable only by you"
        )
        raise


@app.command("status")
def status(ctx: typer.Context, json_out: JsonOption = False, quiet: QuietOption = False) -> None:
    """Show which token is in use, where it comes from, and for which host."""
    from gpti2 import credentials
    from gpti2.errors import AuthError

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    token = credentials.load(settings)
    host = credentials.account(settings).split("@", 1)[1]
    if ui.state.json:
        ui.out_json(
            {
                "profile": settings.profile,
                "host": host,
                "source": token.source if token else None,
                "token": token.masked if token else None,
                "location": token.location if token else None,
            }
        )
    if token is None:
        error = AuthError(
            f"not signed in to {host} (profile {settings.profile})", hint=credentials.LOGIN_HINT
        )
        raise error.after_answer() if ui.state.json else error
    if ui.state.json:
        return
    ui.out(f"profile: {settings.profile}")
    ui.out(f"host: {host}")
    ui.out(f"source: {token.source}" + (f" ({token.location})" if token.location else ""))
    ui.out(f"token: {token.masked}")
    if token.source == "file":
        ui.warn(f"the token is stored in plain text in {token.location}")
    if token.warning:
        ui.warn(token.warning)


@app.command("token")
def token(ctx: typer.Context, json_out: JsonOption = False, quiet: QuietOption = False) -> None:
    """Print the token in use on stdout, for other tools."""
    from gpti2 import credentials

    ui = enter(ctx, json_out, quiet)
    found = credentials.require(ui.settings())
    if ui.state.json:
        ui.out_json({"token": found.token, "source": found.source})
        return
    ui.out(found.token)
    ui.info(f"from {found.source}" + (f" ({found.location})" if found.location else ""))


@app.command("logout")
def logout(ctx: typer.Context, json_out: JsonOption = False, quiet: QuietOption = False) -> None:
    """Remove the stored token (keyring and file) for the active profile and host."""
    from gpti2 import credentials

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    removed = credentials.remove(settings)
    if ui.state.json:
        ui.out_json({"account": credentials.account(settings), "removed": removed})
    elif removed:
        ui.info(f"removed the token for {credentials.account(settings)} from " + ", ".join(removed))
    else:
        ui.info(f"no stored token for {credentials.account(settings)}")
    if os.environ.get(credentials.ENV_VAR, "").strip():
        ui.warn(f"{credentials.ENV_VAR} is still set and will be used")
