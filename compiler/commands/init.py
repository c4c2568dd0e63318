"""``quantgate init [--admin @org/team ...] [--action OWNER/REPO@SHA] [--force]``: scaffold the GitOps
workflows (using the quantgate action pinned to the commit of the quantgate that runs ``init``), a
CODEOWNERS block, a branch-protection checklist, and, where missing, ``quantgate.yaml``, a starter
manifest and the manifest schema (``api.init``; ``compiler.gitops.scaffold``). Idempotent; refuses
(exit 1) to overwrite a file that differs unless ``--force``; exit 2 when the pin cannot be told."""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler import api
from compiler.gitops.scaffold import CHECKLIST

HELP = "scaffold workflows, CODEOWNERS, quantgate.yaml and a starter manifest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--admin", action="append", default=[], metavar="@OWNER",
                        help="owner of quantgate.yaml and the workflows in CODEOWNERS (repeatable; default: the manifests' platform leads)")
    parser.add_argument("--action", default=None, metavar="OWNER/REPO@SHA",
                        help="the quantgate action the workflows use (default: the repository and commit this quantgate was installed from)")
    parser.add_argument("--force", action="store_true", help="overwrite workflow and checklist files that differ")


def run(args: argparse.Namespace) -> int:
    result = api.init(args.root, args.admin, force=args.force, action=args.action)
    out = args.out
    for note in result.notes:
        out.note(f"note: {note}")
    for state, path in result.done:
        out.info(f"{state} {path}")
    out.info(f"workflows use: {result.action}")
    out.info(f"next: work through {CHECKLIST} (settings GitHub cannot take from a file)")
    return 0
