"""``quantgate init [--admin @org/team ...] [--force]``: scaffold the GitOps workflows, a CODEOWNERS
block and a branch-protection checklist into the repository (``compiler.gitops.scaffold``). Idempotent;
refuses (exit 1) to overwrite a file that differs unless ``--force``."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "scaffold workflows, CODEOWNERS and a checklist into a repository"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--admin", action="append", default=[], metavar="@OWNER",
                        help="owner of quantgate.yaml and the workflows in CODEOWNERS (repeatable)")
    parser.add_argument("--force", action="store_true", help="overwrite workflow and checklist files that differ")


def run(args: argparse.Namespace) -> int:
    from compiler.gitops import scaffold
    from compiler.errors import InvalidInput, Problem, Refused
    from compiler.manifest.model import OWNER_RE

    bad = [a for a in args.admin if not OWNER_RE.match(a)]
    if bad:
        raise InvalidInput([Problem(path="--admin", message=f"{a!r} is not a GitHub login ('@alice') or team ('@org/team')") for a in bad])
    root = args.root.resolve()
    files, notes = scaffold.plan(root, args.admin)
    done, refused = scaffold.apply(root, files, force=args.force)
    for note in notes:
        print(f"note: {note}")
    if refused:
        raise Refused(
            "these files exist with other content; nothing was written (rerun with --force to overwrite):\n"
            + "\n".join(f"  {p}" for p in refused)
        )
    for state, path in done:
        print(f"{state} {path}")
    print(f"next: work through {scaffold.CHECKLIST} (settings GitHub cannot take from a file)")
    return 0
