"""How `--help` reads: one placeholder style, full command descriptions, the root options
in every command's help, and examples for every command.

Every command needs its examples here (tests/test_cli_help.py checks): add an entry to
EXAMPLES keyed by the command path without `gpti2`, e.g. "job start".
Kept free of heavy imports: `gpti2 --help` loads this module.
"""

from __future__ import annotations

from typing import Any

# (what it does, the command line); the comment line comes first, as gh and httpie do.
EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "": [
        (
            "try it offline: the built-in emulator, no account",
            'gpti2 generate "a fox" --base-url local',
        ),
        (
            "one image from the quick route into the current folder",
            'gpti2 generate "a red fox in snow"',
        ),
        ("an authenticated job, followed to the end", 'gpti2 job start "a lighthouse" --wait'),
        ("a project's images from a manifest", "gpti2 batch assets.toml"),
    ],
    "generate": [
        ("writes ./a-red-fox-in-snow-<hash8>.png", 'gpti2 generate "a red fox in snow"'),
        ("16:9, into a folder", 'gpti2 generate "a red fox in snow" -a 16:9 -o assets/'),
        ("a named file, replaced if it exists", 'gpti2 generate "a fox" -o fox.png --force'),
        ("the prompt from stdin", 'echo "a red fox" | gpti2 generate -'),
        ("the raw image bytes on stdout", 'gpti2 generate "a fox" -o - > fox.png'),
        ("show the request, send nothing", 'gpti2 generate "a fox" -p replicate --dry-run'),
    ],
    "job": [
        ("start, wait and download in one go", 'gpti2 job start "a lighthouse" --wait -o out/'),
        ("come back to a job later", 'gpti2 job fetch "$id" --wait'),
    ],
    "job start": [
        ("the job id alone on stdout", 'id=$(gpti2 job start "a lighthouse at dawn" -a 16:9)'),
        ("wait for it and write its images", 'gpti2 job start "a lighthouse" --wait -o out/'),
        ("from a reference image", 'gpti2 job start "make it blue" --image sketch.png'),
    ],
    "job status": [
        ("one word: pending, running, succeeded, failed, ...", 'gpti2 job status "$id"'),
        ("poll until it is done", 'gpti2 job status "$id" --wait --json'),
    ],
    "job fetch": [
        ("<ID>-1.png and so on into out/", 'gpti2 job fetch "$id" -o out/'),
        ("wait for a running job first", 'gpti2 job fetch "$id" --wait --json'),
    ],
    "batch": [
        ("generate what is new or changed", "gpti2 batch assets.toml"),
        ("in CI: exit 9 when an image is missing or stale", "gpti2 batch assets.toml --check"),
        ("regenerate one image", "gpti2 batch assets.toml --only hero --force"),
        ("rehearse offline, no credits", "GPTI2_BASE_URL=local gpti2 batch assets.toml"),
        (
            "one CI runner's share (GitLab parallel: --shard auto)",
            "gpti2 batch assets.toml --shard 2/4",
        ),
        ("verify and merge the shards' fragments", "gpti2 batch assets.toml --merge"),
    ],
    "auth": [
        ("store a token in the OS keyring", "gpti2 auth login"),
        ("which token is used, and from where", "gpti2 auth status"),
    ],
    "auth login": [
        ("asks for the token without echo", "gpti2 auth login"),
        ("for scripts: the token from stdin", 'echo "$TOKEN" | gpti2 auth login --with-token'),
        ("no keyring (headless): a 0600 file", "gpti2 auth login --insecure-storage"),
    ],
    "auth status": [
        ("profile, host, token source, masked token", "gpti2 auth status"),
        ("for another host", "gpti2 auth status --base-url http://127.0.0.1:8787"),
    ],
    "auth token": [
        ("the token alone on stdout (its source on stderr)", "gpti2 auth token"),
        (
            "hand the token to another tool",
            'curl -H "Authorization: Bearer $(gpti2 auth token)" ...',
        ),
    ],
    "auth logout": [
        ("remove the stored token", "gpti2 auth logout"),
        ("for one profile", "gpti2 auth logout --profile staging"),
    ],
    "config": [
        ("every effective value and where it came from", "gpti2 config list"),
        ("a default for the active profile", "gpti2 config set aspect_ratio 16:9"),
    ],
    "config get": [
        ("the effective value", "gpti2 config get base_url"),
        ("with its source", "gpti2 config get timeout --json"),
    ],
    "config set": [
        ("in [profiles.default]", "gpti2 config set aspect_ratio 16:9"),
        ("create a profile", "gpti2 --profile staging config set base_url https://staging.example"),
    ],
    "config unset": [
        ("back to the default", "gpti2 config unset aspect_ratio"),
    ],
    "config list": [
        ("every setting, its value and its source", "gpti2 config list"),
        ("as JSON", "gpti2 config list --json"),
    ],
    "config path": [
        ("where the TOML file lives", "gpti2 config path"),
    ],
    "serve": [
        ("http://127.0.0.1:8787, prints a token", "gpti2 serve"),
        ("a free port, bigger images", "gpti2 serve --port 0 --image-size 1024"),
        ("rehearse a bad day", "gpti2 serve --latency 0.5 --fail-rate 0.2"),
    ],
    "completion": [
        ("bash: for this shell", 'eval "$(gpti2 completion bash)"'),
        ("zsh: into a folder on $fpath", "gpti2 completion zsh > ~/.zfunc/_gpti2"),
        ("fish", "gpti2 completion fish > ~/.config/fish/completions/gpti2.fish"),
    ],
    "history": [
        ("the last 20 images and failures", "gpti2 history"),
        ("search the prompts", 'gpti2 history -q "red fox" --since 7d'),
        ("what failed, for a script", "gpti2 history --failed --json"),
    ],
    "history show": [
        ("one row in full, and whether its file is unchanged", "gpti2 history show 42"),
    ],
    "history path": [
        ("where the SQLite database is", "gpti2 history path"),
    ],
    "compare": [
        (
            "two models on one prompt, offline",
            'gpti2 compare "a red fox" -m openai:dall-e-3 -m replicate:flux --base-url local',
        ),
        (
            "two prompts, two shapes, then open the page",
            'gpti2 compare "a fox" "a hare" -m openai:dall-e-3 -a 1:1 -a 16:9 --open',
        ),
        ("job-route models", 'gpti2 compare "a fox" -m gpt-image-2-t2i --route job -o cmp/'),
    ],
    "gallery": [
        ("the page of the last 200 images", "gpti2 gallery --open"),
        ("every fox of the week", "gpti2 gallery -q fox --since 7d -o foxes.html"),
        ("a folder of images", "gpti2 gallery assets/generated"),
    ],
    "inspect": [
        ("format, size, SHA-256, C2PA, and the prompt that made it", "gpti2 inspect fox.png"),
        ("several files, for a script", "gpti2 inspect *.png --json"),
    ],
}

# Placeholders for options whose values are not plain text, by option name.
METAVARS = {
    "--aspect-ratio": "W:H",
    "--mode": "[text_to_image|image_to_image]",
    "--provider": "NAME",
    "--model": "ID",
    "--feature-id": "ID",
    "--timeout": "SECONDS",
    "--poll-interval": "SECONDS",
    "--wait-timeout": "SECONDS",
    "--retries": "N",
    "--concurrency": "N",
    "--host": "ADDRESS",
    "--port": "PORT",
    "--token": "TOKEN",
    "--db": "PATH",
    "--shard": "K/N",
}
# By the type's name as click spells it: `int`, `int range`, `float`, `float range`, `path`.
_TYPE_METAVARS = {"int": "N", "float": "NUMBER", "path": "PATH"}

# Root options that are not repeated in a subcommand's "Global options": the command
# lists its own -q and --json; --version and --help belong to the root alone.
_NOT_GLOBAL = {"--version", "--help", "--json", "--quiet"}


def _type_metavar(param: Any) -> str:
    name = (getattr(param.type, "name", "") or "").lower()
    return _TYPE_METAVARS.get(name.split()[0] if name else "", "TEXT")


def _argument_metavar(param: Any) -> Any:
    name = (param.metavar or param.name or "").upper()
    many = "..." if param.nargs != 1 else ""

    def make_metavar(ctx: Any = None, *, usage: bool = False) -> str:
        text = name + many
        return f"[{text}]" if usage and not param.required else text

    return make_metavar


def polish(command: Any, path: str) -> Any:
    """Give a loaded command (and its subcommands) the house help; returns it."""
    for param in command.params:
        if param.param_type_name == "argument":
            param.make_metavar = _argument_metavar(param)
            param.metavar = (param.metavar or param.name or "").upper()
        elif not getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = next(
                (METAVARS[o] for o in param.opts if o in METAVARS), _type_metavar(param)
            )
    original_epilog = command.format_epilog

    def format_epilog(ctx: Any, formatter: Any) -> None:
        write_global_options(ctx, formatter)
        write_examples(path, formatter)
        original_epilog(ctx, formatter)

    command.format_epilog = format_epilog
    subcommands = getattr(command, "commands", None) or {}
    for name, sub in subcommands.items():
        if sub.help and not sub.short_help:
            sub.short_help = sub.help.strip().splitlines()[0]
        polish(sub, f"{path} {name}".strip())
    return command


def global_option_records(ctx: Any) -> list[tuple[str, str]]:
    """(option, help) for the root options, as the root's own help shows them."""
    root = ctx.find_root()
    records = []
    for param in root.command.params:
        if param.param_type_name != "option" or set(param.opts) & _NOT_GLOBAL:
            continue
        record = param.get_help_record(root)
        if record:
            records.append(record)
    return records


def write_global_options(ctx: Any, formatter: Any) -> None:
    if ctx.parent is None:
        return
    records = global_option_records(ctx)
    if records:
        with formatter.section("Global options (before or after the command)"):
            formatter.write_dl(records)


def write_examples(path: str, formatter: Any) -> None:
    examples = EXAMPLES.get(path)
    if not examples:
        return
    with formatter.section("Examples"):
        for i, (comment, line) in enumerate(examples):
            if i:
                formatter.write("\n")
            formatter.write(f"{'':>{formatter.current_indent}}# {comment}\n")
            formatter.write(f"{'':>{formatter.current_indent}}{line}\n")
