"""`gpti2 generate`'s decisions live in the core (gpti2/output.py): where the image goes,
"already had", the dry-run plan and the --json answer, unit-tested without a command."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from gpti2 import images, output
from gpti2.emulator.art import placeholder_png
from gpti2.errors import UsageError


def test_placement_reads_the_output_option(tmp_path: Path) -> None:
    assert output.Placement.choose(None, str(tmp_path), False).folder == tmp_path
    assert output.Placement.choose("-", ".", False).to_stdout
    assert output.Placement.choose(f"{tmp_path}/", ".", False).folder == tmp_path
    named = output.Placement.choose(str(tmp_path / "a.png"), ".", True)
    assert named.target == tmp_path / "a.png" and named.force
    with pytest.raises(UsageError, match="both write to stdout"):
        output.Placement.choose("-", ".", False, json_out=True)
    with pytest.raises(UsageError, match="to a terminal"):
        output.Placement.choose("-", ".", False, stdout_is_terminal=True)


def test_the_same_bytes_under_their_name_are_already_had(tmp_path: Path) -> None:
    data = placeholder_png("fox", 4, 4)
    info = images.describe(data)
    placement = output.Placement(folder=tmp_path)
    first = placement.save("a fox", data, info)
    again = placement.save("a fox", data, info)
    assert (first.verb, again.verb) == ("wrote", "already had")
    assert first.path == again.path == tmp_path / images.default_name("a fox", info)


def test_a_named_file_with_another_extension_is_mislabeled(tmp_path: Path) -> None:
    data = placeholder_png("fox", 4, 4)
    saved = output.Placement(target=tmp_path / "fox.jpg").save("x", data, images.describe(data))
    assert saved.mislabeled and saved.path.read_bytes() == data


def test_the_answer_reports_the_ratio_received_and_the_one_asked_for() -> None:
    data = placeholder_png("fox", 1024, 1024)
    answer = output.Generated(Path("f.png"), images.describe(data), "openai", "m", "16:9", 5)
    shape = answer.as_json()
    assert shape["aspectRatio"] == "1:1" and shape["requestedAspectRatio"] == "16:9"
    assert answer.ratio_ignored
    rounded = placeholder_png("fox", 512, 219)  # 21:9 at 512 pixels wide
    assert not output.Generated(None, images.describe(rounded), "o", "m", "21:9", 1).ratio_ignored


def test_the_dry_run_plan_has_no_url_for_local() -> None:
    assert output.dry_run_plan("local", "/r", {})["url"] is None
    assert output.dry_run_plan("https://h", "/r", {})["url"] == "https://h/r"


def test_a_server_that_ignores_the_ratio_gets_a_note(cli, scripted) -> None:
    image = base64.b64encode(placeholder_png("x", 64, 64)).decode()
    scripted.add(200, {"provider": "openai", "image": image})
    run = cli("generate", "x", "-a", "16:9", "--json", "--base-url", scripted.url)
    assert run.exit_code == 0, run.stderr
    assert run.json["aspectRatio"] == "1:1" and run.json["requestedAspectRatio"] == "16:9"
    assert "note: the server ignored the aspect ratio: asked 16:9, got 1:1 (64x64)" in run.stderr
    quiet = cli("generate", "x", "-a", "16:9", "-q", "--force", "--base-url", scripted.url)
    assert quiet.stderr == ""
