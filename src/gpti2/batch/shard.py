"""Sharding a manifest over a CI job matrix, and merging the shards' lock fragments.

An entry's shard depends on its name alone (a hash of it), so it lands in the same shard
on every runner and every run, whatever else the manifest holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpti2.batch.lock import RUNNING, StatCache, may_serve_placeholders, read_document, sidecar
from gpti2.batch.manifest import Entry, Manifest
from gpti2.errors import UsageError

_SPEC = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")

# The most shards a manifest may be split into: more than any CI runs side by side (a
# GitHub Actions matrix stops at 256 jobs, GitLab's `parallel` at 200), and it keeps the
# fragment's name short (`<stem>.lock.shard-1000-of-1000.json`).
MAX_TOTAL = 1000

# Where `--shard auto` looks, in this order: (name, index variable, total variable, base).
CI_SOURCES = (
    ("GitLab CI", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    ("CircleCI", "CIRCLE_NODE_INDEX", "CIRCLE_NODE_TOTAL", 0),
    ("Buildkite", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
)


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `total` (1-based)."""

    index: int
    total: int

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"

    def holds(self, name: str) -> bool:
        return shard_of(name, self.total) == self.index

    def elsewhere(self, names: list[str]) -> list[tuple[str, Shard]]:
        """Each of `names` that another shard of this total holds, with that shard."""
        homes = {name: Shard(shard_of(name, self.total), self.total) for name in names}
        return [(name, home) for name, home in homes.items() if home != self]

    def fragment_path(self, manifest: Manifest) -> Path:
        return manifest.path.with_name(_fragment_name(manifest.path.stem, self.index, self.total))

    def rivals(self, manifest: Manifest) -> list[tuple[str, Path]]:
        """`(label, fragment)` of each shard of another total that ran beside the manifest
        (its run lock is there): their shares overlap this one's."""
        stem, folder = manifest.path.stem, manifest.path.parent
        # The run lock's name with the numbers as blanks: one naming rule, here and below.
        blank = sidecar(Path(_fragment_name(stem, "\0", "\0")), "flock").name
        head, middle, tail = (re.escape(part) for part in blank.split("\0"))
        pattern = re.compile(f"{head}([0-9]{{1,4}}){middle}([0-9]{{1,4}}){tail}")
        found = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                match = pattern.fullmatch(entry.name)
                if match and int(match[2]) != self.total:
                    index, total = int(match[1]), int(match[2])
                    fragment = folder / _fragment_name(stem, index, total)
                    found.append((f"shard {index}/{total}", fragment))
        return sorted(found)


def _fragment_name(stem: str, index: int | str, total: int | str) -> str:
    return f"{stem}.lock.shard-{index}-of-{total}.json"


def shard_of(name: str, total: int) -> int:
    """The 1-based shard of an entry name among `total`: a stable hash of the name."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % total + 1


def parse(spec: str, what: str = "--shard") -> Shard:
    """`K/N` with 1 <= K <= N <= MAX_TOTAL."""
    match = _SPEC.fullmatch(spec)
    shown = spec if len(spec) <= 40 else f"{spec[:20]}…{spec[-12:]}"
    if not match:
        raise UsageError(
            f"{what} {shown!r}: expected K/N, e.g. 2/4, or auto",
            hint="K is this runner's number, N how many runners share the manifest",
        )
    index, total = _number(match[1]), _number(match[2])
    if total > MAX_TOTAL:
        raise UsageError(
            f"{what} {shown!r}: N may be at most {MAX_TOTAL}",
            hint=f"N is how many runners share the manifest; give {MAX_TOTAL} or fewer",
        )
    if not 1 <= index <= total:
        raise UsageError(
            f"{what} {shown!r}: K must be between 1 and N",
            hint="the shards of N runners are 1/N, 2/N, ... N/N",
        )
    return Shard(index, total)


def _number(digits: str) -> int:
    """The value of a run of digits, or MAX_TOTAL + 1 for one far too long to matter (int()
    refuses more than 4,300 digits)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(MAX_TOTAL)) else MAX_TOTAL + 1


def from_environment(env: Mapping[str, str]) -> tuple[Shard, str]:
    """`--shard auto`: the shard and where it came from (GPTI2_SHARD, then GitLab, CircleCI
    and Buildkite's parallel-job variables)."""
    if env.get("GPTI2_SHARD", "").strip():
        return parse(env["GPTI2_SHARD"], "GPTI2_SHARD"), "GPTI2_SHARD"
    for source, index_var, total_var, base in CI_SOURCES:
        index, total = env.get(index_var, "").strip(), env.get(total_var, "").strip()
        if index and total:
            if not (_SPEC.fullmatch(f"{index}/{total}")):
                raise UsageError(f"{index_var}={index!r}, {total_var}={total!r}: not numbers")
            return parse(f"{int(index) + 1 - base}/{total}", index_var), source
    names = ", ".join(f"{i}/{t}" for _, i, t, _ in CI_SOURCES)
    raise UsageError(
        "--shard auto: no shard in the environment",
        hint=f"set GPTI2_SHARD=K/N, or run in a parallel CI job ({names}); or give --shard K/N",
    )


# -- merging --------------------------------------------------------------------------


@dataclass
class Merge:
    """The outcome of checking fragments: the merged records, or the problems."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    shards: set[str] = field(default_factory=set)


def merge(manifest: Manifest, fragments: list[Path], base: dict[str, dict[str, Any]]) -> Merge:
    """Check every fragment against the manifest and every image it names against its
    SHA-256 on disk, then merge them over `base` (the lock's records)."""
    result = Merge(records={k: v for k, v in base.items() if k in manifest.names()})
    entries = {entry.name: entry for entry in manifest.entries}
    cache = StatCache(sidecar(manifest.lock_path, "stat"))
    claimed: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path in fragments:
        try:
            data = read_document(path, "lock fragment")
        except UsageError as exc:
            result.problems.append(exc.message)
            continue
        if data is None:
            result.problems.append(f"no lock fragment at {path}")
            continue
        shard_text = data.get("shard")
        try:
            shard = parse(str(shard_text), f"{path}: shard")
        except UsageError:
            result.problems.append(f"{path} is not a shard fragment (no valid 'shard')")
            continue
        if data.get("manifestSha256") != manifest.sha256:
            result.problems.append(
                f"{path} was made from another version of {manifest.path.name} "
                "(its manifestSha256 differs)"
            )
            continue
        result.shards.add(str(shard))
        for name, record in data["images"].items():
            where = f"{path}: image {name!r}"
            if name not in entries:
                result.problems.append(f"{where} is not in {manifest.path.name}")
                continue
            if not isinstance(record, dict) or not shard.holds(name):
                result.problems.append(f"{where} does not belong to shard {shard}")
                continue
            if record.get("state") == RUNNING:
                result.problems.append(f"{where}: job {record.get('taskId')} is still running")
                continue
            earlier = claimed.get(name)
            if earlier is not None:
                if earlier[1] != record:
                    result.problems.append(
                        f"{where} disagrees with {earlier[0]} (overlapping fragments)"
                    )
                continue
            claimed[name] = (path, record)
            problem = _file_problem(manifest, entries[name], record, cache)
            if problem:
                result.problems.append(f"{where}: {problem}")
                continue
            result.records[name] = record
    cache.save()
    return result


def _file_problem(
    manifest: Manifest, entry: Entry, record: dict[str, Any], cache: StatCache
) -> str | None:
    relative, expected = record.get("path"), record.get("sha256")
    if not isinstance(relative, str) or not isinstance(expected, str):
        return "the record has no path or sha256"
    if not manifest.is_home(entry, relative):
        return f"{relative} is not where {entry.name} goes"
    root = manifest.root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        return f"{relative} is outside the manifest's folder"
    digest, emulator = cache.look(root / relative, relative, deep=True)
    if digest is None:
        return f"{relative} is missing"
    if digest != expected:
        return f"{relative} does not match its SHA-256 (file changed)"
    made_by = str(record.get("origin"))
    if emulator and not may_serve_placeholders(made_by):
        return f"{relative} is a placeholder of gpti2's emulator, not made by {made_by}"
    return None
