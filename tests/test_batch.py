"""`gpti2 batch`: manifests, the lock file, and skipping what has not changed."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import TOKEN, gpti2_command
from gpti2.batch import Entry

MANIFEST = """
[defaults]
output_dir = "assets/generated"

[[images]]
name = "hero"
prompt = "Minimalist poster of a moonlit city skyline"
aspect_ratio = "16:9"

[[images]]
name = "icon"
prompt = "A round app icon of a paper plane"

[[images]]
name = "banner.wide"
prompt = "A wide banner of rolling hills"
aspect_ratio = "3:1"
"""


@pytest.fixture
def project(tmp_path, emulator, monkeypatch):
    """A folder with assets.toml, pointed at the emulator."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "assets.toml").write_text(MANIFEST)
    monkeypatch.setenv("GPTI2_BASE_URL", emulator.url)
    monkeypatch.setenv("GPTI2_POLL_INTERVAL", "0.05")
    monkeypatch.chdir(folder)
    return folder


def quick_posts(emulator) -> int:
    return emulator.requests["POST /api/generate-images"]


def lock(folder: Path) -> dict:
    return json.loads((folder / "assets.lock.json").read_text())


def test_first_run_generates_all_and_writes_the_lock(cli, project, emulator) -> None:
    run = cli("batch", "assets.toml")
    assert run.exit_code == 0, run.stderr
    assert quick_posts(emulator) == 3
    text = (project / "assets.lock.json").read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert data["version"] == 1
    hero = data["images"]["hero"]
    assert set(hero) == {
        "fingerprint",
        "inputs",
        "origin",
        "path",
        "sha256",
        "bytes",
        "generatedAt",
    }
    assert hero["origin"] == emulator.url
    assert hero["path"] == "assets/generated/hero.png"
    content = (project / hero["path"]).read_bytes()
    assert hero["sha256"] == hashlib.sha256(content).hexdigest()
    assert hero["bytes"] == len(content)
    assert hero["fingerprint"].startswith("sha256:") and len(hero["fingerprint"]) == 71
    assert hero["generatedAt"].endswith("Z")
    assert "hero" in run.stderr and "generated" in run.stderr  # the summary table


def test_an_unchanged_manifest_sends_nothing_the_second_time(cli, project, emulator) -> None:
    assert cli("batch", "assets.toml").exit_code == 0
    sent = emulator.request_count
    again = cli("batch", "assets.toml", "--json")
    assert again.exit_code == 0
    assert emulator.request_count == sent
    totals = again.json["totals"]
    assert totals == {**totals, "generated": 0, "upToDate": 3, "failed": 0, "total": 3}
    assert totals["running"] == totals["notDone"] == 0


def test_changing_one_prompt_regenerates_exactly_that_one(cli, project, emulator) -> None:
    cli("batch", "assets.toml")
    before = lock(project)["images"]
    (project / "assets.toml").write_text(MANIFEST.replace("paper plane", "paper boat"))
    run = cli("batch", "assets.toml", "--json")
    assert quick_posts(emulator) == 4
    statuses = {image["name"]: image["status"] for image in run.json["images"]}
    assert statuses == {"hero": "up to date", "icon": "generated", "banner.wide": "up to date"}
    after = lock(project)["images"]
    assert after["hero"] == before["hero"]
    assert after["icon"]["fingerprint"] != before["icon"]["fingerprint"]


def test_a_deleted_or_edited_file_is_regenerated(cli, project, emulator) -> None:
    cli("batch", "assets.toml")
    (project / "assets/generated/hero.png").unlink()
    (project / "assets/generated/icon.png").write_bytes(b"edited by hand")
    check = cli("batch", "assets.toml", "--check")
    assert check.exit_code == 9
    assert check.stdout.splitlines() == ["hero\tmissing", "icon\tfile changed"]
    assert cli("batch", "assets.toml").exit_code == 0
    assert quick_posts(emulator) == 5
    assert cli("batch", "assets.toml", "--check").exit_code == 0


def test_check_and_dry_run_send_nothing(cli, project, emulator) -> None:
    check = cli("batch", "assets.toml", "--check")
    assert check.exit_code == 9 and "error:" in check.stderr
    assert check.stdout.splitlines() == ["hero\tnew", "icon\tnew", "banner.wide\tnew"]
    dry = cli("batch", "assets.toml", "--dry-run")
    assert dry.exit_code == 0 and "hero\tnew\tquick openai/dall-e-3 16:9" in dry.stdout
    assert emulator.request_count == 0
    assert not (project / "assets.lock.json").exists()


def test_force_and_only(cli, project, emulator) -> None:
    cli("batch", "assets.toml")
    run = cli("batch", "assets.toml", "--force", "--only", "hero", "--json")
    assert [i["status"] for i in run.json["images"]] == ["generated"]
    assert quick_posts(emulator) == 4
    assert cli("batch", "assets.toml", "--only", "nope").exit_code == 2


def test_one_failure_leaves_the_others_done_and_sets_the_exit_code(cli, project, emulator) -> None:
    broken = MANIFEST.replace('name = "icon"', 'name = "icon"\nprovider = "acme"')
    (project / "assets.toml").write_text(broken)
    run = cli("batch", "assets.toml", "--json")
    assert run.exit_code == 5
    statuses = {i["name"]: i["status"] for i in run.json["images"]}
    assert statuses == {"hero": "generated", "icon": "failed", "banner.wide": "generated"}
    assert set(lock(project)["images"]) == {"hero", "banner.wide"}
    assert "Invalid request parameters" in run.json["images"][1]["error"]


def test_the_first_failure_in_manifest_order_decides(
    cli, project, make_emulator, monkeypatch
) -> None:
    poor = make_emulator(credits=0)
    monkeypatch.setenv("GPTI2_BASE_URL", poor.url)
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    (project / "assets.toml").write_text(
        '[[images]]\nname = "a"\nprompt = "x"\nroute = "job"\n'
        '[[images]]\nname = "b"\nprompt = "y"\nprovider = "acme"\n'
    )
    assert cli("batch", "assets.toml").exit_code == 4


def test_entries_the_manifest_dropped_leave_the_lock(cli, project) -> None:
    cli("batch", "assets.toml")
    trimmed = MANIFEST.split('[[images]]\nname = "banner.wide"')[0]
    (project / "assets.toml").write_text(trimmed)
    assert cli("batch", "assets.toml").exit_code == 0
    assert set(lock(project)["images"]) == {"hero", "icon"}
    assert (project / "assets/generated/banner.wide.png").exists()  # files are left alone


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[images]]\nname = "a"\nprompt = "x"\ncolour = "red"\n', "'colour'"),
        (
            '[[images]]\nname = "a"\nprompt = "x"\n[[images]]\nname = "a"\nprompt = "y"\n',
            "duplicate",
        ),
        ('[[images]]\nname = "../a"\nprompt = "x"\n', "unsafe name"),
        ('[[images]]\nname = "a/b"\nprompt = "x"\n', "unsafe name"),
        ('[[images]]\nname = ""\nprompt = "x"\n', "unsafe name"),
        ('[[images]]\nname = "a"\nprompt = "x"\naspect_ratio = "16x9"\n', "aspect_ratio"),
        (
            '[defaults]\noutput_dir = "../elsewhere"\n[[images]]\nname = "a"\nprompt = "x"\n',
            "outside",
        ),
        ('[[images]]\nname = "a"\n', "prompt"),
        ('[[images]]\nname = "a"\nprompt = "x"\nroute = "slow"\n', "route"),
        ("[[images]\n", "not valid TOML"),
    ],
)
def test_bad_manifests_exit_2_naming_file_entry_and_key(cli, project, emulator, text, needle):
    (project / "assets.toml").write_text(text)
    run = cli("batch", "assets.toml")
    assert run.exit_code == 2, run.stderr
    assert needle in run.stderr and "assets.toml" in run.stderr
    assert "Traceback" not in run.stderr
    assert emulator.request_count == 0


def test_unknown_key_message_names_the_entry(cli, project) -> None:
    (project / "assets.toml").write_text(
        '[[images]]\nname = "ok"\nprompt = "x"\n[[images]]\nname = "hero"\nprompt = "x"\nsize = 1\n'
    )
    run = cli("batch", "assets.toml")
    assert "[[images]] #2 ('hero'), key 'size': unknown key" in run.stderr


def test_job_entries_without_a_token_exit_3_before_any_request(cli, project, emulator) -> None:
    (project / "assets.toml").write_text(
        MANIFEST + '\n[[images]]\nname = "j"\nprompt = "x"\nroute = "job"\n'
    )
    run = cli("batch", "assets.toml")
    assert run.exit_code == 3 and "GPTI2_TOKEN" in run.stderr
    assert emulator.request_count == 0


def test_an_unknown_file_in_the_way_is_refused_before_any_request(cli, project, emulator):
    target = project / "assets/generated/hero.png"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"someone's hand-made hero")
    run = cli("batch", "assets.toml")
    assert run.exit_code == 2 and "--force" in run.stderr
    assert emulator.request_count == 0
    assert cli("batch", "assets.toml", "--force").exit_code == 0
    assert target.read_bytes().startswith(b"\x89PNG")


def test_job_route_starts_every_job_before_waiting(cli, project, make_emulator, monkeypatch):
    emu = make_emulator(job_seconds=1.0)
    monkeypatch.setenv("GPTI2_BASE_URL", emu.url)
    monkeypatch.setenv("GPTI2_TOKEN", TOKEN)
    entries = "".join(
        f'[[images]]\nname = "j{i}"\nprompt = "job {i}"\nroute = "job"\n' for i in range(6)
    )
    (project / "assets.toml").write_text(entries)
    run = cli("batch", "assets.toml", "-j", "2", "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json["totals"]["generated"] == 6
    created = emu.store.created_times(TOKEN)
    assert len(created) == 6 and created[-1] - created[0] < 1.0  # all running at once
    assert lock(project)["images"]["j0"]["path"] == "j0.png"


def test_fingerprint_covers_what_shapes_the_image(tmp_path) -> None:
    base = Entry("a", "p", "quick", "openai", "dall-e-3", "1:1", None, None, tmp_path)
    same = Entry("a", "p", "quick", "openai", "dall-e-3", "1:1", None, None, tmp_path / "x")
    assert base.fingerprint() == same.fingerprint()  # the folder is not part of it
    for changed in (
        Entry("a", "q", "quick", "openai", "dall-e-3", "1:1", None, None, tmp_path),
        Entry("a", "p", "quick", "vertex", "dall-e-3", "1:1", None, None, tmp_path),
        Entry("a", "p", "quick", "openai", "dall-e-2", "1:1", None, None, tmp_path),
        Entry("a", "p", "quick", "openai", "dall-e-3", "4:3", None, None, tmp_path),
        Entry("a", "p", "job", None, "dall-e-3", "1:1", "f", "text_to_image", tmp_path),
    ):
        assert changed.fingerprint() != base.fingerprint()
    canonical = (
        '{"aspectRatio":"1:1","feature":null,"mode":null,"model":"dall-e-3",'
        '"prompt":"p","provider":"openai","route":"quick"}'
    )
    assert base.fingerprint() == "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_keeps_finished_images_and_leaves_nothing_partial(
    tmp_path, make_emulator, signum, code
):
    emu = make_emulator(latency=0.4)
    folder = tmp_path / "ci"
    folder.mkdir()
    entries = "".join(f'[[images]]\nname = "img{i}"\nprompt = "p{i}"\n' for i in range(12))
    (folder / "assets.toml").write_text('[defaults]\noutput_dir = "out"\n' + entries)
    proc = subprocess.Popen(
        [*gpti2_command(), "batch", "assets.toml", "-j", "2", "--base-url", emu.url],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lock_path = folder / "assets.lock.json"
    journal = folder / ".assets.lock.json.journal"  # a line per finished image
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    records = json.loads(lock_path.read_text())["images"]
    assert 2 <= len(records) < 12
    for record in records.values():
        data = (folder / record["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record["sha256"]
    written = sorted(p.name for p in (folder / "out").iterdir())
    assert written == sorted(Path(r["path"]).name for r in records.values())


def test_check_json_is_one_object(cli, project) -> None:
    run = cli("batch", "assets.toml", "--check", "--json")
    assert run.exit_code == 9
    assert run.json["totals"] == {"toGenerate": 3, "upToDate": 0}
