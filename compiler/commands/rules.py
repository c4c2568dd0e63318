"""``quantgate rules [MANIFEST...]``: compile each manifest's ``rollback:`` into Prometheus alerting
rules next to it (``manifests/<name>.rules.yaml``), written only when they change (``api.rules``).

``--check`` then runs ``promtool check rules`` and ``promtool test rules`` on synthetic series that
breach and respect every rule (default queries only); exit 1 if promtool rejects them, 3 if promtool
is not installed. ``--format json``: one object per manifest (rule file, written, promtool's verdict).
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
    parser.add_argument("--changed", metavar="BASE", default=None,
                        help="the manifests the change BASE...HEAD touches (as `quantgate changed` lists them)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    failures: list[str] = []
    chosen = args.out.manifests(list(args.manifests), args.changed)
    if chosen == [] and args.changed:
        args.out.info("the change touches no manifest: no rules to compile")
        return 0
    results = api.rules(chosen, check=args.check)
    if args.format == "json":
        args.out.json([{"manifest": r.manifest, "rules": r.path, "written": r.written, "checked": r.checked,
                        "failures": list(r.failures), "note": r.note} for r in results])
        return 1 if any(r.failures for r in results) else 0
    for result in results:
        target = _shown(result.path)
        args.out.info(f"{'wrote' if result.written else 'unchanged'} {target}")
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
