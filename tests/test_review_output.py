"""Review findings on -o: local input is exit 2 with one error line, never an internal error."""

from __future__ import annotations


def test_an_output_name_too_long_for_the_file_system_is_exit_2(cli, tmp_path, monkeypatch) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.chdir(folder)
    run = cli("generate", "fox", "--base-url", "local", "-o", "a" * 300 + ".png")
    assert run.exit_code == 2, run.stderr
    assert run.stderr.startswith("error: cannot use ") and "File name too long" in run.stderr
    assert "internal error" not in run.stderr
    assert list(folder.iterdir()) == []
