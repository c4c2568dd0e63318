"""``quantgate init [--admin @org/team ...] [--force]``: scaffold the GitOps workflows, a CODEOWNERS
block and a branch-protection checklist into the repository (``api.init``;
``compiler.gitops.scaffold``). Idempotent; refuses (exit 1) to overwrite a file that differs unless
``--force``."""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler import api
from compiler.gitops.scaffold import CHECKLIST

HELP = "scaffold workflows, CODEOWNERS and a checklist into a repository"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--admin", action="append", default=[], metavar="@OWNER",
                        help="owner of quantgate.yaml and the workflows in CODEOWNERS (repeatable)")
    parser.add_argument("--force", action="store_true", help="overwrite workflow and checklist files that differ")


def run(args: argparse.Namespace) -> int:
    result = api.init(args.root, args.admin, force=args.force)
    for note in result.notes:
        print(f"note: {note}")
    for state, path in result.done:
        print(f"{state} {path}")
    print(f"next: work through {CHECKLIST} (settings GitHub cannot take from a file)")
    return 0
