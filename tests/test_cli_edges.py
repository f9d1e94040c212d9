"""Small edges of the command line left over from the last release: empty history cells,
a busy `serve` port, stray `completion` arguments, quoted addresses in auth hints, unknown
root options, and the emulator's shutdown under a request still in flight."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import TOKEN
from gpti2.cli import app
from gpti2.cli.context import Environment

# -- 1. history: an unknown field is an empty cell, never the word None -------------------


def _fetch_a_job_started_unrecorded(cli, emulator, tmp_path) -> str:
    """`job fetch` of a job whose start is not in the history: it knows no model."""
    env = {"GPTI2_TOKEN": TOKEN}
    start = cli(
        "job", "start", "a heron", "--base-url", emulator.url, env={**env, "GPTI2_NO_HISTORY": "1"}
    )
    assert start.exit_code == 0, start.stderr
    task_id = start.stdout.strip()
    fetch = cli(
        "job", "fetch", task_id, "--wait", "--poll-interval", "0.05",
        "-o", str(tmp_path), "--base-url", emulator.url, env=env,
    )  # fmt: skip
    assert fetch.exit_code == 0, fetch.stderr
    return task_id


def test_history_shows_an_unknown_model_as_an_empty_cell_not_none(cli, emulator, tmp_path):
    task_id = _fetch_a_job_started_unrecorded(cli, emulator, tmp_path)
    rows = cli("history", "--json").json
    assert rows[0]["taskId"] == task_id and rows[0]["model"] is None  # JSON keeps null
    assert rows[0]["prompt"] is None
    plain = cli("history")
    cells = plain.stdout.rstrip("\n").split("\t")
    assert len(cells) == 7 and cells[2] == "job fetch"
    assert cells[3] == "" and cells[6] == ""  # model and prompt: empty, not None
    assert "None" not in plain.stdout


def test_history_table_shows_a_dash_for_an_unknown_model(cli, emulator, tmp_path) -> None:
    _fetch_a_job_started_unrecorded(cli, emulator, tmp_path)
    failed = cli("job", "fetch", "task_nosuch", "--base-url", emulator.url,
                 env={"GPTI2_TOKEN": TOKEN})  # fmt: skip
    assert failed.exit_code == 5
    result = CliRunner().invoke(
        app, ["history"], environment=Environment(stdout_isatty=True), env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.stderr
    assert "None" not in result.stdout
    fetched = next(line for line in result.stdout.splitlines() if line.strip().startswith("1 "))
    cells = [cell.strip() for cell in fetched.split("│")]
    assert cells[2] == "-" and cells[4] == "-"  # model and prompt
    assert "failed (5): " in result.stdout


# -- 2. serve on a port in use ------------------------------------------------------------


def test_serve_on_a_port_in_use_is_one_error_naming_it_with_a_hint(
    cli, tmp_path, monkeypatch
) -> None:
    import socket
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where its store would go
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = cli("serve", "--port", str(port))
    assert run.exit_code == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 2 and "Traceback" not in run.stderr
    assert lines[0].startswith("error: ") and f"port {port}" in lines[0]
    assert lines[1].startswith("hint: ") and "--port 0" in lines[1]
    assert run.stdout == ""
    assert not list(tmp_path.glob("gpti2-emulator-*"))  # no store left behind


# -- 3. completion: a stray argument is a usage error -------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["completion", "bash", "extra"],
        ["completion", "--profiles", "extra"],
        ["completion", "extra", "--profiles"],
        ["completion", "bash", "--profiles"],
    ],
)
def test_completion_refuses_a_stray_argument(cli, args: list[str]) -> None:
    run = cli(*args)
    assert run.exit_code == 2
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: ")
    assert "unexpected extra argument" in lines[0]


def test_completion_profiles_alone_still_lists_the_profiles(cli) -> None:
    assert cli("--profile", "ci", "config", "set", "retries", "1").exit_code == 0
    run = cli("completion", "--profiles")
    assert run.exit_code == 0 and run.stdout.split() == ["ci"]


# -- 4. auth hints quote the address they repeat -------------------------------------------

ODD_ADDRESS = "ann o'lee+art@example.com"  # a space, a quote and a plus
ODD_PASSWORD = "pw-ann-4e1c"


def _emailed_in_hint(stderr: str) -> str:
    """The --email value of the command the hint suggests, as a shell would read it."""
    import shlex

    hint = next(line for line in stderr.splitlines() if line.startswith("hint: "))
    command = shlex.split(hint.split("`")[1])
    return command[command.index("--email") + 1]


@pytest.fixture
def odd_account(cli, make_emulator):
    emu = make_emulator(api="shipany", users=[f"{ODD_ADDRESS}:{ODD_PASSWORD}"])
    assert cli("config", "set", "api", "shipany").exit_code == 0
    assert cli("config", "set", "base_url", emu.url).exit_code == 0
    return emu


def test_the_no_terminal_hint_quotes_the_address(cli, odd_account) -> None:
    run = cli("auth", "login", "--email", ODD_ADDRESS)
    assert run.exit_code == 2 and "no terminal" in run.stderr
    assert _emailed_in_hint(run.stderr) == ODD_ADDRESS


def test_the_keyring_hint_quotes_the_address(cli, odd_account, monkeypatch) -> None:
    from conftest import use_keyring

    use_keyring("keyring.backends.fail.Keyring", monkeypatch)
    run = cli("auth", "login", "--email", ODD_ADDRESS, "--password-stdin", input=ODD_PASSWORD)
    assert run.exit_code == 3 and "keyring" in run.stderr
    assert _emailed_in_hint(run.stderr) == ODD_ADDRESS


def test_the_sign_in_again_hint_quotes_the_address(cli, odd_account) -> None:
    signed = cli("auth", "login", "--email", ODD_ADDRESS, "--password-stdin", input=ODD_PASSWORD)
    assert signed.exit_code == 0, signed.stderr
    odd_account.store.expire_sessions()
    run = cli("job", "start", "x")
    assert run.exit_code == 3
    assert _emailed_in_hint(run.stderr) == ODD_ADDRESS


# -- 5. an unknown root option ------------------------------------------------------------


@pytest.mark.parametrize("args", [["--bogus", "generate", "x"], ["--bogus"]])
def test_an_unknown_root_option_is_a_usage_error_pointing_at_help(cli, args) -> None:
    run = cli(*args)
    assert run.exit_code == 2 and run.stdout == ""
    assert run.stderr.splitlines() == [
        "error: no such option: --bogus",
        "hint: see `gpti2 --help`",
    ]


def test_a_near_miss_of_an_option_still_gets_its_suggestion(cli) -> None:
    run = cli("--verbos", "generate", "x")
    assert run.exit_code == 2 and "hint: did you mean --verbose" in run.stderr
    run = cli("generate", "x", "--forse")
    assert run.exit_code == 2 and "hint: did you mean --force?" in run.stderr


# -- 7. the emulator's shutdown under requests in flight ----------------------------------


def _emulator_with_log(**flags):
    from gpti2.emulator import Emulator, EmulatorConfig

    lines: list[str] = []
    config = EmulatorConfig(port=0, tokens=[TOKEN], log=lines.append, **flags)
    return Emulator(config).start(), lines


def _ask(conn, task_id: str = "task_none") -> None:
    conn.request(
        "GET", f"/api/aiimage/status?taskId={task_id}", headers={"Authorization": f"Bearer {TOKEN}"}
    )


def test_a_request_in_its_latency_wait_is_answered_503_when_the_emulator_stops() -> None:
    import http.client
    import time

    emu, lines = _emulator_with_log(latency=5.0)
    try:
        conn = http.client.HTTPConnection(emu.url.removeprefix("http://"), timeout=10)
        _ask(conn)  # a client that gave up would leave it waiting like this
        deadline = time.monotonic() + 5
        while emu.request_count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert emu.request_count == 1
    finally:
        started = time.monotonic()
        emu.shutdown()
    assert time.monotonic() - started < 2  # the 5 s delay is not waited out
    answer = conn.getresponse()
    assert answer.status == 503 and b"shutting down" in answer.read()
    assert not [line for line in lines if " error: " in line]


def test_a_request_on_a_kept_alive_connection_after_shutdown_is_answered_503() -> None:
    import http.client

    emu, lines = _emulator_with_log()
    try:
        conn = http.client.HTTPConnection(emu.url.removeprefix("http://"), timeout=10)
        _ask(conn)
        first = conn.getresponse()
        first.read()
        assert first.status == 404  # the store answered: no such task
    finally:
        emu.shutdown()
    _ask(conn)  # the connection is still open; the store is closed
    answer = conn.getresponse()
    assert answer.status == 503 and answer.getheader("Connection") == "close"
    assert not [line for line in lines if " error: " in line]


def test_a_second_ctrl_c_stops_serve_waiting_for_a_stuck_client(tmp_path) -> None:
    import signal
    import socket
    import subprocess
    import time

    from conftest import gpti2_command

    proc = subprocess.Popen(
        [*gpti2_command(), "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        host, port = proc.stdout.readline().split()[-1].removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as stuck:  # sends 10 of 100 bytes
            stuck.sendall(b"POST /api/generate-images HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
            stuck.sendall(b"0123456789")
            time.sleep(0.3)
            began = time.monotonic()
            proc.send_signal(signal.SIGINT)  # waits for the request in flight...
            time.sleep(0.5)
            assert proc.poll() is None
            proc.send_signal(signal.SIGINT)  # ...until asked again
            assert proc.wait(timeout=10) == 0
            assert time.monotonic() - began < 3  # not the whole 5 s drain
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_listens_on_ipv6_loopback_and_prints_a_bracketed_url() -> None:
    from gpti2.emulator import EmulatorConfig, running_emulator

    with running_emulator(EmulatorConfig(host="::1", port=0, tokens=[TOKEN])) as emu:
        assert emu.url.startswith("http://[::1]:")
        run = CliRunner().invoke(app, ["generate", "x", "-o", "x.png", "--base-url", emu.url])
    assert run.exit_code == 0, run.stderr


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("--verbos", "--verbose"), ("--retires", "--retries"), ("--base-ur", "--base-url")],
)
def test_a_mistyped_root_option_after_the_command_gets_its_suggestion(typo, meant) -> None:
    run = CliRunner().invoke(app, ["generate", "x", typo])
    assert run.exit_code == 2
    assert f"hint: did you mean {meant}?" in run.stderr


def test_config_get_says_when_the_environment_wins() -> None:
    run = CliRunner().invoke(app, ["config", "get", "base_url"], env={"GPTI2_BASE_URL": "local"})
    assert run.exit_code == 0 and run.stdout == "local\n"
    assert "note: base_url comes from GPTI2_BASE_URL, which wins over the config file" in run.stderr


@pytest.mark.parametrize("command", [["job", "status", "task_nope"], ["job", "fetch", "task_nope"]])
def test_an_unknown_job_on_local_hints_that_local_jobs_end_with_their_command(command) -> None:
    run = CliRunner().invoke(app, [*command, "--base-url", "local"])
    assert run.exit_code == 5, run.stderr
    assert "hint: jobs on --base-url local end with the command that started them" in run.stderr
    assert "`gpti2 serve`" in run.stderr  # not `gpti2 --base-url local serve`


def test_auth_token_on_local_does_not_send_the_user_to_auth_login() -> None:
    run = CliRunner().invoke(app, ["auth", "token", "--base-url", "local"])
    assert run.exit_code == 3
    assert "needs no sign-in" in run.stderr and "auth login" not in run.stderr


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["generate", "x", "-a", "0:9", "--dry-run"], "hint: give W:H with whole numbers above 0"),
        (["generate", "x", "--timeout", "abc", "--dry-run"], "hint: give a number of seconds"),
        (["generate", "x", "--base-url", "htp://x", "--dry-run"], "hint: give an http:// or"),
        (["config", "set", "aspct_ratio", "16:9"], "hint: did you mean 'aspect_ratio'?"),
        (["config", "set", "timeout", "abc"], "hint: give a number of seconds"),
    ],
)
def test_a_bad_setting_gets_a_hint_showing_a_good_one(args, hint) -> None:
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 2
    assert hint in run.stderr


def test_a_manifest_that_cannot_be_read_gets_a_hint(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[[images]]\nname = "a\n')
    for target, hint in (
        (tmp_path / "none.toml", "with [[images]] entries"),
        (bad, "line and column"),
    ):
        run = CliRunner().invoke(app, ["batch", str(target), "--dry-run"])
        assert run.exit_code == 2
        assert "hint: " in run.stderr and hint in run.stderr
