"""`gpti2 serve`: run the local emulator of the API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from gpti2.cli.common import JsonOption, QuietOption, command_app, enter

app = command_app()


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port; 0 picks a free one.", min=0, max=65535)] = 8787,
    token: Annotated[
        list[str] | None,
        typer.Option("--token", help="Accepted token (repeatable); else GPTI2_EMULATOR_TOKENS."),
    ] = None,
    credits: Annotated[int, typer.Option(help="Credits every token starts with.", min=0)] = 100,
    job_cost: Annotated[int, typer.Option(help="Credits one job costs.", min=0)] = 1,
    job_seconds: Annotated[float, typer.Option(help="How long a job runs.", min=0)] = 2.0,
    images_per_job: Annotated[int, typer.Option(help="Images a job yields.", min=1)] = 1,
    db: Annotated[
        Path | None, typer.Option(help="SQLite file for jobs and credits (default: temporary).")
    ] = None,
    image_size: Annotated[int, typer.Option(help="Long side of images, pixels.", min=1)] = 512,
    latency: Annotated[float, typer.Option(help="Delay every response, seconds.", min=0)] = 0.0,
    fail_rate: Annotated[
        float, typer.Option(help="Fraction of requests answered 500.", min=0, max=1)
    ] = 0.0,
    rate_limit: Annotated[
        float, typer.Option(help="Requests per second per client before 429 (0: off).", min=0)
    ] = 0.0,
    job_fail_rate: Annotated[
        float, typer.Option(help="Fraction of jobs that end failed.", min=0, max=1)
    ] = 0.0,
    seed: Annotated[int | None, typer.Option(help="Seed for the injected faults.")] = None,
    api: Annotated[
        str,
        typer.Option(
            "--api",
            help="Dialect to serve: gpti2, or shipany (ShipAny Two's routes, envelope and"
            " email sign-in).",
            metavar="DIALECT",
        ),
    ] = "gpti2",
    user: Annotated[
        list[str] | None,
        typer.Option(
            "--user",
            help="With --api shipany: an account for email sign-in, EMAIL:PASSWORD"
            " (repeatable; else one is made and printed).",
            metavar="EMAIL:PASSWORD",
        ),
    ] = None,
    secure_cookies: Annotated[
        bool,
        typer.Option(
            "--secure-cookies",
            help="With --api shipany: name the session cookie __Secure-… as a site on"
            " https does (behind a TLS proxy).",
        ),
    ] = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Run the local emulator of the gpt-image2 API.

    It serves until Ctrl-C or SIGTERM, then exits 0.
    """
    import signal
    import threading

    from gpti2.emulator import Emulator, EmulatorConfig
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    from gpti2.dialects import DIALECTS

    if api not in DIALECTS:
        raise UsageError(f"unknown --api {api!r}", hint="use " + " or ".join(DIALECTS))
    users = list(user or [])
    for item in users:
        email, colon, password = item.partition(":")
        if not (colon and "@" in email and password):
            raise UsageError(f"bad --user {item!r}", hint="write it EMAIL:PASSWORD")
    tokens = list(token or [])
    if not tokens:
        tokens = [t.strip() for t in os.environ.get("GPTI2_EMULATOR_TOKENS", "").split(",")]
        tokens = [t for t in tokens if t]
    config = EmulatorConfig(
        host=host,
        port=port,
        tokens=tokens,
        credits=credits,
        job_cost=job_cost,
        job_seconds=job_seconds,
        images_per_job=images_per_job,
        db=db,
        image_size=image_size,
        latency=latency,
        fail_rate=fail_rate,
        rate_limit=rate_limit,
        job_fail_rate=job_fail_rate,
        seed=seed,
        log=ui.info if ui.state.verbose else None,
        api=api,
        users=users,
        secure_cookies=secure_cookies,
    )
    try:
        emulator = Emulator(config)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host} port {port}: {exc.strerror or exc}", hint=_bind_hint(exc)
        ) from None

    hurry = threading.Event()

    def again(signum: int, frame: object) -> None:
        hurry.set()  # stop waiting for stuck clients; the clean-up itself still runs

    def stop(signum: int, frame: object) -> None:
        # The first Ctrl-C or SIGTERM stops the server; more of them (an impatient user, a
        # supervisor that signals twice) only stop the wait for requests in flight and
        # never cut the clean-up short: exit 0, no temporary folder left behind.
        # (A Python handler, not SIG_IGN: a signal already pending when SIG_IGN is set
        # makes Python raise "signal ignored due to race condition".)
        signal.signal(signal.SIGINT, again)
        signal.signal(signal.SIGTERM, again)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:  # a signal may come as soon as the address is out: the clean-up covers it
        sign_in = emulator.dialect.banner() if emulator.dialect is not None else []
        if ui.state.json:
            ui.out_json(
                {
                    "url": emulator.url,
                    "api": api,
                    "token": emulator.generated_token,
                    "signIn": sign_in,
                }
            )
        else:
            ui.out(f"gpti2 emulator listening on {emulator.url}")
            if emulator.generated_token and emulator.dialect is None:
                ui.out(f"token: {emulator.generated_token}")
            if sign_in:
                ui.out(f"api: {api}")
            for line in sign_in:
                ui.out(line)
        emulator.serve_forever()
    except KeyboardInterrupt:
        ui.info("stopping")
    finally:
        emulator.shutdown(hurry)


def _bind_hint(exc: OSError) -> str:
    """The way out of an address the system would not bind."""
    import errno

    if exc.errno in (errno.EADDRINUSE, errno.EACCES):
        return "pick another port with --port N, or --port 0 for a free one"
    return "--host takes an address of this machine, such as 127.0.0.1"
