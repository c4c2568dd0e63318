"""``quantgate push [MANIFEST...]``: publish each locked artifact and its full-precision fallback to the
store named in ``quantgate.yaml`` (``artifacts.store``), then record where in the lock's ``store:``.
Exit 0 published (or nothing to publish), 1 a local file no longer matches the lock, 2 bad input,
3 the store is unreachable, 4 the store holds other bytes under the same name (never overwritten)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "publish a manifest's locked artifacts (and its repository-local baseline) to the store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="manifests to publish (default: every manifest under manifests/)")
    parser.add_argument("--root", type=Path, default=None, help="repository root")
    group = parser.add_argument_group("provenance (default: this job's GITHUB_* variables)",
                                      "a publishing job records the pull-request run whose results it checked")
    for key in ("run-id", "run-attempt", "commit-sha", "workflow", "repository"):
        group.add_argument(f"--{key}", dest=key.replace("-", "_"), default=None)


def run(args: argparse.Namespace) -> int:
    from compiler import api

    where = {key: getattr(args, key) for key in ("run_id", "run_attempt", "commit_sha", "workflow", "repository")}
    for published in api.push(args.manifests or None, args.root, where):
        for note in published.notes:
            print(note)
        if published.results:
            print(f"recorded {published.manifest}: results of {', '.join(published.results)} under their cache keys")
        if published.record is not None:
            print(f"pushed {published.manifest}: {len(published.uploaded)} uploaded, {len(published.skipped)} already there "
                  f"({published.record['kind']}: {published.record['quantized']['address']})")
    return 0
