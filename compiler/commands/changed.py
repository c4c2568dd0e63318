"""``quantgate changed --base REF [--head REF]``: the manifests a change touches, as the JSON a GitHub
Actions ``strategy.matrix`` takes: ``{"include": [{"manifest", "name", "runs_on"}]}``.

A manifest is touched when it changed, when a data file or the ``./`` model directory it references
changed, or when ``quantgate.yaml`` changed. ``runs_on`` comes from ``quantgate.yaml``'s
``runner_labels`` by ``envelope.device``. Deleted manifests have nothing to run: they are listed on
stderr. ``--format paths`` prints one manifest path per line instead (for shell loops). With the
matrix format inside Actions (``$GITHUB_OUTPUT`` set) it also writes ``matrix=<json>`` and ``count=<n>``
there, so a job can skip the matrix when nothing changed (an empty ``include`` is an error there).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HELP = "manifests a change touches, as a GitHub Actions matrix"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", required=True, help="the base commit or ref (a PR's base sha)")
    parser.add_argument("--head", default=None, help="the head commit or ref (default: the working tree)")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--format", choices=("matrix", "paths"), default="matrix",
                        help="matrix: JSON for strategy.matrix (default); paths: one manifest path per line")


def run(args: argparse.Namespace) -> int:
    from compiler.gitops.changed import changed, matrix
    from compiler.manifest.load import load_repo_config

    root = args.root.resolve()
    change = changed(root, args.base, args.head)
    result = matrix(change, load_repo_config(root).runner_labels)
    text = json.dumps(result, separators=(",", ":"))
    if args.format == "paths":
        for touched in change.touched:
            print(touched.manifest)
        return 0
    print(text)
    for touched in change.touched:
        print(f"touched {touched.manifest}: {', '.join(touched.reasons)}", file=sys.stderr)
    for path in change.deleted:
        print(f"deleted {path}: nothing to run (delete its lock and reports too)", file=sys.stderr)
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"matrix={text}\ncount={len(result['include'])}\n")
    return 0
