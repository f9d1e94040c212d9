"""`gpti2 config`: read and write the active profile of the config file."""

from __future__ import annotations

from typing import Annotated

import typer

from gpti2.cli.common import JsonOption, QuietOption, command_app, enter
from gpti2.settings import shown_value

app = command_app("Read and write settings of the active profile.")

KeyArg = Annotated[str, typer.Argument(help="A setting, for example base_url.", metavar="KEY")]


def _key(key: str) -> str:
    from gpti2.settings import KEYS, unknown_key

    normalized = key.replace("-", "_")
    if normalized not in KEYS:
        raise unknown_key(key)
    return normalized


@app.command("get")
def get(ctx: typer.Context, key: KeyArg, json_out: JsonOption = False, quiet: QuietOption = False):
    """Print the effective value of KEY."""
    ui = enter(ctx, json_out, quiet)
    key = _key(key)
    settings = ui.settings()
    value = settings.values[key]
    if ui.state.json:
        ui.out_json(settings.setting_json(key))
    else:
        ui.out(shown_value(value))
        source = settings.sources[key]
        if source.startswith("env "):  # it wins over the profile: say so, it surprises
            ui.note(f"{key} comes from {source[4:]}, which wins over the config file")


@app.command("set", context_settings={"ignore_unknown_options": True})
def set_(
    ctx: typer.Context,
    key: KeyArg,
    value: Annotated[str, typer.Argument(help="The new value.")],
    json_out: JsonOption = False,
    quiet: QuietOption = False,
):
    """Set KEY to VALUE in the active profile (creating the file)."""
    from gpti2 import settings as config

    ui = enter(ctx, json_out, quiet)
    key = _key(key)
    current = ui.settings(new_profile=True)
    parsed = config.parse_value(key, value, key)
    config.save_value(current.path, current.profile, key, parsed)
    if ui.state.json:
        ui.out_json({"key": key, "value": parsed, "profile": current.profile})
    shown = shown_value(parsed) if isinstance(parsed, bool) else repr(parsed)
    ui.info(f"set {key} = {shown} in [profiles.{current.profile}] of {current.path}")


@app.command("unset")
def unset(
    ctx: typer.Context, key: KeyArg, json_out: JsonOption = False, quiet: QuietOption = False
):
    """Remove KEY from the active profile."""
    from gpti2 import settings as config

    ui = enter(ctx, json_out, quiet)
    key = _key(key)
    current = ui.settings()
    config.save_value(current.path, current.profile, key, None)
    if ui.state.json:
        ui.out_json({"key": key, "profile": current.profile})
    ui.info(f"removed {key} from [profiles.{current.profile}] of {current.path}")


@app.command("list")
def list_(ctx: typer.Context, json_out: JsonOption = False, quiet: QuietOption = False):
    """Print the effective settings and where each came from."""
    ui = enter(ctx, json_out, quiet)
    settings = ui.settings()
    if ui.state.json:
        ui.out_json(settings.as_json())
        return
    rows = [("profile", settings.profile, settings.sources["profile"])]
    rows += [(k, shown_value(v), settings.sources[k]) for k, v in settings.values.items()]
    key_width = max(len(key) for key, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    for key, value, source in rows:
        ui.out(f"{key.ljust(key_width)}  {value.ljust(value_width)}  ({source})")


@app.command("path")
def path(ctx: typer.Context, json_out: JsonOption = False, quiet: QuietOption = False):
    """Print where the config file is."""
    from gpti2.settings import config_path

    ui = enter(ctx, json_out, quiet)
    if ui.state.json:
        ui.out_json({"path": str(config_path())})
    else:
        ui.out(str(config_path()))
