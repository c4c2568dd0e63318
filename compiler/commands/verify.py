"""``quantgate verify [MANIFEST...] [--changed BASE]``: each lock still matches its manifest, gate and
artifact. Exit 0 when every lock stands, 1 naming each difference otherwise. Loads no model.
``--format json``: one object per manifest (``manifest``, ``lock``, ``ok``, ``problems``, ``notes``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "check locks against their manifests, gates and artifacts"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="manifests to verify (default: every manifest under manifests/)")
    parser.add_argument("--changed", metavar="BASE", default=None,
                        help="the manifests the change BASE...HEAD touches (as `quantgate changed` lists them)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--root", type=Path, default=None, help="repository root")
    parser.add_argument("--remote", action="store_true",
                        help="also check that every locked artifact is in the store (quantgate.yaml artifacts.store), without downloading")
    parser.add_argument("--deep", action="store_true", help="with --remote: stream every stored file and hash it")
    parser.add_argument("--provenance", action="store_true",
                        help="also check that every locked result is the one CI recorded in the store (exit 1 naming the play and field)")
    parser.add_argument("--skip-unlocked", action="store_true",
                        help="a manifest without a lock yet is noted, not a failure (a repository mid-adoption)")


def run(args: argparse.Namespace) -> int:
    from compiler import api

    out = args.out
    paths = out.manifests(list(args.manifests), args.changed, args.root)
    if paths == [] and args.changed:
        out.info("ok: the change touches no manifest")
        return 0
    verdicts = api.verify(paths, args.root, remote=args.remote, deep=args.deep,
                          provenance=args.provenance)
    if args.format == "json":
        out.json([{"manifest": v.manifest, "lock": v.lock, "ok": v.ok or (args.skip_unlocked and v.unlocked),
                   "unlocked": v.unlocked, "problems": v.problems, "notes": v.notes} for v in verdicts])
        return 1 if any(not v.ok and not (args.skip_unlocked and v.unlocked) for v in verdicts) else 0
    failed = 0
    for v in verdicts:
        if args.skip_unlocked and v.unlocked:
            out.info(f"skipped: {v.manifest} has no lock yet")
            continue
        if v.ok:
            out.info(f"ok: {v.lock} matches {v.manifest}")
        else:
            failed += 1
            for problem in v.problems:
                print(f"{v.lock}: {problem}", file=sys.stderr)
        for note in v.notes:
            out.info(f"{v.lock}: note: {note}")
    return 1 if failed else 0
