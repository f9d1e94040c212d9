"""`gpti2 completion SHELL` prints the script; completions know config keys, providers and
the profile names of the config file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_committed_script(cli, shell: str) -> None:
    from gpti2.cli.completion import FILES

    run = cli("completion", shell)
    assert run.exit_code == 0
    assert run.stdout == (ROOT / "completions" / FILES[shell]).read_text()


def test_completion_without_a_known_shell_names_them(cli) -> None:
    run = cli("completion", "tcsh")
    assert run.exit_code == 2
    assert "gpti2 completion bash" in run.stderr


def _bash(line: str, script: str) -> list[str]:
    words = line.split(" ")
    program = f"""
eval "$(cat {script})"
COMP_WORDS=({" ".join(repr(w) for w in words)})
COMP_CWORD={len(words) - 1}
_gpti2
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.split()


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_bash_completes_keys_providers_and_profiles(cli, tmp_path: Path) -> None:
    script = tmp_path / "gpti2.bash"
    script.write_text(cli("completion", "bash").stdout)
    assert "poll_interval" in _bash("gpti2 config set po", script)
    assert _bash("gpti2 config get base", script) == ["base_url"]
    assert set(_bash("gpti2 generate x -p ", script)) == {
        "openai",
        "replicate",
        "fireworks",
        "vertex",
    }
    assert cli("--profile", "staging", "config", "set", "retries", "1").exit_code == 0
    assert cli("--profile", "ci", "config", "set", "retries", "1").exit_code == 0
    assert _bash("gpti2 --profile ", script) == ["ci", "staging"]
    assert _bash("gpti2 generate x --profile st", script) == ["staging"]
    assert set(_bash("gpti2 completion ", script)) == {"bash", "zsh", "fish"}
