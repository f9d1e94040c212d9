"""The completion scripts in completions/ are generated from the app and kept current."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_completions", ROOT / "scripts" / "gen_completions.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_completions"] = module
    spec.loader.exec_module(module)
    return module


def test_completion_files_match_the_app() -> None:
    for name, text in _generator().render_all().items():
        current = (ROOT / "completions" / name).read_text()
        assert current == text, (
            f"completions/{name} is stale: run python scripts/gen_completions.py"
        )


def _bash_complete(line: str) -> list[str]:
    words = line.split(" ")
    script = f"""
source {ROOT / "completions" / "gpti2.bash"}
COMP_WORDS=({" ".join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
_gpti2
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_commands_and_their_options() -> None:
    assert "generate" in _bash_complete("gpti2 gen")
    assert "--aspect-ratio" in _bash_complete("gpti2 generate x --asp")
    assert set(_bash_complete("gpti2 config ")) >= {"get", "set", "unset", "list", "path"}
    assert "--base-url" in _bash_complete("gpti2 --base-url U generate --base")


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish_completes_commands_and_options() -> None:
    script = (
        f"source {ROOT / 'completions' / 'gpti2.fish'}; "
        "complete -C 'gpti2 gen'; complete -C 'gpti2 generate x --asp'"
    )
    out = subprocess.run(["fish", "-c", script], capture_output=True, text=True, check=True)
    assert "generate\t" in out.stdout and "--aspect-ratio\t" in out.stdout


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_script_parses() -> None:
    subprocess.run(["zsh", "-n", str(ROOT / "completions" / "_gpti2")], check=True)
