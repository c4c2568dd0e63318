"""``quantgate comment MANIFEST --pr N [--body-file FILE]``: post or update the one quantgate
comment for MANIFEST on a pull request, and append the same Markdown to the job summary
(``api.comment``; the rules: ``compiler.gitops.comment``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler import api

HELP = "post or update the one quantgate comment on a pull request"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--pr", type=int, required=True, metavar="N", help="pull request number")
    parser.add_argument("--body-file", default=None, metavar="FILE",
                        help="rendered Markdown to post ('-' reads stdin); default: the plan and, when a lock exists, its results")
    parser.add_argument("--bot-login", default=None,
                        help="login whose comment is updated (default: github-actions[bot])")
    parser.add_argument("--summary-only", action="store_true", help="only append to $GITHUB_STEP_SUMMARY")


def run(args: argparse.Namespace) -> int:
    posted = api.comment(args.manifest, args.pr, body_file=args.body_file, bot_login=args.bot_login,
                         summary_only=args.summary_only)
    if posted.comment_id is not None:
        print(f"{posted.outcome} comment {posted.comment_id} on #{posted.pull_request} ({posted.marker})")
    return 0
