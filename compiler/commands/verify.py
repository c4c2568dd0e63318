"""``quantgate verify [MANIFEST...]``: each lock still matches its manifest, gate and artifact.
Exit 0 when every lock stands, 1 naming each difference otherwise. Loads no model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "check locks against their manifests, gates and artifacts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="manifests to verify (default: every manifest under manifests/)")
    parser.add_argument("--root", type=Path, default=None, help="repository root")
    parser.add_argument("--skip-unlocked", action="store_true",
                        help="a manifest without a lock yet is noted, not a failure (a repository mid-adoption)")


def run(args: argparse.Namespace) -> int:
    from compiler import api

    verdicts = api.verify(args.manifests or None, args.root)
    failed = 0
    for v in verdicts:
        if args.skip_unlocked and v.unlocked:
            print(f"skipped: {v.manifest} has no lock yet")
            continue
        if v.ok:
            print(f"ok: {v.lock} matches {v.manifest}")
        else:
            failed += 1
            for problem in v.problems:
                print(f"{v.lock}: {problem}", file=sys.stderr)
        for note in v.notes:
            print(f"{v.lock}: note: {note}")
    return 1 if failed else 0
