"""`gpti2 job start|status|fetch`: the authenticated, asynchronous route."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpti2.cli.common import (
    ForceOption,
    JsonOption,
    QuietOption,
    Ui,
    command_app,
    enter,
    read_prompt,
)

if TYPE_CHECKING:
    from gpti2.jobrun import JobEvents, Outcome, Plan
    from gpti2.jobs import Job
    from gpti2.settings import Settings

app = command_app("Start jobs, follow them, and fetch their images.")

PollOption = Annotated[
    float | None,
    typer.Option(
        "--poll-interval",
        help="Seconds between polls at first (default 2, or GPTI2_POLL_INTERVAL); grows to 10.",
        min=0,
    ),
]
WaitTimeoutOption = Annotated[
    float, typer.Option("--wait-timeout", help="Give up waiting after this many seconds.", min=0)
]
WaitOption = Annotated[bool, typer.Option("--wait", help="Wait until the job has finished.")]
OutputDirOption = Annotated[
    Path | None,
    typer.Option("-o", "--output", help="Folder for the images (default: current).", metavar="DIR"),
]
IdArg = Annotated[str, typer.Argument(help="The job id (taskId).", metavar="ID")]


def _output_dir(output: Path | None, settings: Settings) -> Path:
    return (output or Path(settings.output_dir)).expanduser()


def _plan(
    settings: Settings,
    *,
    wait: bool,
    poll: float | None,
    timeout: float,
    folder: Path | None = None,
    force: bool = False,
) -> Plan:
    from gpti2.jobrun import Plan

    interval = settings.poll_interval if poll is None else poll
    return Plan(wait, interval, timeout, folder, force, settings.max_images)


def _events(ui: Ui, started: Callable[[Job], None] = lambda job: None) -> JobEvents:
    """How a job is shown: a spinner while asking, a live status line (its clock ticks on
    its own) while waiting, a progress bar per download."""
    from gpti2 import jobs
    from gpti2.jobrun import JobEvents

    @contextlib.contextmanager
    def waiting(task_id: str) -> Iterator[Callable[[Job, float], None]]:
        with ui.live(f"job {task_id}: waiting") as show:

            def update(job: Job, elapsed: float) -> None:
                word = (
                    job.status.value
                    if job.status is not jobs.JobStatus.UNKNOWN
                    else (f"unknown status {job.raw_status!r}")
                )
                pct = f" {job.progress:.0f}%" if job.progress is not None else ""
                show(f"job {task_id}: {word}{pct}")

            yield update

    return JobEvents(
        starting=lambda: ui.spinner("starting the job…"),
        started=started,
        asking=lambda task_id: ui.spinner(f"job {task_id}: asking for its status"),
        waiting=waiting,
        downloading=lambda job: ui.downloads(),
    )


def _said_of(ui: Ui, outcome: Outcome, plan: Plan) -> None:
    """What a person should know of a fetch: images left out, files kept."""
    job = outcome.job
    if len(job.images) > plan.max_images:
        ui.warn(
            f"job {job.task_id} lists {len(job.images)} images; took the first"
            f" {plan.max_images} (the max_images setting)"
        )
    for item in outcome.saved:
        if item.kept:
            ui.info(f"kept existing {item.path} (use --force to download again)")


@app.command("start")
def start(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help="What to draw; - reads it from stdin.")],
    feature_id: Annotated[
        str | None, typer.Option("--feature-id", help="Feature the job is billed under.")
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="What the job does (default text_to_image).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("-m", "--model", help="Job model id (default gpt-image-2-t2i).")
    ] = None,
    aspect_ratio: Annotated[
        str | None, typer.Option("-a", "--aspect-ratio", help="Shape of the image (default 1:1).")
    ] = None,
    image: Annotated[
        list[str] | None,
        typer.Option(
            "--image",
            help="Reference image: a local file (sent as a data: URL) or a URL. Repeatable.",
            metavar="FILE_OR_URL",
        ),
    ] = None,
    wait: WaitOption = False,
    output: OutputDirOption = None,
    force: ForceOption = False,
    poll_interval: PollOption = None,
    wait_timeout: WaitTimeoutOption = 600.0,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Start a job; print its id at once, then with --wait follow it and fetch its images."""
    from gpti2 import files, history, jobrun, jobs
    from gpti2.dialects import get
    from gpti2.errors import Gpti2Error, UsageError

    ui = enter(ctx, json_out, quiet)
    settings = ui.settings(
        flag_names={"job_model": "--model"},
        feature_id=feature_id,
        mode=mode,
        job_model=model,
        aspect_ratio=aspect_ratio,
    )
    text = read_prompt(prompt, ui)
    dialect = get(settings.api)
    refs = tuple(jobs.reference_image(item) for item in image or [])
    if any(ref.startswith("data:") for ref in refs) and not dialect.data_url_references:
        ui.warn(
            f"api {settings.api} passes reference images to its provider as given, and a"
            " local file goes as a data: URL, which providers may refuse; an https:// URL"
            " is safer"
        )
    mode = settings.mode
    if refs and settings.sources["mode"] == "default":
        mode = "image_to_image"  # --image alone says what the user means
    if mode == "image_to_image" and not refs:
        raise UsageError("--mode image_to_image needs at least one --image")
    folder = _output_dir(output, settings)
    if wait:
        files.check_folder(folder)
    # The dialect's model for the mode, unless one was chosen.
    model_id = settings.job_model
    if settings.sources["job_model"].startswith("default"):
        model_id = dialect.model_for(mode)
    request = jobs.StartRequest(
        text, settings.feature_id, mode, model_id, settings.aspect_ratio, refs
    )
    record = history.attempt("job start", request, settings, ui.env.environ, ui.warn)
    result: dict[str, object] = {}

    def started(job: Job) -> None:
        record.started_job(job.task_id)
        result.update(job.ids(), status=job.status.value, creditsRemaining=job.credits_remaining)
        if ui.state.json:
            ui.info(f"started job {job.task_id}")
        else:
            ui.out(job.task_id)  # before any waiting, so an interrupted wait can resume

    plan = _plan(
        settings, wait=wait, poll=poll_interval, timeout=wait_timeout, folder=folder, force=force
    )
    with record.failures(), ui.client(settings, auth=True) as client:
        try:
            outcome = jobrun.start(client, request, plan, _events(ui, started))
        except Gpti2Error as exc:  # exit 7/8: the one JSON answer still names the job
            if ui.state.json and result:
                last = getattr(exc, "job", None)
                if last is not None:
                    result["status"] = last.status.value
                error = {"code": int(exc.exit_code), "message": exc.message}
                ui.out_json({**result, "files": [], "error": error})
                exc.after_answer()
            raise
        record.wrote_files(outcome.saved)
    if not wait:
        if settings.base_url == "local":
            ui.note(
                "the local emulator stops with this command, and its jobs with it: "
                "add --wait, or start jobs against `gpti2 serve`"
            )
        if ui.state.json:
            ui.out_json(result)
        return
    _said_of(ui, outcome, plan)
    result["status"] = outcome.job.status.value
    if ui.state.json:
        ui.out_json({**result, "files": [s.as_json() for s in outcome.saved]})
    else:
        for item in outcome.saved:
            ui.out(str(item.path))


def _follow(
    ui: Ui,
    task_id: str,
    *,
    wait: bool,
    poll: float | None,
    timeout: float,
    fetch: bool = False,
    output: Path | None = None,
    force: bool = False,
) -> Outcome:
    """The one path of `job status` and `job fetch`: ask for the job (with `wait`, until it
    has ended); with `fetch`, also download its images into `output`, recording them in
    the history."""
    from gpti2 import files, history, jobrun

    settings = ui.settings()
    folder, record = None, None
    if fetch:
        folder = _output_dir(output, settings)
        files.check_folder(folder)  # before any request
        record = history.job_attempt(settings, ui.env.environ, ui.warn, "job fetch", task_id)
    plan = _plan(settings, wait=wait, poll=poll, timeout=timeout, folder=folder, force=force)
    failures = record.failures() if record is not None else contextlib.nullcontext()
    from gpti2.errors import RejectedError

    try:
        with failures, ui.client(settings, auth=True) as client:
            outcome = jobrun.follow(client, task_id, plan, _events(ui))
            if record is not None:
                record.wrote_files(outcome.saved)
    except RejectedError as exc:
        if exc.status == 404 and settings.base_url == "local" and exc.hint is None:
            exc.hint = (
                "jobs on --base-url local end with the command that started them: use"
                " `gpti2 job start --wait`, or run `gpti2 serve` and use its URL"
            )
        raise
    if fetch:
        _said_of(ui, outcome, plan)
    return outcome


@app.command("status")
def status(
    ctx: typer.Context,
    task_id: IdArg,
    wait: WaitOption = False,
    poll_interval: PollOption = None,
    wait_timeout: WaitTimeoutOption = 600.0,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Print the job's status: pending, running, succeeded, failed, canceled or unknown."""
    from gpti2 import jobs
    from gpti2.errors import JobNotFinishedError

    ui = enter(ctx, json_out, quiet)

    def answer(job: Job) -> None:
        if ui.state.json:
            ui.out_json(job.as_json())
        else:
            ui.out(job.status.value)

    try:
        job = _follow(ui, task_id, wait=wait, poll=poll_interval, timeout=wait_timeout).job
    except JobNotFinishedError as exc:  # --wait-timeout: still say where it stands
        if isinstance(exc.job, jobs.Job):
            answer(exc.job)
            exc.after_answer()
        raise
    answer(job)
    error = jobs.failure(job)
    if error is not None:
        raise error.after_answer()


@app.command("fetch")
def fetch(
    ctx: typer.Context,
    task_id: IdArg,
    output: OutputDirOption = None,
    force: ForceOption = False,
    wait: WaitOption = False,
    poll_interval: PollOption = None,
    wait_timeout: WaitTimeoutOption = 600.0,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Download every image of a finished job as <ID>-<n>.<ext>."""
    ui = enter(ctx, json_out, quiet)
    outcome = _follow(
        ui,
        task_id,
        wait=wait,
        poll=poll_interval,
        timeout=wait_timeout,
        fetch=True,
        output=output,
        force=force,
    )
    job = outcome.job
    if ui.state.json:
        files_json = [s.as_json() for s in outcome.saved]
        ui.out_json({**job.ids(), "status": job.status.value, "files": files_json})
    else:
        for item in outcome.saved:
            ui.out(str(item.path))
