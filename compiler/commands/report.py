"""``quantgate report MANIFEST``: render reports/<name>/report.md (+ PNG plots) from the lock."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render the human report (Markdown + plots) from a lock"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--root", type=Path, default=None, help="repository root")


def run(args: argparse.Namespace) -> int:
    from compiler import api

    changed = api.report(args.manifest, args.root)
    print("\n".join(f"wrote {p}" for p in changed) if changed else "report unchanged")
    return 0
