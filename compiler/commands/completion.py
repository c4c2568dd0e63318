"""``quantgate completion bash|zsh``: print a shell completion script for every command and flag.

    eval "$(quantgate completion bash)"        # ~/.bashrc
    eval "$(quantgate completion zsh)"         # ~/.zshrc (through bashcompinit)

Generated from the parser itself, so it cannot drift from the commands. Positional arguments complete
as file names; flags with fixed choices (``--format``) complete their choices.
"""

from __future__ import annotations

import argparse

HELP = "print a shell completion script (bash or zsh)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=("bash", "zsh"), help="the shell to complete for")


def _words(items) -> str:
    return " ".join(sorted(items))


def bash_script(commands: dict[str, argparse.ArgumentParser], top_flags: list[str]) -> str:
    cases, choices = [], []
    for name, sub in commands.items():
        flags = [s for a in sub._actions for s in a.option_strings]
        cases.append(f"        {name}) opts=\"{_words(flags)}\" ;;")
        for action in sub._actions:
            if action.option_strings and action.choices:
                for flag in action.option_strings:
                    choices.append(f"        {name}:{flag}) COMPREPLY=($(compgen -W \"{_words(map(str, action.choices))}\" -- \"$cur\")); return 0 ;;")
            if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction):
                choices.append(f"        {name}:{name}) COMPREPLY=($(compgen -W \"{_words(map(str, action.choices))}\" -- \"$cur\")); return 0 ;;")
    return "\n".join([
        "# quantgate completion for bash: eval \"$(quantgate completion bash)\"",
        "_quantgate() {",
        "    local cur prev cmd opts i",
        "    COMPREPLY=()",
        "    cur=\"${COMP_WORDS[COMP_CWORD]}\"",
        "    prev=\"${COMP_WORDS[COMP_CWORD-1]}\"",
        "    cmd=\"\"",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        "        case \"${COMP_WORDS[i]}\" in",
        "            -*) ;;",
        "            *) cmd=\"${COMP_WORDS[i]}\"; break ;;",
        "        esac",
        "    done",
        "    if [ -z \"$cmd\" ]; then",
        f"        COMPREPLY=($(compgen -W \"{_words([*commands, *top_flags])}\" -- \"$cur\"))",
        "        return 0",
        "    fi",
        "    case \"$cmd:$prev\" in",
        *choices,
        "    esac",
        "    case \"$cmd\" in",
        *cases,
        "        *) opts=\"\" ;;",
        "    esac",
        "    if [[ \"$cur\" == -* ]]; then",
        "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))",
        "    else",
        "        COMPREPLY=($(compgen -f -- \"$cur\"))",
        "    fi",
        "    return 0",
        "}",
        "complete -o filenames -F _quantgate quantgate",
        "",
    ])


def zsh_script(bash: str) -> str:
    return ("# quantgate completion for zsh: eval \"$(quantgate completion zsh)\"\n"
            "autoload -U +X compinit && compinit\n"
            "autoload -U +X bashcompinit && bashcompinit\n" + bash.split("\n", 1)[1])


def run(args: argparse.Namespace) -> int:
    parser = args.full_parser()  # handed over by compiler.cli: every command with its arguments
    commands = next((dict(a.choices) for a in parser._actions if isinstance(a, argparse._SubParsersAction)), {})
    top = [s for a in parser._actions for s in a.option_strings]
    script = bash_script(commands, top)
    print(zsh_script(script) if args.shell == "zsh" else script, end="")
    return 0
