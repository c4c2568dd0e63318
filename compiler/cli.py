"""``quantgate``: arguments -> api -> exit code, nothing else.

Each subcommand lives in ``compiler/commands/<name>.py`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Commands are listed explicitly below and imported
only when chosen, so ``quantgate validate`` never pays for what ``run`` needs (and nothing here
imports torch).

Global flags (before or after the command): ``-q`` (results and errors only), ``-v``/``-vv`` (notes,
library warnings, debug logging). Every command gets ``args.out`` (``compiler.commands._output``).
A closed stdout (``quantgate plan | head -1``) ends quietly with 141, like other Unix tools; an
unknown command or flag names the closest one.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import sys
from collections.abc import Sequence

from compiler import __version__
from compiler.errors import ExitCode, QuantgateError

#: name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("compiler.commands.validate", "check manifests (default: every manifest under manifests/)"),
    "schema": ("compiler.commands.schema", "write the JSON Schemas in schemas/ from the models"),
    "plan": ("compiler.commands.plan", "show which plays manifests need, why, and their cache keys"),
    "run": ("compiler.commands.run", "run the plan: baseline, envelope, ptq, gate, ... and write the lock"),
    "verify": ("compiler.commands.verify", "check locks against their manifests, gates and artifacts"),
    "report": ("compiler.commands.report", "render the human report (Markdown + plots) from a lock"),
    "push": ("compiler.commands.push", "publish a manifest's locked artifacts (and its repository-local baseline) to the store"),
    "pull": ("compiler.commands.pull", "fetch the active and fallback artifacts of a manifest, verified against its lock"),
    "changed": ("compiler.commands.changed", "manifests a change touches, as a GitHub Actions matrix"),
    "comment": ("compiler.commands.comment", "post or update the one quantgate comment on a pull request"),
    "signoff": ("compiler.commands.signoff", "decide from pull-request reviews whether the owners signed"),
    "commit-back": ("compiler.commands.commit_back", "commit quantgate's own files to the branch and push"),
    "check-run": ("compiler.commands.check_run", "refuse results from a pull-request run whose workflow differs from the base branch's"),
    "init": ("compiler.commands.init", "scaffold workflows, CODEOWNERS, quantgate.yaml and a starter manifest"),
    "rules": ("compiler.commands.rules", "compile rollback: into Prometheus alerting rules"),
    "monitor": ("compiler.commands.monitor", "evaluate the rollback rules on live metrics; roll back on a breach"),
    "completion": ("compiler.commands.completion", "print a shell completion script (bash or zsh)"),
}

EPILOG = """global flags: -q/--quiet (results and errors only), -v/--verbose (more; -vv for debug)

exit codes:
  0  ok            1  gate/sign-off/verify said no, or monitor rolled back
  2  invalid input 3  a runner failed      4  git or lock conflict      70  internal error
  141  stdout was closed early (a pipe into head)

Start with:  quantgate validate   then   quantgate plan manifests/<name>.yaml"""

#: 128 + SIGPIPE: what a shell reports for a writer whose reader went away.
BROKEN_PIPE = 141


class Parser(argparse.ArgumentParser):
    """argparse that suggests the closest command or flag (difflib) instead of only refusing."""

    def error(self, message: str):  # noqa: D401 - argparse's hook
        hint = self._hint(message)
        super().error(message + (f"\n{hint}" if hint else ""))

    def _hint(self, message: str) -> str:
        if "unrecognized arguments:" in message:
            words = message.split("unrecognized arguments:", 1)[1].split()
            flags = [w.split("=", 1)[0] for w in words if w.startswith("-")]
            known = self._known_flags()
            hints = []
            for flag in flags:
                if flag in ("--json",) and "--format" in known:
                    hints.append(f"{flag}: did you mean '--format json'?")
                    continue
                close = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
                if close:
                    hints.append(f"{flag}: did you mean '{close[0]}'?")
            return "\n".join(hints)
        if "invalid choice:" in message:
            bad, _, rest = message.split("invalid choice:", 1)[1].partition("(choose from")
            bad = bad.strip().strip("'\"")
            choices = re.findall(r"'([^']*)'", rest) or re.findall(r"([\w-]+)", rest)
            close = difflib.get_close_matches(bad, choices, n=1, cutoff=0.5)
            return f"did you mean '{close[0]}'?" if close else ""
        return ""

    def _known_flags(self) -> list[str]:
        chosen = getattr(self, "_chosen_parser", None)
        flags = [s for a in self._actions for s in a.option_strings]
        if chosen is not None:
            flags += [s for a in chosen._actions for s in a.option_strings]
        return sorted(set(flags))


def _global_flags(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS if suppress else False,
                        help="print only results and errors")
    parser.add_argument("-v", "--verbose", action="count", default=default if suppress else 0,
                        help="print more (notes, library warnings); -vv: debug logging")


def _available() -> dict[str, tuple[str, str]]:
    import importlib.util

    found = {}
    for name, spec in COMMANDS.items():
        try:
            if importlib.util.find_spec(spec[0]) is not None:
                found[name] = spec
        except (ImportError, ValueError):
            continue
    return found


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that command's module is imported (``main`` passes the
    command being run, so ``quantgate validate`` never imports what ``run`` needs, and one broken
    command cannot take the others down)."""
    parser = Parser(
        prog="quantgate",
        description="A declarative GitOps compiler for model quantization: manifest -> plan -> plays -> lock.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"quantgate {__version__}")
    _global_flags(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    available = _available()
    for name, (module_name, help_text) in available.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        _global_flags(command, suppress=True)
        if only is None or name == only:
            importlib.import_module(module_name).add_arguments(command)
            parser._chosen_parser = command
    return parser


def _chosen(argv: Sequence[str] | None) -> str:
    """The command named on the command line ('' for none): the first argument not an option."""
    for arg in sys.argv[1:] if argv is None else argv:
        if not arg.startswith("-"):
            return arg
    return ""


def _configure_logging(verbose: int) -> None:
    import logging

    if verbose >= 2:
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    elif verbose == 1:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        _quiet_stdout()
        return BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    chosen = _chosen(argv)
    parser = build_parser(only=chosen)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, bad arguments exit 2
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return int(ExitCode.INVALID)
    from compiler.commands._output import Output

    quiet = bool(getattr(args, "quiet", False))
    verbose = int(getattr(args, "verbose", 0) or 0)
    args.quiet, args.verbose = quiet, verbose
    args.out = Output(quiet=quiet, verbose=verbose)
    args.full_parser = build_parser  # `completion` reads every command's arguments
    _configure_logging(args.out.verbose)
    try:
        code = int(importlib.import_module(args._module).run(args))
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        raise
    except QuantgateError as exc:
        print(exc.render(), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        if os.environ.get("QUANTGATE_DEBUG") == "1":
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in quantgate; please report it with QUANTGATE_DEBUG=1 output.",
            file=sys.stderr,
        )
        return int(ExitCode.INTERNAL)


def entrypoint() -> None:
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
        code = BROKEN_PIPE
    sys.exit(code)


if __name__ == "__main__":
    entrypoint()
