"""``quantgate changed --base REF [--head REF]``: the manifests a change touches, as the JSON a GitHub
Actions ``strategy.matrix`` takes: ``{"include": [{"manifest", "name", "runs_on"}]}``
(``api.changed``; the rules: ``compiler.gitops.changed``).

Deleted manifests have nothing to run: they are listed on stderr. ``--format paths`` prints one
manifest path per line instead (for shell loops); ``--format json`` the full answer (touched manifests
with their reasons, deleted ones, the matrix). With the matrix format inside Actions
(``$GITHUB_OUTPUT`` set) ``matrix=<json>`` and ``count=<n>`` are written there too, so a job can skip
the matrix when nothing changed (an empty ``include`` is an error there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compiler import api

HELP = "manifests a change touches, as a GitHub Actions matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="the base commit or ref (a PR's base sha)")
    parser.add_argument("--head", default=None, help="the head commit or ref (default: the working tree)")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--format", choices=("matrix", "paths", "json"), default="matrix",
                        help="matrix: JSON for strategy.matrix (default); paths: one manifest path per line; json: everything")


def run(args: argparse.Namespace) -> int:
    result = api.changed(args.root, args.base, args.head, publish=args.format == "matrix")
    if args.format == "json":
        args.out.json({"touched": [{"manifest": t.manifest, "reasons": list(t.reasons)} for t in result.change.touched],
                       "deleted": list(result.change.deleted), "matrix": result.matrix})
        return 0
    if args.format == "paths":
        for touched in result.change.touched:
            print(touched.manifest)
        return 0
    print(json.dumps(result.matrix, separators=(",", ":")))
    for touched in result.change.touched:
        args.out.note(f"touched {touched.manifest}: {', '.join(touched.reasons)}")
    for path in result.change.deleted:
        args.out.note(f"deleted {path}: nothing to run (delete its lock and reports too)")
    return 0
