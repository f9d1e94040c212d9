"""Settings: flag > environment > profile in the config file > built-in default, with sources."""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gpti2.errors import UsageError

DEFAULT_BASE_URL = "https://www.gpt-image2.dev"


def _text(value: Any) -> str:
    from gpti2.display import has_controls

    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a non-empty string")
    if has_controls(value):
        raise ValueError("control characters are not allowed")
    return value.strip()


_PORT = re.compile(r":([^:\]]*)$")


def url_problem(url: str) -> str | None:
    """Why `url` is not a usable http(s) URL (bad scheme, no host, bad port), or None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "is not an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    hostport = parts.netloc.rpartition("@")[2]
    if hostport.startswith("[") and not re.fullmatch(r"\[[^\]]*\](:[^:]*)?", hostport):
        return "has text after its [IPv6] address that is not a :port"
    port = _PORT.search(hostport)
    if port and not (port[1].isascii() and port[1].isdigit() and 1 <= int(port[1]) <= 65535):
        return f"has a bad port {port[1]!r} (expected 1 to 65535)"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return "holds white space or control characters"
    if not parts.hostname.isascii():
        from gpti2.http1 import ascii_host

        try:
            ascii_host(parts.hostname)
        except UnicodeError:
            return f"has a host name that is not a valid domain name ({parts.hostname!r})"
    return None


def _base_url(value: Any) -> str:
    text = _text(value)
    if text == "local":
        return text
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", text):
        raise ValueError("expected an http:// or https:// URL, or `local`")
    problem = url_problem(text)
    if problem:
        raise ValueError(f"the URL {problem}")
    return text.rstrip("/")


class BadValue(ValueError):
    """A bad setting value, with a suggestion for the hint line."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def suggest_aspect_ratio(text: str) -> str | None:
    """`16:9` for `16x9`, `1:1` for `1024x1024`: the W:H a size or ratio meant."""
    import math

    found = re.fullmatch(r"\s*(\d+)\s*[xX×*/,:-]\s*(\d+)\s*", text)
    if not found:
        return None
    w, h = int(found.group(1)), int(found.group(2))
    if not (w and h):
        return None
    common = math.gcd(w, h)
    return f"{w // common}:{h // common}"


def _matching(pattern: str, expected: str) -> Callable[[Any], str]:
    """A parser of text that must match `pattern` whole; `expected` says what it takes."""

    def parse(value: Any) -> str:
        text = _text(value)
        if not re.fullmatch(pattern, text):
            raise ValueError(expected)
        return text

    return parse


_cookie_name = _matching(
    r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+",
    "a cookie name is ASCII letters, digits and !#$%&'*+-.^_`|~ only",
)
_status_route = _matching(
    r"((GET|POST) )?/\S*", "expected `[GET|POST ]/path`, with {taskId} where the id goes"
)
_start_route = _matching(r"(POST )?/\S*", "expected `[POST ]/path`")


def _aspect_ratio(value: Any) -> str:
    text = _text(value)
    if not re.fullmatch(r"[1-9]\d*:[1-9]\d*", text):
        meant = suggest_aspect_ratio(text)
        raise BadValue(
            "expected W:H with positive integers, for example 16:9",
            hint=f"did you mean {meant}?" if meant else None,
        )
    return text


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value)
        if text not in choices:
            raise ValueError("expected one of " + ", ".join(choices))
        return text

    return parse


def _api(value: Any) -> str:
    from gpti2.dialects import DIALECTS

    text = _text(value)
    if text not in DIALECTS:
        raise BadValue(
            "expected one of " + ", ".join(DIALECTS),
            hint="; ".join(f"{name}: {d.description}" for name, d in DIALECTS.items()),
        )
    return text


def _positive_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number of seconds") from None
    if not 0 < number < 1e9:  # NaN and infinity included
        raise ValueError("expected a number above 0")
    return number


def _seconds(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number of seconds") from None
    if not number >= 0:
        raise ValueError("expected a number of seconds, 0 or more")
    return number


def _count(value: Any) -> int:
    if isinstance(value, float | bool):
        raise ValueError("expected a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number") from None
    if number < 0:
        raise ValueError("expected a whole number, 0 or more")
    return number


def _switch(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError("expected true or false")


def _positive_count(value: Any) -> int:
    number = _count(value)
    if number < 1:
        raise ValueError("expected a whole number, 1 or more")
    return number


# Every key a profile may hold, with its parser.
KEYS: dict[str, Callable[[Any], Any]] = {
    "base_url": _base_url,
    "provider": _text,
    "model": _text,
    "aspect_ratio": _aspect_ratio,
    "output_dir": _text,
    "feature_id": _text,
    "mode": _choice("text_to_image", "image_to_image"),
    "api": _api,
    "start_route": _start_route,
    "status_route": _status_route,
    "job_provider": _text,
    "job_model": _text,
    "auth_scheme": _choice("bearer", "cookie"),
    "cookie_name": _cookie_name,
    "timeout": _positive_float,
    "retries": _count,
    "max_images": _positive_count,
    "poll_interval": _seconds,
    "history": _switch,
}

DEFAULTS: dict[str, Any] = {
    "base_url": DEFAULT_BASE_URL,
    "provider": "openai",
    "model": "dall-e-3",
    "aspect_ratio": "1:1",
    "output_dir": ".",
    "feature_id": "ai-baby-image",
    "mode": "text_to_image",
    "api": "gpti2",
    # The keys in dialects.DIALECT_KEYS take their default from the profile's `api`.
    "start_route": None,
    "status_route": None,
    "job_provider": None,
    "job_model": None,
    "auth_scheme": None,
    "cookie_name": None,
    "timeout": 120.0,
    "retries": 3,
    "max_images": 100,
    "poll_interval": 2.0,
    "history": True,
}

ENV_VARS = {
    "base_url": "GPTI2_BASE_URL",
    "timeout": "GPTI2_TIMEOUT",
    "retries": "GPTI2_RETRIES",
    "poll_interval": "GPTI2_POLL_INTERVAL",
}


def config_path() -> Path:
    """Where the config file lives (platformdirs' user config folder)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("gpti2")) / "config.toml"


# What a good value looks like, for the hint under a bad one.
EXAMPLES = {
    "base_url": "an http:// or https:// URL such as https://www.gpt-image2.dev, or local",
    "aspect_ratio": "W:H with whole numbers above 0, such as 1:1, 16:9 or 3:2",
    "timeout": "a number of seconds above 0, such as 120",
    "retries": "a whole number, 0 or more, such as 3",
    "poll_interval": "a number of seconds above 0, such as 2",
    "max_images": "a whole number above 0, such as 100",
    "history": "true or false",
}


def unknown_key(key: str, label: str | None = None) -> UsageError:
    """The error for a key that is not a setting, with the nearest one when there is one."""
    import difflib

    close = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.6)
    return UsageError(
        f"unknown key {key!r}" + (f" in {label}" if label else ""),
        hint=(f"did you mean {close[0]!r}? " if close else "")
        + "known keys: "
        + ", ".join(sorted(KEYS)),
    )


def parse_value(key: str, value: Any, label: str | None = None) -> Any:
    """Validate one setting; a UsageError naming where it came from (`label`) otherwise."""
    if key not in KEYS:
        raise unknown_key(key, label)
    try:
        return KEYS[key](value)
    except (ValueError, TypeError) as exc:
        hint = getattr(exc, "hint", None) or (f"give {EXAMPLES[key]}" if key in EXAMPLES else None)
        raise UsageError(f"bad value {value!r} for {label or key}: {exc}", hint=hint) from None


def load_config(path: Path) -> dict[str, dict[str, Any]]:
    """Read and validate the config file; {} when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read config file {path}: {exc}") from None
    import tomllib  # only when there is a file: a few ms of every start-up otherwise

    try:
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as exc:
        why = exc if isinstance(exc, tomllib.TOMLDecodeError) else "nested too deeply"
        raise UsageError(
            f"config file {path} is not valid TOML: {why}", hint="fix it or remove it"
        ) from None
    extra = set(raw) - {"profiles"}
    if extra:
        raise UsageError(
            f"config file {path}: unknown key {sorted(extra)[0]!r}",
            hint="settings live in tables such as [profiles.default]",
        )
    profiles = raw.get("profiles", {})
    if not isinstance(profiles, dict):
        raise UsageError(f"config file {path}: 'profiles' must be a table")
    result: dict[str, dict[str, Any]] = {}
    for name, table in profiles.items():
        if not isinstance(table, dict):
            raise UsageError(f"config file {path}: [profiles.{name}] must be a table")
        result[name] = {}
        for key, value in table.items():
            if key not in KEYS:
                parse_value(key, value, f"[profiles.{name}] of config file {path}")
            label = f"{key!r} in [profiles.{name}] of config file {path}"
            result[name][key] = parse_value(key, value, label)
    return result


def shown_value(value: Any) -> str:
    """A setting's value as a person writes it (`true`/`false` for switches)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    # JSON escapes are TOML escapes; TOML also wants DEL escaped, which JSON leaves raw.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else _toml_string(name)


def save_value(path: Path, profile: str, key: str, value: Any | None) -> None:
    """Set (or with None, remove) one key of a profile, rewriting the file atomically."""
    from gpti2.files import write_atomic

    profiles = load_config(path)
    table = profiles.setdefault(profile, {})
    if value is None:
        table.pop(key, None)
        if not table:
            del profiles[profile]  # no empty [profiles.x] left behind
    else:
        table[key] = value
    lines = []
    for name in sorted(profiles):
        lines.append(f"[profiles.{_toml_key(name)}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in sorted(profiles[name].items()))
        lines.append("")
    write_atomic(path, "\n".join(lines).encode(), force=True)


class Settings:
    """The effective settings of one command, and where each came from."""

    def __init__(
        self,
        profile: str,
        values: dict[str, Any],
        sources: dict[str, str] | None = None,
        path: Path | None = None,
    ) -> None:
        self.profile, self.values = profile, values
        self.sources = {} if sources is None else sources
        self.path = path

    def with_values(self, **values: Any) -> Settings:
        """A copy with some values replaced."""
        return Settings(self.profile, {**self.values, **values}, self.sources, self.path)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def as_json(self) -> dict[str, Any]:
        """`config list --json`: the profile, the file, every value and its source."""
        return {
            "profile": self.profile,
            "path": str(self.path),
            "settings": {
                k: {"value": v, "source": self.sources[k]} for k, v in self.values.items()
            },
        }

    def setting_json(self, key: str) -> dict[str, Any]:
        """`config get KEY --json`: one value and where it came from."""
        return {"key": key, "value": self.values[key], "source": self.sources[key]}


def resolve(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    path: Path | None = None,
    flag_names: Mapping[str, str] | None = None,
    missing_profile_ok: bool = False,
) -> Settings:
    """Merge flags, environment, the active profile and defaults.

    A profile named by flag or environment must exist, unless `missing_profile_ok`
    (for `config set`, which creates it)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    path = config_path() if path is None else path

    if "profile" in flags:
        profile, profile_source = flags["profile"], "flag"
    elif env.get("GPTI2_PROFILE"):
        profile, profile_source = env["GPTI2_PROFILE"], "env GPTI2_PROFILE"
    else:
        profile, profile_source = "default", "default"

    profiles = load_config(path)
    table = profiles.get(profile, {})
    if profile != "default" and profile not in profiles and not missing_profile_ok:
        raise UsageError(
            f"no profile {profile!r} in {path}",
            hint=f"create it with: gpti2 --profile {shlex.quote(profile)} config set base_url "
            + (shlex.quote(str(flags["base_url"])) if "base_url" in flags else "URL"),
        )

    values: dict[str, Any] = {}
    sources: dict[str, str] = {"profile": profile_source}
    for key, default in DEFAULTS.items():
        var = ENV_VARS.get(key)
        if key in flags:
            flag = (flag_names or {}).get(key) or "--" + key.replace("_", "-")
            values[key], sources[key] = parse_value(key, flags[key], flag), "flag"
        elif var and env.get(var):
            values[key] = parse_value(key, env[var], f"environment variable {var}")
            sources[key] = f"env {var}"
        elif key in table:
            values[key], sources[key] = table[key], f"config [profiles.{profile}]"
        elif default is None:  # a dialect key: the default of the profile's `api`
            from gpti2.dialects import get

            api = values["api"]
            values[key] = get(api).default(key, values["base_url"])
            sources[key] = "default" if sources["api"] == "default" else f"default for api {api}"
        else:
            values[key], sources[key] = default, "default"
    return Settings(profile=profile, values=values, sources=sources, path=path)
