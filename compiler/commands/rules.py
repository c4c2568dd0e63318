"""``quantgate rules [MANIFEST...]``: compile each manifest's ``rollback:`` into Prometheus alerting
rules next to it (``manifests/<name>.rules.yaml``), written only when they change (``api.rules``).

``--check`` then runs ``promtool check rules`` and ``promtool test rules`` on synthetic series that
breach and respect every rule (default queries only); exit 1 if promtool rejects them, 3 if promtool
is not installed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler import api
from compiler.errors import Refused

HELP = "compile rollback: into Prometheus alerting rules"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="default: every manifest under manifests/")
    parser.add_argument("--check", action="store_true",
                        help="also run promtool check rules and promtool test rules (synthetic series) on the result")


def run(args: argparse.Namespace) -> int:
    failures: list[str] = []
    for result in api.rules(args.manifests, check=args.check):
        target = _shown(result.path)
        print(f"{'wrote' if result.written else 'unchanged'} {target}")
        if result.note:
            print(f"note: {target}: {result.note}")
        failures += [f"{target}: {f}" for f in result.failures]
        if result.checked and not result.failures:
            print(f"promtool ok {target} ({result.checked})")
    if failures:
        raise Refused("\n".join(failures))
    return 0


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
