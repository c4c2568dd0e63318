"""``quantgate``: arguments -> api -> exit code, nothing else.

Each subcommand lives in ``compiler/commands/<name>.py`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Commands are listed explicitly below and imported
only when chosen, so ``quantgate validate`` never pays for what ``run`` needs (and nothing here
imports torch).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from compiler import __version__
from compiler.errors import ExitCode, QuantgateError

#: name -> (module, one-line help). Order is the order shown in --help.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("compiler.commands.validate", "check manifests (default: every manifest under manifests/)"),
    "schema": ("compiler.commands.schema", "write the JSON Schemas in schemas/ from the models"),
    "plan": ("compiler.commands.plan", "show which plays a manifest needs, why, and their cache keys"),
    "run": ("compiler.commands.run", "run the plan: baseline, envelope, ptq, gate, ... and write the lock"),
    "verify": ("compiler.commands.verify", "check locks against their manifests, gates and artifacts"),
    "report": ("compiler.commands.report", "render the human report (Markdown + plots) from a lock"),
    "push": ("compiler.commands.push", "publish a manifest's locked artifacts (and its repository-local baseline) to the store"),
    "pull": ("compiler.commands.pull", "fetch the active and fallback artifacts of a manifest, verified against its lock"),
    "changed": ("compiler.commands.changed", "manifests a change touches, as a GitHub Actions matrix"),
    "comment": ("compiler.commands.comment", "post or update the one quantgate comment on a pull request"),
    "signoff": ("compiler.commands.signoff", "decide from pull-request reviews whether the owners signed"),
    "commit-back": ("compiler.commands.commit_back", "commit quantgate's own files to the branch and push"),
    "init": ("compiler.commands.init", "scaffold workflows, CODEOWNERS and a checklist into a repository"),
    "rules": ("compiler.commands.rules", "compile rollback: into Prometheus alerting rules"),
    "monitor": ("compiler.commands.monitor", "evaluate the rollback rules on live metrics; roll back on a breach"),
}

EPILOG = """exit codes:
  0  ok            1  gate/sign-off/verify said no, or monitor rolled back
  2  invalid input 3  a runner failed      4  git or lock conflict      70  internal error

Start with:  quantgate validate   then   quantgate plan manifests/<name>.yaml"""


def _available() -> dict[str, tuple[str, str]]:
    import importlib.util

    return {name: spec for name, spec in COMMANDS.items() if importlib.util.find_spec(spec[0]) is not None}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that command's module is imported (``main`` passes the
    command being run, so ``quantgate validate`` never imports what ``run`` needs, and one broken
    command cannot take the others down)."""
    parser = argparse.ArgumentParser(
        prog="quantgate",
        description="A declarative GitOps compiler for model quantization: manifest -> plan -> plays -> lock.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"quantgate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in _available().items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(_module=module_name)
        if only is None or name == only:
            importlib.import_module(module_name).add_arguments(command)
    return parser


def _chosen(argv: Sequence[str] | None) -> str:
    """The command named on the command line ('' for none): the first argument not an option."""
    for arg in sys.argv[1:] if argv is None else argv:
        if not arg.startswith("-"):
            return arg
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(only=_chosen(argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version exit 0, bad arguments exit 2
        return int(exc.code or 0)
    if not getattr(args, "command", None):
        parser.print_help()
        return int(ExitCode.INVALID)
    try:
        return int(importlib.import_module(args._module).run(args))
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
    sys.exit(main())


if __name__ == "__main__":
    entrypoint()
