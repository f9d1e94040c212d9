"""Batch manifests: reading and validating the TOML, resolving every entry's settings.

Validated by hand (no pydantic): a rerun with nothing to do should not pay for importing
a validation library, and each message names the file, the entry and the key.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gpti2.errors import UsageError
from gpti2.images import EXTENSIONS
from gpti2.settings import Settings, parse_value

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME = 200  # a file stem: with its extension, within any file system's 255 bytes
SHARED_KEYS = ("route", "provider", "model", "aspect_ratio", "output_dir", "feature_id")
IMAGE_KEYS = ("name", "prompt", *SHARED_KEYS)
TOP_KEYS = ("defaults", "images")
ROUTES = ("quick", "job")

# What the lock records of an entry's shape, and how a change of each is said.
SHAPE_WORDS = {
    "route": "route",
    "provider": "provider",
    "model": "model",
    "feature": "feature",
    "mode": "mode",
    "aspectRatio": "aspect ratio",
    "prompt": "prompt",
}


@dataclass(frozen=True)
class Entry:
    """One image of the manifest, every setting resolved."""

    name: str
    prompt: str
    route: str
    provider: str | None
    model: str
    aspect_ratio: str
    feature_id: str | None
    mode: str | None
    folder: Path

    def shape(self) -> dict[str, str | None]:
        """Everything that shapes the image, as the fingerprint covers it."""
        return {
            "route": self.route,
            "provider": self.provider,
            "model": self.model,
            "feature": self.feature_id,
            "mode": self.mode,
            "aspectRatio": self.aspect_ratio,
            "prompt": self.prompt,
        }

    def fingerprint(self) -> str:
        """SHA-256 of the canonical JSON of everything that shapes the image."""
        canonical = json.dumps(
            self.shape(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class Manifest:
    """A validated manifest: its path, its bytes' digest and its entries in order."""

    path: Path
    entries: list[Entry]
    sha256: str = ""

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.lock.json")

    def relative(self, path: Path) -> str:
        """A path as the lock records it: relative to the manifest's folder, `/` separators.
        The file itself is not followed: a link named there is that name, wherever it points."""
        return (path.parent.resolve() / path.name).relative_to(self.root.resolve()).as_posix()

    def names(self) -> set[str]:
        return {entry.name for entry in self.entries}

    def is_home(self, entry: Entry, relative: str) -> bool:
        """True when `relative` (a path as the lock records it) is where `entry` writes:
        its output_dir, its name, an image extension. A record pointing elsewhere (the
        output_dir changed, or a fragment names another image's file) is not its image."""
        path = PurePosixPath(relative)
        folder = entry.folder.relative_to(self.root.resolve()).as_posix()
        return (
            path.parent.as_posix() == folder
            and path.stem == entry.name
            and path.suffix[1:] in EXTENSIONS.values()
        )


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_table(
    path: Path, where: str, table: Any, allowed: tuple[str, ...], required: tuple[str, ...]
) -> None:
    if not isinstance(table, dict):
        raise UsageError(f"{path}: {where} must be a table")
    for key, value in table.items():
        if key not in allowed:
            raise UsageError(f"{path}: {where}, key {key!r}: unknown key{_suggest(key, allowed)}")
        if not isinstance(value, str):
            raise UsageError(f"{path}: {where}, key {key!r}: must be a string")
        if key == "route" and value not in ROUTES:
            raise UsageError(f'{path}: {where}, key {key!r}: must be "quick" or "job"')
    for key in required:
        if key not in table:
            raise UsageError(f"{path}: {where}, key {key!r}: missing required key")


def _label(index: int, item: Any) -> str:
    name = item.get("name") if isinstance(item, dict) else None
    return f"[[images]] #{index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")


MANIFEST_HINT = (
    'give a TOML file with [[images]] entries (name = "...", prompt = "..."), such as assets.toml'
)


def _read(path: Path) -> tuple[dict[str, Any], bytes]:
    import tomllib

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no manifest at {path}", hint=MANIFEST_HINT) from None
    except OSError as exc:
        raise UsageError(
            f"cannot read manifest {path}: {exc.strerror or exc}", hint=MANIFEST_HINT
        ) from None
    try:
        return tomllib.loads(data.decode("utf-8")), data
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read manifest {path}: {exc}", hint="save it as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"{path} is not valid TOML: {exc}",
            hint="fix the file where the line and column point (the syntax: toml.io)",
        ) from None


def validate(path: Path, raw: dict[str, Any]) -> tuple[dict[str, str], list[dict[str, str]]]:
    """The defaults and image tables of a parsed manifest; a UsageError naming file, entry
    and key for the first problem."""
    for key in raw:
        if key not in TOP_KEYS:
            if key == "image" or key.lower() in ("images", "image"):
                raise UsageError(
                    f"{path}: unknown table {key!r}",
                    hint="did you mean `[[images]]`? each image is an [[images]] table",
                )
            raise UsageError(f"{path}: key {key!r}: unknown key{_suggest(key, TOP_KEYS)}")
    defaults = raw.get("defaults", {})
    _check_table(path, "[defaults]", defaults, SHARED_KEYS, ())
    items = raw.get("images", [])
    if not isinstance(items, list):
        raise UsageError(f"{path}: 'images' must be a list of [[images]] tables")
    for index, item in enumerate(items):
        _check_table(path, _label(index, item), item, IMAGE_KEYS, ("name", "prompt"))
    if not items:
        raise UsageError(
            f"{path} names no images: there is nothing to generate",
            hint='add an entry: [[images]] with name = "..." and prompt = "..."',
        )
    return defaults, items


def load_manifest(path: Path, settings: Settings) -> Manifest:
    """Parse and validate a manifest; a UsageError naming file, entry and key otherwise."""
    raw, data = _read(path)
    defaults, items = validate(path, raw)
    root = path.parent.resolve()
    seen: set[str] = set()
    ratios: dict[str, str] = {}
    folders: dict[str, Path] = {}
    entries = []
    for index, image in enumerate(items):
        name = image["name"]
        where = f"{path}: [[images]] #{index + 1} ({name!r})"
        if not NAME.fullmatch(name) or ".." in name or len(name) > MAX_NAME:
            raise UsageError(
                f"{where}: unsafe name",
                hint="names are file stems: [A-Za-z0-9][A-Za-z0-9._-]*, without '..', "
                f"at most {MAX_NAME} characters",
            )
        if name in seen:
            raise UsageError(f"{where}: duplicate name")
        seen.add(name)
        if not image["prompt"].strip():
            raise UsageError(f"{where}: the prompt is empty")

        def pick(key: str, image: dict[str, str] = image) -> str | None:
            return image.get(key, defaults.get(key))

        route = pick("route") or "quick"
        ratio = pick("aspect_ratio") or settings.aspect_ratio
        if ratio not in ratios:  # each distinct value checked once
            ratios[ratio] = parse_value("aspect_ratio", ratio, f"{where}, key 'aspect_ratio'")
        ratio = ratios[ratio]
        output_dir = pick("output_dir") or "."
        folder = folders.get(output_dir)
        if folder is None:
            folder = folders[output_dir] = (root / output_dir).resolve()
        if not folder.is_relative_to(root):
            raise UsageError(f"{where}: output_dir {output_dir!r} is outside the manifest's folder")
        job = route == "job"
        entries.append(
            Entry(
                name=name,
                prompt=image["prompt"].strip(),
                route=route,
                provider=None if job else (pick("provider") or settings.provider),
                model=pick("model") or (settings.job_model if job else settings.model),
                aspect_ratio=ratio,
                feature_id=(pick("feature_id") or settings.feature_id) if job else None,
                mode="text_to_image" if job else None,
                folder=folder,
            )
        )
    return Manifest(path, entries, hashlib.sha256(data).hexdigest())
