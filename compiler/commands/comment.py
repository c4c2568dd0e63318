"""``quantgate comment MANIFEST --pr N [--body-file FILE]``: post or update the one quantgate
comment for MANIFEST on a pull request, and append the same Markdown to the job summary
(``api.comment``; the rules: ``compiler.gitops.comment``). ``--dry-run`` prints the exact comment
(marker line included) and talks to nobody: no GitHub call, no job summary, no ``--pr`` needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler import api
from compiler.errors import InvalidInput, Problem

HELP = "post or update the one quantgate comment on a pull request"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--pr", type=int, default=None, metavar="N", help="pull request number (required unless --dry-run)")
    parser.add_argument("--body-file", default=None, metavar="FILE",
                        help="rendered Markdown to post ('-' reads stdin); default: the plan and, when a lock exists, its results")
    parser.add_argument("--bot-login", default=None,
                        help="login whose comment is updated (default: github-actions[bot])")
    parser.add_argument("--summary-only", action="store_true", help="only append to $GITHUB_STEP_SUMMARY")
    parser.add_argument("--dry-run", action="store_true", help="print the comment body; post and append nothing")


def run(args: argparse.Namespace) -> int:
    if args.pr is None and not args.dry_run:
        raise InvalidInput(Problem(path="--pr", message="required: the pull request number (or --dry-run to print the body)"))
    posted = api.comment(args.manifest, args.pr, body_file=args.body_file, bot_login=args.bot_login,
                         summary_only=args.summary_only, dry_run=args.dry_run)
    if isinstance(posted, str):
        print(posted, end="")
        return 0
    if posted.comment_id is not None:
        print(f"{posted.outcome} comment {posted.comment_id} on #{posted.pull_request} ({posted.marker})")
    return 0
