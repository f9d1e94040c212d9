"""`gpti2 auth`: the token in the OS keyring, GPTI2_TOKEN, or the explicit fallback file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from gpti2.cli.common import JsonOption, QuietOption, Ui, command_app, enter, shell_quote

if TYPE_CHECKING:
    from gpti2.client import Credentials
    from gpti2.credentials import Session, Token
    from gpti2.settings import Settings
    from gpti2.signin import Who

app = command_app("Sign in: store, show and remove the API token.")


@app.command("login")
def login(
    ctx: typer.Context,
    with_token: Annotated[
        bool, typer.Option("--with-token", help="Read the token from stdin (for scripts).")
    ] = False,
    email: Annotated[
        str | None,
        typer.Option(
            "--email",
            help="Sign in with this email address and a password (servers with email"
            " sign-in: api shipany).",
            metavar="ADDRESS",
        ),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="With --email: read the password from stdin."),
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
    """Store a token (or, with --email, sign in) for the active profile and host.

    The server checks it first where it can; a refused one is not stored."""
    from gpti2 import credentials
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    if settings.base_url == "local":
        raise UsageError(
            "the local emulator needs no sign-in",
            hint="each command with --base-url local signs in to its own emulator by itself",
        )
    if email is not None and with_token:
        raise UsageError("--email signs in with a password; --with-token reads a token")
    if password_stdin and email is None:
        raise UsageError("--password-stdin goes with --email ADDRESS")
    if not insecure_storage:  # before asking: a pasted token is never wasted
        with _keyring_hint(with_token, email, password_stdin):
            credentials.check_keyring(settings)
    if email is not None:
        token, session, who = _sign_in(
            ui, settings, email.strip(), password_stdin, insecure_storage
        )
    else:
        token = _read_token(ui, settings, with_token, insecure_storage)
        session, who = _check_token(ui, settings, token)
    with _keyring_hint(with_token, email, password_stdin):
        saved = credentials.store(
            settings, token, insecure_storage=insecure_storage, session=session
        )
    if session is not None and not (
        settings.auth_scheme == "cookie" and settings.sources["auth_scheme"].startswith("config")
    ):
        from gpti2.settings import save_value

        save_value(settings.path, settings.profile, "auth_scheme", "cookie")
    _say_signed_in(ui, settings, saved, who)


def _read_token(ui: Ui, settings: Settings, with_token: bool, insecure_storage: bool) -> str:
    from gpti2 import credentials
    from gpti2.errors import UsageError

    if with_token:
        token = ui.env.stdin_.read().strip()
    elif ui.env.isatty("stdin"):
        import getpass

        token = getpass.getpass(f"Token for {credentials.account(settings)}: ").strip()
    else:
        raise UsageError(
            "no terminal to ask for the token",
            hint="pipe it in: `echo $TOKEN | gpti2 auth login --with-token"
            + (" --insecure-storage" if insecure_storage else "")
            + "`",
        )
    problem = credentials.token_problem(token)
    if problem:
        raise UsageError(f"the token {problem}", hint="paste the token alone")
    return token


def _sign_in(
    ui: Ui, settings: Settings, email: str, password_stdin: bool, insecure_storage: bool
) -> tuple[str, Session, Who]:
    """Sign in with email and password; (cookie value, what to store with it, who)."""
    from gpti2 import credentials, signin
    from gpti2.client import Credentials
    from gpti2.dialects import get
    from gpti2.errors import AuthError, UsageError

    dialect = get(settings.api)
    if not dialect.sign_in_route:
        raise UsageError(
            f"api {settings.api} has no email sign-in",
            hint="for a ShipAny Two site: `gpti2 config set api shipany`; else paste a"
            " token with `gpti2 auth login`",
        )
    host = credentials.account(settings).split("@", 1)[1]
    if password_stdin:
        password = ui.env.stdin_.readline().rstrip("\r\n")
    elif ui.env.isatty("stdin"):
        import getpass

        password = getpass.getpass(f"Password for {email} at {host}: ")
    else:
        raise UsageError(
            "no terminal to ask for the password",
            hint=f"pipe it in: `gpti2 auth login --email {shell_quote(email)} --password-stdin"
            + (" --insecure-storage" if insecure_storage else "")
            + " < FILE`",
        )
    if not password:
        raise UsageError("the password is empty")
    with ui.client(settings) as client, ui.spinner(f"signing in to {host}…"):
        signed = signin.sign_in(client, email, password)
        del password
        client.credentials = Credentials(signed.value, "cookie", signed.cookie_name)
        who = signin.who_am_i(client)
    if who is None:  # it set a cookie it does not take back: nothing is stored
        raise AuthError(
            f"{host} set a session cookie ({signed.cookie_name}) that it then did not accept",
            hint="is `api` right for this site? see `gpti2 config list`",
        )
    expires = who.expires or signed.expires
    who = signin.Who(who.email or signed.email, who.name or signed.name, expires)
    return signed.value, credentials.Session(signed.cookie_name, expires, who.email), who


def _check_token(ui: Ui, settings: Settings, token: str) -> tuple[Session | None, Who | None]:
    """Ask the server about a pasted token before it is stored: (what to store with it, who
    it belongs to); a refused token is exit 3. An unreachable server leaves it unchecked."""
    from gpti2 import credentials, signin
    from gpti2.dialects import get
    from gpti2.errors import AuthError, ServerError

    dialect = get(settings.api)
    # One attempt, no retries: a check, not a paid request; an unreachable server is said.
    quick = settings.with_values(retries=0)
    names: tuple[str | None, ...] = (None,)
    if settings.auth_scheme == "cookie" and settings.sources["cookie_name"].startswith("default"):
        names = dialect.cookie_names(settings.base_url) or (None,)
    host = credentials.account(settings).split("@", 1)[1]
    try:
        with ui.client(quick) as client, ui.spinner(f"checking the token with {host}…"):
            for name in names:
                client.credentials = session_credentials(token, settings, name)
                who = signin.who_am_i(client)
                if who is not None:
                    break
    except ServerError as exc:
        ui.warn(f"could not check the token with {host} ({exc.message}); storing it unchecked")
        return None, None
    if who is None:
        raise AuthError(
            f"{host} refused the token; nothing was stored",
            hint="check that it is the whole token, for this site (--base-url)",
        )
    if name is None or not dialect.session_cookie:
        return None, who
    return credentials.Session(name, who.expires, who.email), who


def session_credentials(token: str, settings: Settings, cookie_name: str | None) -> Credentials:
    from gpti2.session import credentials_for

    return credentials_for(token, settings, cookie_name)


def _say_signed_in(ui: Ui, settings: Settings, saved: Token, who: Who | None) -> None:
    """The one line saying who is signed in where (and the JSON answer)."""
    from gpti2 import credentials, signin

    user = credentials.account(settings)
    host = user.split("@", 1)[1]
    if ui.state.json:
        ui.out_json(
            {
                "profile": settings.profile,
                "account": user,
                "storage": saved.source,
                "location": saved.location,
                "checked": who is not None,
                "user": None if who is None else {"email": who.email, "name": who.name},
                "expiresAt": None if saved.expires is None else signin.iso(saved.expires),
            }
        )
    where = "in the keyring" if saved.source == "keyring" else f"in {saved.location}"
    what = "session" if saved.cookie_name else "token"
    if who is None:
        line = f"stored the {what} for {user} {where}"
    elif who.email or who.name:
        until = f" until {signin.when(saved.expires)}" if saved.expires else ""
        line = f"signed in to {host} as {who.label}{until}; {what} stored {where}"
    else:
        line = f"{host} accepted the {what}; stored it for {user} {where}"
    ui.info(line)
    if saved.source == "file":
        ui.warn(f"the {what} is stored in plain text in {saved.location} (mode 0600)")
    if os.environ.get(credentials.ENV_VAR, "").strip():
        ui.warn(f"{credentials.ENV_VAR} is set and takes precedence until you unset it")


@contextlib.contextmanager
def _keyring_hint(
    with_token: bool, email: str | None = None, password_stdin: bool = False
) -> Iterator[None]:
    """A keyring problem, with the ways out written for how the token is given."""
    from gpti2 import credentials

    try:
        yield
    except (credentials.KeyringUnavailable, credentials.KeyringRefused) as exc:
        again = "gpti2 auth login --insecure-storage"
        if with_token:
            again = "echo $TOKEN | gpti2 auth login --with-token --insecure-storage"
        elif email is not None:
            again = f"gpti2 auth login --email {shell_quote(email)} --insecure-storage"
            if password_stdin:
                again = f"echo $PASSWORD | {again} --password-stdin"
        exc.hint = (
            f"set the {credentials.ENV_VAR} environment variable, or run `{again}` to keep"
            " the token in a plain-text file readable only by you"
        )
        raise


@app.command("status")
def status(ctx: typer.Context, json_out: JsonOption = False, quiet: QuietOption = False) -> None:
    """Show which token is in use, where it comes from, and for which host.

    Where the server can say (api shipany), also whose session it is and until when."""
    from gpti2 import credentials, signin
    from gpti2.dialects import get
    from gpti2.errors import AuthError, CredentialsRefused
    from gpti2.session import login_hint

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    token = credentials.load(settings)
    host = credentials.account(settings).split("@", 1)[1]
    answer = {
        "profile": settings.profile,
        "host": host,
        "source": token.source if token else None,
        "token": token.masked if token else None,
        "location": token.location if token else None,
    }
    error: AuthError | None = None
    who = None
    if token is None:
        error = AuthError(
            f"not signed in to {host} (profile {settings.profile})", hint=login_hint(settings)
        )
    elif get(settings.api).session_route and settings.base_url != "local":
        # The server decides: better-auth pushes a session's end back as it is used.
        with ui.client(settings, auth=True) as client:
            who = signin.who_am_i(client)
        if who is None:
            error = CredentialsRefused(
                f"the session for {credentials.account(settings)} has expired or was"
                " signed out (the server says: not signed in)",
                hint=login_hint(settings, token),
            )
        elif who.expires and token.cookie_name and who.expires != token.expires:
            _keep_expiry(settings, token, who.expires)
        answer["signedIn"] = error is None
        answer["user"] = None if who is None else {"email": who.email, "name": who.name}
        expires = (who.expires if who else None) or (token.expires if token else None)
        answer["expiresAt"] = None if expires is None else signin.iso(expires)
    if ui.state.json:
        ui.out_json(answer)
    if error is not None:
        raise error.after_answer() if ui.state.json else error
    assert token is not None
    if ui.state.json:
        return
    ui.out(f"profile: {settings.profile}")
    ui.out(f"host: {host}")
    ui.out(f"source: {token.source}" + (f" ({token.location})" if token.location else ""))
    ui.out(f"token: {token.masked}")
    if who is not None:
        ui.out(f"account: {who.label}")
        if answer.get("expiresAt"):
            ui.out(f"expires: {signin.when(who.expires or token.expires or 0)}")
    if token.source == "file":
        ui.warn(f"the token is stored in plain text in {token.location}")
    if token.warning:
        ui.warn(token.warning)


def _sign_out(ui: Ui, settings: Settings) -> None:
    """End the stored session on the server (better-auth's sign-out); say so when that
    fails, then remove it here anyway."""
    from gpti2 import credentials, signin
    from gpti2.errors import Gpti2Error

    try:
        token = credentials.load(settings)
    except Gpti2Error:
        return
    if token is None or token.source == "env" or not token.cookie_name:
        return
    quick = settings.with_values(retries=0)
    try:
        with ui.client(quick, auth=True) as client:
            signin.sign_out(client)
    except Gpti2Error as exc:
        ui.warn(f"could not end the session on the server ({exc.message}); removing it here")


def _keep_expiry(settings: Settings, token: Token, expires: float) -> None:
    """Store the session's end as the server now says it (it moves as the session is
    used); a keyring that will not take it changes nothing."""
    import contextlib

    from gpti2 import credentials
    from gpti2.errors import AuthError

    if token.source not in ("keyring", "file"):
        return
    session = credentials.Session(token.cookie_name or "", expires, token.email)
    with contextlib.suppress(AuthError):
        credentials.store(
            settings, token.token, insecure_storage=token.source == "file", session=session
        )


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
    """Remove the stored token (keyring and file) for the active profile and host.

    A session from an email sign-in is ended on the server first."""
    from gpti2 import credentials

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    _sign_out(ui, settings)
    removed = credentials.remove(settings)
    if ui.state.json:
        ui.out_json({"account": credentials.account(settings), "removed": removed})
    elif removed:
        ui.info(f"removed the token for {credentials.account(settings)} from " + ", ".join(removed))
    else:
        ui.info(f"no stored token for {credentials.account(settings)}")
    if os.environ.get(credentials.ENV_VAR, "").strip():
        ui.warn(f"{credentials.ENV_VAR} is still set and will be used")
