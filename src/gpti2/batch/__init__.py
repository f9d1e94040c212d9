"""Batch generation from a TOML manifest, for CI asset pipelines.

- `manifest`: reading and validating the manifest, each entry's resolved settings.
- `lock`: the lock file (with origins), its journal, the run lock and the stat cache.
- `shard`: a stable share of the entries per CI runner, and merging the shards' fragments.
- `runner`: what must be generated and why, and generating it concurrently.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gpti2.batch.lock import LOCAL, Lock, StatCache, origin_label, origin_of, sidecar
from gpti2.batch.manifest import Entry, Manifest, load_manifest
from gpti2.batch.runner import (
    BatchFailed,
    Events,
    Interrupted,
    Item,
    Result,
    Runner,
    conflicts,
    plan,
    up_to_date,
)

if TYPE_CHECKING:
    from gpti2.batch.shard import Shard

__all__ = [
    "LOCAL",
    "BatchFailed",
    "Entry",
    "Events",
    "Interrupted",
    "Item",
    "Lock",
    "Manifest",
    "Result",
    "Runner",
    "StatCache",
    "conflicts",
    "load_manifest",
    "open_lock",
    "origin_label",
    "origin_of",
    "plan",
    "sidecar",
    "up_to_date",
]


def open_lock(manifest: Manifest, origin: str, shard: Shard | None = None) -> Lock:
    """The records a run starts from and writes to: the lock, or for a shard its own
    fragment (seeded with the lock's records of the shard's entries)."""
    lock = Lock.read(manifest.lock_path, origin)
    if shard is None:
        return lock
    fragment = Lock.read(shard.fragment_path(manifest), origin)
    fragment.extra = {"shard": str(shard), "manifestSha256": manifest.sha256}
    for name, record in lock.records.items():
        if shard.holds(name):
            fragment.records.setdefault(name, record)
    fragment.without_origin += lock.without_origin
    return fragment
