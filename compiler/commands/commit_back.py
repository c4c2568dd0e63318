"""``quantgate commit-back [MANIFEST...]``: commit quantgate's own files (locks, rules, serving
flags, reports) to the branch as the workflow's bot and push; never forced, retried over a moving
branch (fetch + rebase), exit 4 when it keeps moving. Without MANIFEST: every changed quantgate file
(``api.commit_back``; the contract: ``compiler.gitops.commitback``).

Inside Actions the push authenticates with ``$GITHUB_TOKEN`` the way actions/checkout does (an
``http.extraheader`` for the calls that reach the remote), so the checkout can use
``persist-credentials: false``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler import api

HELP = "commit quantgate's own files to the branch and push"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST")
    parser.add_argument("--path", action="append", default=[], metavar="PATH",
                        help="a quantgate file to commit (repeatable); anything else is refused")
    parser.add_argument("--message", "-m", default=None, help="commit message (default: names the manifests)")
    parser.add_argument("--what", default="results", help="what the commit records, for the default message (results, sign-off)")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--branch", default=None, help="branch to push (default: $GITHUB_HEAD_REF, else the current branch)")
    parser.add_argument("--attempts", type=int, default=5, help="push attempts before giving up with exit 4 (default 5)")
    parser.add_argument("--root", type=Path, default=Path("."))


def run(args: argparse.Namespace) -> int:
    pushed = api.commit_back(args.root, args.manifests, args.path, message=args.message, what=args.what,
                             remote=args.remote, branch=args.branch, attempts=args.attempts)
    if pushed.sha is None:
        print("nothing to commit: quantgate's files are unchanged")
        return 0
    print(f"pushed {pushed.sha} to {pushed.remote}/{pushed.branch} after {pushed.attempts} attempt(s): {', '.join(pushed.paths)}")
    return 0
