"""`gpti2 completion bash|zsh|fish`: shell completion scripts, rendered from the app's own
command tree (scripts/gen_completions.py writes the same scripts into completions/).

Besides commands and options they complete config keys, providers and profile names;
profile names come from the config file at completion time (`gpti2 completion --profiles`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import typer

from gpti2.cli.common import JsonOption, QuietOption, command_app, enter
from gpti2.dialects import DIALECTS

app = command_app()

FILES = {"bash": "gpti2.bash", "zsh": "_gpti2", "fish": "gpti2.fish"}
PATH_PARAMS = frozenset({"output", "db", "image", "manifest"})
# Options whose values are a fixed set (validated by the core, not by a click Choice).
CHOICES = {
    "--mode": ["text_to_image", "image_to_image"],
    "--provider": ["openai", "replicate", "fireworks", "vertex"],
    "--api": list(DIALECTS),
}
# Options whose values are read when completing: the shell runs this command.
PROFILES = "gpti2 completion --profiles 2>/dev/null"
DYNAMIC = {"--profile": PROFILES}


def _keys() -> list[str]:
    from gpti2.settings import KEYS

    return sorted(KEYS)


# The first positional argument of these commands, completed from a fixed set.
ARGUMENTS: dict[str, Callable[[], list[str]]] = {
    "config get": _keys,
    "config set": _keys,
    "config unset": _keys,
    "completion": lambda: list(FILES),
}


@app.command("completion")
def completion(
    ctx: typer.Context,
    shell: Annotated[str | None, typer.Argument(help="bash, zsh or fish.", metavar="SHELL")] = None,
    profiles: Annotated[
        bool, typer.Option("--profiles", hidden=True, help="List profile names.")
    ] = False,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Print the shell completion script for bash, zsh or fish."""
    from gpti2.errors import UsageError

    ui = enter(ctx, json_out, quiet)
    if profiles and shell is not None:  # `completion --profiles extra`: no shell goes with it
        raise UsageError(
            f"got unexpected extra argument ({shell})", hint="gpti2 completion --profiles"
        )
    if profiles:
        from gpti2.settings import config_path, load_config

        for name in sorted(load_config(config_path())):
            ui.out(name)
        return
    if shell not in FILES:
        raise UsageError(
            f"no completion for {shell!r}" if shell else "which shell?",
            hint="gpti2 completion bash, gpti2 completion zsh or gpti2 completion fish",
        )
    script = RENDERERS[shell](tree())
    if ui.state.json:
        ui.out_json({"shell": shell, "script": script})
    else:
        ui.env.stdout_.write(script)


@dataclass
class Opt:
    names: list[str]
    help: str
    takes_value: bool
    choices: list[str]
    is_path: bool
    dynamic: str | None = None


@dataclass
class Node:
    path: list[str]
    help: str
    options: list[Opt] = field(default_factory=list)
    children: dict[str, Node] = field(default_factory=dict)
    arguments: list[str] = field(default_factory=list)  # values of the first positional


def _first_line(text: str | None) -> str:
    """The first line of a help text, without its `[env var: ...]` note or full stop."""
    import re

    line = (text or "").strip().splitlines()[0] if text else ""
    return re.sub(r"\s*\[[^]]*\]$", "", line).rstrip(".")


def tree() -> Node:
    """The command tree of gpti2, read from the click command typer builds."""
    import typer.main

    from gpti2.cli import app

    def walk(cmd, path: list[str]) -> Node:
        node = Node(path, _first_line(cmd.help or cmd.short_help))
        if " ".join(path) in ARGUMENTS:
            node.arguments = ARGUMENTS[" ".join(path)]()
        for param in cmd.params:
            if param.param_type_name != "option" or param.hidden:
                continue
            choices = next((CHOICES[n] for n in param.opts if n in CHOICES), [])
            node.options.append(
                Opt(
                    names=[*param.opts, *param.secondary_opts],
                    help=_first_line(param.help),
                    takes_value=not param.is_flag,
                    choices=[str(c) for c in choices],
                    is_path=(param.name or "") in PATH_PARAMS,
                    dynamic=next((DYNAMIC[n] for n in param.opts if n in DYNAMIC), None),
                )
            )
        node.options.append(Opt(["-h", "--help"], "Show help and exit", False, [], False))
        if hasattr(cmd, "list_commands"):
            ctx = cmd.context_class(cmd, info_name=path[-1] if path else "gpti2")
            for name in sorted(cmd.list_commands(ctx)):
                sub = cmd.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    node.children[name] = walk(sub, [*path, name])
        return node

    root = walk(typer.main.get_command(app), [])
    # Root options also work after the subcommand name (CLI.md), so offer them there too.
    shared = [o for o in root.options if o.names[0] not in ("--version", "-h")]
    for node in _nodes(root):
        if node.path:
            own = {name for o in node.options for name in o.names}
            node.options[-1:-1] = [o for o in shared if not set(o.names) & own]
    return root


def _nodes(node: Node):
    yield node
    for child in node.children.values():
        yield from _nodes(child)


def _q(text: str) -> str:
    return text.replace("'", "'\\''")


def _value_actions(
    nodes: list[Node],
    choice: Callable[[str], str],
    path: str,
    other: str,
    dynamic: Callable[[str], str],
) -> list[tuple[str, str]]:
    """(option name, shell action) for every option that takes a value, sorted by name."""
    actions: dict[str, str] = {}
    for node in nodes:
        for opt in node.options:
            if opt.takes_value:
                if opt.dynamic:
                    action = dynamic(opt.dynamic)
                elif opt.choices:
                    action = choice(" ".join(opt.choices))
                else:
                    action = path if opt.is_path else other
                for name in opt.names:
                    actions.setdefault(name, action)
    return sorted(actions.items())


def _qf(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def bash(root: Node) -> str:
    nodes = list(_nodes(root))
    known = " ".join(f'" {" ".join(n.path)}"' for n in nodes if n.path)
    lines = [
        "# bash completion for gpti2 (generated by scripts/gen_completions.py; do not edit)",
        "_gpti2() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local path="" i w',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        w="${COMP_WORDS[i]}"',
        '        case "$w" in -*) continue ;; esac',
        f"        for known in {known}; do",
        '            if [[ "$path $w" == "$known" ]]; then path="$path $w"; break; fi',
        "        done",
        "    done",
        '    case "$prev" in',
    ]
    actions = _value_actions(
        nodes,
        lambda choices: f'COMPREPLY=($(compgen -W "{choices}" -- "$cur")); return ;;',
        'COMPREPLY=($(compgen -f -- "$cur")); return ;;',
        "return ;;",
        lambda command: f'COMPREPLY=($(compgen -W "$({command})" -- "$cur")); return ;;',
    )
    lines += [f"        {name}) {action}" for name, action in actions]
    lines += ["    esac", '    case "$path" in']
    for node in nodes:
        if node.arguments:
            lines.append(
                f'        " {" ".join(node.path)}") if [[ "$prev" == {node.path[-1]} ]]; then '
                f'COMPREPLY=($(compgen -W "{" ".join(node.arguments)}" -- "$cur")); return; fi ;;'
            )
    lines += ["    esac", "    local words", '    case "$path" in']
    for node in nodes:
        words = [*node.children, *(n for o in node.options for n in o.names)]
        key = " " + " ".join(node.path) if node.path else ""
        lines.append(f'        "{key}") words="{" ".join(words)}" ;;')
    lines += [
        "    esac",
        '    if [[ "$cur" == -* ]]; then',
        '        COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "    else",
        '        COMPREPLY=($(compgen -W "$(printf "%s\\n" $words | grep -v "^-")" -- "$cur"))',
        "    fi",
        "}",
        "complete -o default -F _gpti2 gpti2",
        "",
    ]
    return "\n".join(lines)


def zsh(root: Node) -> str:
    nodes = list(_nodes(root))
    known = " ".join(f"'{' '.join(n.path)}'" for n in nodes if n.path)
    lines = [
        "#compdef gpti2",
        "# zsh completion for gpti2 (generated by scripts/gen_completions.py; do not edit)",
        "_gpti2() {",
        "    local cmdpath='' w i",
        f"    local -a known=({known})",
        "    for ((i = 2; i < CURRENT; i++)); do",
        "        w=${words[i]}",
        "        [[ $w == -* ]] && continue",
        "        if (( ${known[(Ie)${cmdpath:+$cmdpath }$w]} )); then",
        "            cmdpath=${cmdpath:+$cmdpath }$w",
        "        fi",
        "    done",
        "    case ${words[CURRENT-1]} in",
    ]
    actions = _value_actions(
        nodes,
        lambda choices: f"compadd -- {choices}; return",
        "_files; return",
        "return",
        lambda command: f'compadd -- ${{(f)"$({command})"}}; return',
    )
    lines += [f"        ({name}) {action} ;;" for name, action in actions]
    lines += ["    esac"]
    for node in nodes:
        if node.arguments:
            lines.append(
                f"    if [[ $cmdpath == '{' '.join(node.path)}' && ${{words[CURRENT-1]}} == "
                f"{node.path[-1]} ]]; then compadd -- {' '.join(node.arguments)}; return; fi"
            )
    lines += ["    local -a cmds opts", "    case $cmdpath in"]
    for node in nodes:
        cmds = " ".join(f"'{c}:{_q(n.help)}'" for c, n in node.children.items())
        opts = " ".join(f"'{name}:{_q(o.help)}'" for o in node.options for name in o.names)
        lines.append(f"        ('{' '.join(node.path)}') cmds=({cmds}); opts=({opts}) ;;")
    lines += [
        "    esac",
        "    if [[ ${words[CURRENT]} == -* ]]; then",
        "        _describe -t options 'option' opts",
        "    elif (( ${#cmds} )); then",
        "        _describe -t commands 'command' cmds",
        "    else",
        "        _files",
        "    fi",
        "}",
        '_gpti2 "$@"',
        "",
    ]
    return "\n".join(lines)


def fish(root: Node) -> str:
    lines = [
        "# fish completion for gpti2 (generated by scripts/gen_completions.py; do not edit)",
        "complete -c gpti2 -f",
    ]

    def cond(node: Node) -> str:
        parts = ["__fish_use_subcommand"] if not node.path else []
        for i, name in enumerate(node.path):
            parts.append(f"__fish_seen_subcommand_from {name}")
            if i == len(node.path) - 1 and node.children:
                parts.append("not __fish_seen_subcommand_from " + " ".join(node.children))
        if not node.path and node.children:
            return "__fish_use_subcommand"
        return "; and ".join(parts)

    root_names = {n for o in root.options for n in o.names}

    def option_line(opt: Opt, condition: str | None) -> str:
        flags = [f"-l {n[2:]}" if n.startswith("--") else f"-s {n[1:]}" for n in opt.names]
        extra = ""
        if opt.takes_value:
            extra = f" -x -a '{' '.join(opt.choices)}'" if opt.choices else " -r"
            if opt.dynamic:
                extra = f" -x -a '({opt.dynamic})'"
            if opt.is_path:
                extra = " -r -F"
        where = f" -n '{condition}'" if condition else ""
        return f"complete -c gpti2{where} {' '.join(flags)}{extra} -d '{_qf(opt.help)}'"

    for opt in root.options:
        lines.append(option_line(opt, None))
    for node in _nodes(root):
        for name, child in node.children.items():
            lines.append(f"complete -c gpti2 -n '{cond(node)}' -a {name} -d '{_qf(child.help)}'")
        if not node.path:
            continue
        if node.arguments:
            lines.append(f"complete -c gpti2 -n '{cond(node)}' -a '{' '.join(node.arguments)}'")
        for opt in node.options:
            if not set(opt.names) & root_names:
                lines.append(option_line(opt, cond(node)))
    return "\n".join(lines) + "\n"


RENDERERS = {"bash": bash, "zsh": zsh, "fish": fish}


def render_all() -> dict[str, str]:
    """File name -> contents for every shell."""
    root = tree()
    return {FILES[shell]: render(root) for shell, render in RENDERERS.items()}
