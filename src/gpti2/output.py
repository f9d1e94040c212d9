"""Where a generated image goes and what is said about it: the output decided (and
checked) before any request, the content-addressed "already had", the dry-run plan, and
the `--json` answer of `gpti2 generate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from gpti2.errors import UsageError
from gpti2.images import ImageInfo, reduced_ratio


def dry_run_plan(base_url: str, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request a dry run shows. For `local` there is no URL yet: the emulator's port is
    only chosen when it starts, so `url` is None and `path` says where it would go."""
    local = base_url == "local"
    return {
        "method": "POST",
        "url": None if local else base_url + route,
        "baseUrl": base_url,
        "path": route,
        "body": body,
    }


class Placement(NamedTuple):
    """Exactly one of: stdout, a named file (`target`), or a folder where the image gets
    its content-addressed name."""

    to_stdout: bool = False
    folder: Path | None = None
    target: Path | None = None
    force: bool = False

    @classmethod
    def choose(
        cls,
        output: str | None,
        output_dir: str,
        force: bool,
        *,
        json_out: bool = False,
        stdout_is_terminal: bool = False,
    ) -> Placement:
        """Read `-o` (None, `-`, a folder or a file) and refuse what cannot work."""
        if output == "-":
            if json_out:
                raise UsageError("--json and -o - both write to stdout", hint="choose one of them")
            if stdout_is_terminal:  # as curl and httpie: no binary on a screen
                raise UsageError(
                    "refusing to write the image's bytes to a terminal",
                    hint="redirect them (-o - > image.png), pipe them, or give -o a file or folder",
                )
            return cls(to_stdout=True, force=force)
        if output is None:
            return cls(folder=Path(output_dir).expanduser(), force=force)
        if not output.strip():  # a script's -o "$OUT" with OUT unset
            raise UsageError("-o is empty", hint="give a file or a folder, or - for stdout")
        path = Path(output).expanduser()
        if _is_folder(path) or output.endswith(("/", "\\")):
            return cls(folder=path, force=force)
        return cls(target=path, force=force)

    def check(self) -> None:
        """Refuse, before any request, an output that could not be written."""
        from gpti2 import files

        if self.target is not None:
            files.check_target(self.target, self.force)
        elif self.folder is not None:
            files.check_folder(self.folder)

    def save(self, prompt: str, data: bytes, info: ImageInfo) -> Saved:
        """Write the image where it goes (not for stdout); an identical file already under
        its content-addressed name is kept as it is."""
        from gpti2 import files, images

        if self.target is not None:
            files.write_atomic(self.target, data, self.force)
            return Saved(self.target, info, mislabeled=images.extension_mismatch(self.target, info))
        assert self.folder is not None
        path = self.folder / images.default_name(prompt, info)
        if path.exists() and not self.force and images.describe_file(path) == info:
            return Saved(path, info, already_had=True)
        files.write_atomic(path, data, self.force)
        return Saved(path, info)


def _is_folder(path: Path) -> bool:
    """`path.is_dir()`, with a path the system refuses (a name too long) not a folder:
    `check` then says why it cannot be written."""
    try:
        return path.is_dir()
    except OSError:
        return False


class Saved(NamedTuple):
    """An image on disk: where, what, and whether it was there already."""

    path: Path
    info: ImageInfo
    already_had: bool = False
    mislabeled: bool = False  # its extension names another format (PNG bytes in .jpg)

    @property
    def verb(self) -> str:
        return "already had" if self.already_had else "wrote"


class Generated(NamedTuple):
    """What `gpti2 generate` answers: the image, where it went, and what was asked."""

    path: Path | None
    info: ImageInfo
    provider: str
    model_id: str
    requested_aspect_ratio: str
    elapsed_ms: int

    @property
    def aspect_ratio(self) -> str | None:
        return reduced_ratio(self.info.width, self.info.height)

    @property
    def ratio_ignored(self) -> bool:
        """The server sent another shape than the one asked for (API.md allows it)."""
        if not self.info.width or not self.info.height:
            return False
        w, h = (int(part) for part in self.requested_aspect_ratio.split(":"))
        asked, got = w / h, self.info.width / self.info.height
        return abs(got - asked) / asked > 0.02  # pixels round: 21:9 at 512 wide is 512x219

    def as_json(self) -> dict[str, Any]:
        return {
            "path": None if self.path is None else str(self.path),
            "bytes": self.info.bytes,
            "sha256": self.info.sha256,
            "format": self.info.format,
            "width": self.info.width,
            "height": self.info.height,
            "provider": self.provider,
            "modelId": self.model_id,
            "aspectRatio": self.aspect_ratio,
            "requestedAspectRatio": self.requested_aspect_ratio,
            "elapsedMs": self.elapsed_ms,
        }
