"""`gpti2 config` and the config file's errors."""

from __future__ import annotations

import tomllib
from pathlib import Path


def test_set_get_unset_round_trip(cli, isolated_user) -> None:
    path = Path(cli("config", "path").stdout.strip())
    assert path == isolated_user / ".config" / "gpti2" / "config.toml"
    assert cli("config", "set", "provider", "replicate").exit_code == 0
    assert tomllib.loads(path.read_text())["profiles"]["default"]["provider"] == "replicate"
    assert cli("config", "get", "provider").stdout.strip() == "replicate"
    assert cli("config", "get", "provider", "--json").json["source"] == "config [profiles.default]"
    assert cli("config", "unset", "provider").exit_code == 0
    assert cli("config", "get", "provider").stdout.strip() == "openai"


def test_list_shows_each_value_and_its_source(cli, monkeypatch) -> None:
    cli("config", "set", "timeout", "30")
    monkeypatch.setenv("GPTI2_RETRIES", "7")
    listing = cli("config", "list", "--json", "--base-url", "http://127.0.0.1:9").json["settings"]
    assert listing["timeout"] == {"value": 30.0, "source": "config [profiles.default]"}
    assert listing["retries"] == {"value": 7, "source": "env GPTI2_RETRIES"}
    assert listing["base_url"] == {"value": "http://127.0.0.1:9", "source": "flag"}
    assert listing["model"] == {"value": "dall-e-3", "source": "default"}
    human = cli("config", "list").stdout
    assert "timeout" in human and "(config [profiles.default])" in human


def test_profiles_are_separate_tables(cli) -> None:
    assert (
        cli("--profile", "staging", "config", "set", "base_url", "https://s.example").exit_code == 0
    )
    assert cli("config", "get", "base_url").stdout.strip() == "https://www.gpt-image2.dev"
    assert (
        cli("config", "get", "base_url", "--profile", "staging").stdout.strip()
        == "https://s.example"
    )


def test_bad_values_and_keys_are_usage_errors(cli) -> None:
    bad_value = cli("config", "set", "timeout", "soon")
    assert bad_value.exit_code == 2 and "timeout" in bad_value.stderr
    bad_key = cli("config", "set", "colour", "red")
    assert bad_key.exit_code == 2 and "colour" in bad_key.stderr
    assert "hint: known keys" in bad_key.stderr


def test_broken_config_file_names_the_file(cli, isolated_user) -> None:
    path = isolated_user / ".config" / "gpti2" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text("[profiles.default\n")
    run = cli("generate", "x")
    assert run.exit_code == 2
    assert str(path) in run.stderr and "Traceback" not in run.stderr
    path.write_text("[profiles.default]\nretries = -1\n")
    run = cli("config", "list", "--json")
    assert run.exit_code == 2
    assert "retries" in run.stderr and str(path) in run.stderr
    assert run.json == {"error": {"code": 2, "message": run.stderr.splitlines()[0][7:]}}
