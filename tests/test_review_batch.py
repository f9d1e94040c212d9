"""Review findings on batch: a lock record must point where its entry writes."""

from __future__ import annotations

import json

from test_shard import manifest


def test_changing_output_dir_regenerates_into_the_new_folder(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    toml = tmp_path / "assets.toml"
    toml.write_text(manifest(1))
    assert cli("batch", "assets.toml", "--base-url", "local").exit_code == 0
    toml.write_text(manifest(1).replace('"art"', '"assets"'))
    check = cli("batch", "assets.toml", "--check", "--base-url", "local")
    assert check.exit_code == 9
    assert "img0\toutput_dir changed" in check.stdout
    assert cli("batch", "assets.toml", "--base-url", "local").exit_code == 0
    assert (tmp_path / "assets" / "img0.png").is_file()
    lock = json.loads((tmp_path / "assets.lock.json").read_text())
    assert lock["images"]["img0"]["path"] == "assets/img0.png"


def test_merge_refuses_a_record_pointing_at_another_image(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "assets.toml").write_text(manifest(2))
    assert cli("batch", "assets.toml", "--shard", "1/1", "--base-url", "local").exit_code == 0
    fragment = tmp_path / "assets.lock.shard-1-of-1.json"
    data = json.loads(fragment.read_text())
    images = data["images"]
    for key in ("path", "sha256"):
        images["img0"][key] = images["img1"][key]
    fragment.write_text(json.dumps(data))
    run = cli("batch", "assets.toml", "--merge", str(fragment), "--base-url", "local")
    assert run.exit_code == 2
    assert "image 'img0'" in run.stderr and "art/img1.png is not where img0 goes" in run.stderr
    assert not (tmp_path / "assets.lock.json").exists()


def test_names_and_folders_the_file_system_refuses_are_exit_2(cli, tmp_path, monkeypatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    toml = project / "assets.toml"
    toml.write_text(
        f'[defaults]\noutput_dir = "{"d" * 300}"\n[[images]]\nname = "a"\nprompt = "a"\n'
    )
    run = cli("batch", "assets.toml", "--base-url", "local")
    assert run.exit_code == 2 and run.stderr.startswith("error: cannot use "), run.stderr
    assert "File name too long" in run.stderr and "internal error" not in run.stderr
    toml.write_text(f'[[images]]\nname = "{"n" * 300}"\nprompt = "a"\n')
    run = cli("batch", "assets.toml", "--base-url", "local")
    assert run.exit_code == 2 and "unsafe name" in run.stderr and "at most 200" in run.stderr
    assert sorted(p.name for p in project.iterdir() if not p.name.startswith(".")) == [
        "assets.toml"
    ]


def test_the_check_hint_quotes_a_manifest_path_with_a_space(cli, tmp_path, monkeypatch) -> None:
    import shlex

    monkeypatch.chdir(tmp_path)
    (tmp_path / "my assets.toml").write_text(manifest(1))
    run = cli("batch", "my assets.toml", "--check", "--base-url", "local")
    assert run.exit_code == 9
    hint = run.stderr.split("hint: run: ", 1)[1].strip()
    assert shlex.split(hint) == ["gpti2", "--base-url", "local", "batch", "my assets.toml"]


def test_an_interrupted_job_over_an_earlier_image_is_resumed_by_the_next_run(
    tmp_path, make_emulator
) -> None:
    """The earlier image stays the lock's own while the new job runs: the rerun resumes
    the job instead of refusing 'already exists and the lock file does not record it'."""
    import signal
    import time

    from conftest import TOKEN
    from test_shard import _run

    first, slow = make_emulator(job_seconds=0.2), make_emulator(job_seconds=2.5)
    folder = tmp_path / "ci"
    folder.mkdir()
    (folder / "assets.toml").write_text(manifest(1, route="job"))
    env = {"GPTI2_TOKEN": TOKEN, "GPTI2_POLL_INTERVAL": "0.05"}
    done = _run(folder, "--base-url", first.url, env=env)
    assert done.wait(timeout=30) == 0, done.communicate()[1]
    proc = _run(folder, "--base-url", slow.url, env=env)  # made by another origin: a new job
    journal = folder / ".assets.lock.json.journal"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if journal.exists() and '"state":"running"' in journal.read_text():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "the next run resumes them" in err, err
    rerun = _run(folder, "--base-url", slow.url, env=env)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert slow.requests["POST /api/aiimage/start"] == 1  # resumed, not paid twice
    record = json.loads((folder / "assets.lock.json").read_text())["images"]["img0"]
    assert "state" not in record and record["origin"] == slow.url
