"""``quantgate changed --base REF [--head REF]``: the manifests a change touches, as the JSON a GitHub
Actions ``strategy.matrix`` takes: ``{"include": [{"manifest", "name", "runs_on"}]}``
(``api.changed``; the rules: ``compiler.gitops.changed``).

Deleted manifests have nothing to run: they are listed on stderr. ``--format paths`` prints one
manifest path per line instead (for shell loops). With the matrix format inside Actions
(``$GITHUB_OUTPUT`` set) ``matrix=<json>`` and ``count=<n>`` are written there too, so a job can skip
the matrix when nothing changed (an empty ``include`` is an error there).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from compiler import api

HELP = "manifests a change touches, as a GitHub Actions matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="the base commit or ref (a PR's base sha)")
    parser.add_argument("--head", default=None, help="the head commit or ref (default: the working tree)")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--format", choices=("matrix", "paths"), default="matrix",
                        help="matrix: JSON for strategy.matrix (default); paths: one manifest path per line")


def run(args: argparse.Namespace) -> int:
    result = api.changed(args.root, args.base, args.head, publish=args.format == "matrix")
    if args.format == "paths":
        for touched in result.change.touched:
            print(touched.manifest)
        return 0
    print(json.dumps(result.matrix, separators=(",", ":")))
    for touched in result.change.touched:
        print(f"touched {touched.manifest}: {', '.join(touched.reasons)}", file=sys.stderr)
    for path in result.change.deleted:
        print(f"deleted {path}: nothing to run (delete its lock and reports too)", file=sys.stderr)
    return 0
