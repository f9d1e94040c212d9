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
