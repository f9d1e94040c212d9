"""Edges of `gpti2 batch`: --only with --shard, the bound on a shard total, one run lock
per manifest whether sharded or not, and no temporary file left by an interruption."""

from __future__ import annotations

import json

import pytest

from gpti2.batch import shard

MAX_TOTAL = 1000  # the bound --help and the README give
NAMES = ("hero", "icon", "mascot", "banner", "logo", "footer")


def write_manifest(folder, names=NAMES, route: str = "quick") -> None:
    head = f'[defaults]\noutput_dir = "art"\nroute = "{route}"\n'
    body = "".join(f'[[images]]\nname = "{n}"\nprompt = "picture of {n}"\n' for n in names)
    (folder / "assets.toml").write_text(head + body)


def split(total: int, index: int) -> tuple[list[str], list[str]]:
    """(names shard index/total holds, names it does not)."""
    mine = [n for n in NAMES if shard.shard_of(n, total) == index]
    return mine, [n for n in NAMES if n not in mine]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder holding assets.toml (six quick images), the current folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    write_manifest(folder)
    monkeypatch.chdir(folder)
    return folder


# -- 1. --only a name that another shard holds --------------------------------------------


def test_only_a_name_of_another_shard_is_named_with_its_shard_and_exits_0(
    cli, project, emulator
) -> None:
    mine, theirs = split(3, 1)
    assert mine and theirs  # the names are spread over the shards
    other = theirs[0]
    home = shard.shard_of(other, 3)
    run = cli("batch", "assets.toml", "--shard", "1/3", "--only", other, "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    assert f"note: {other} is in shard {home}/3, not this one\n" in run.stderr
    assert emulator.request_count == 0

    # with a name of this shard too: that one is made, the other named
    both = ("--only", mine[0], "--only", other, "--json")
    run = cli("batch", "assets.toml", "--shard", "1/3", *both, "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    document = run.json  # stdout stays one JSON document
    assert [(i["name"], i["status"]) for i in document["images"]] == [(mine[0], "generated")]
    assert f"note: {other} is in shard {home}/3, not this one\n" in run.stderr

    # --check and --dry-run say it too, and send nothing
    sent = emulator.request_count
    for mode in ("--check", "--dry-run"):
        run = cli(
            "batch", "assets.toml", "--shard", "1/3", "--only", other, mode,
            "--base-url", emulator.url,
        )  # fmt: skip
        assert run.exit_code == 0, run.stderr
        assert f"note: {other} is in shard {home}/3, not this one\n" in run.stderr
    assert emulator.request_count == sent


def test_only_a_name_not_in_the_manifest_is_still_exit_2(cli, project, emulator) -> None:
    run = cli(
        "batch", "assets.toml", "--shard", "1/3", "--only", "nope", "--base-url", emulator.url
    )
    assert run.exit_code == 2
    assert "error: --only 'nope': no such image in assets.toml" in run.stderr
    assert "note:" not in run.stderr
    assert emulator.request_count == 0


# -- 2. the bound on --shard ------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (f"1/{MAX_TOTAL + 1}", f"N may be at most {MAX_TOTAL}"),
        ("1/100000000", f"N may be at most {MAX_TOTAL}"),
        ("1/" + "9" * 300, f"N may be at most {MAX_TOTAL}"),  # a file name too long
        ("1/" + "1" * 5000, f"N may be at most {MAX_TOTAL}"),  # past int()'s own limit
        ("9" * 5000 + "/3", "K must be between 1 and N"),
        ("0/3", "K must be between 1 and N"),
        ("4/3", "K must be between 1 and N"),
        ("1/0", "K must be between 1 and N"),
        ("a/b", "expected K/N"),
        ("3", "expected K/N"),
    ],
)
def test_a_bad_or_huge_shard_is_exit_2_with_a_hint_before_any_request(
    cli, project, emulator, spec: str, says: str
) -> None:
    run = cli("batch", "assets.toml", "--shard", spec, "--base-url", emulator.url)
    assert run.exit_code == 2, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: --shard ") and says in lines[0]
    assert lines[1].startswith("hint: ")
    assert emulator.request_count == 0
    assert sorted(p.name for p in project.iterdir()) == ["assets.toml"]


def test_the_largest_shard_total_still_runs(cli, project, emulator) -> None:
    total = MAX_TOTAL
    run = cli("batch", "assets.toml", "--shard", f"{total}/{total}", "--base-url", emulator.url)
    assert run.exit_code == 0, run.stderr
    fragment = json.loads((project / f"assets.lock.shard-{total}-of-{total}.json").read_text())
    assert fragment["shard"] == f"{total}/{total}"


def test_help_gives_the_bound(cli) -> None:
    run = cli("batch", "--help", env={"COLUMNS": "200"})
    assert f"(N at most {MAX_TOTAL})" in " ".join(run.stdout.split())
    assert shard.MAX_TOTAL == MAX_TOTAL
