"""``quantgate comment MANIFEST --pr N [--body-file FILE]``: post or update the one quantgate
comment for MANIFEST on a pull request, and append the same Markdown to the job summary.

One comment per manifest, found by the hidden marker ``<!-- quantgate:<name> -->`` at its start and
by its author (the workflow's bot; nobody else's comment is edited, even one quoting the marker).
Per manifest, not per PR: matrix jobs for different manifests run in parallel and would otherwise
race on one comment. The body is the rendered plan/report (``compiler.report.render``, which escapes every
manifest-derived string); without ``--body-file`` it is rendered from the lock. Any quantgate marker
inside the body is neutralised so a body can never impersonate another manifest's comment.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "post or update the one quantgate comment on a pull request"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--pr", type=int, required=True, metavar="N", help="pull request number")
    parser.add_argument("--body-file", default=None, metavar="FILE",
                        help="rendered Markdown to post ('-' reads stdin); default: the plan and, when a lock exists, its results")
    parser.add_argument("--bot-login", default=None,
                        help="login whose comment is updated (default: github-actions[bot])")
    parser.add_argument("--summary-only", action="store_true", help="only append to $GITHUB_STEP_SUMMARY")


def marker(name: str) -> str:
    return f"<!-- quantgate:{name} -->"


def compose(name: str, body: str) -> str:
    """The final comment body: the marker line, then ``body`` with any quantgate marker defused."""
    safe = body.replace("<!-- quantgate", "&lt;!-- quantgate").replace("<!--quantgate", "&lt;!--quantgate")
    return f"{marker(name)}\n{safe.strip()}\n"


def _body(args: argparse.Namespace) -> str:
    from compiler import discover
    from compiler.errors import InvalidInput, Problem
    from compiler.playbook.lockfile import read_lock
    from compiler.report.render import render_comment_markdown

    if args.body_file == "-":
        return sys.stdin.read()
    if args.body_file:
        try:
            return Path(args.body_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(Problem(path=args.body_file, message=f"cannot read: {exc.strerror}")) from exc
    from compiler import api

    lock = read_lock(discover.lock_path(args.manifest))
    return render_comment_markdown(lock, api.plan(args.manifest, None), marker="")


def run(args: argparse.Namespace) -> int:
    from compiler.gitops.changed import manifest_name
    from compiler.clients.github import BOT_LOGIN, GitHub, context_from_env

    name = manifest_name(args.manifest)
    body = compose(name, _body(args))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(body.split("\n", 1)[1] + "\n")
    if args.summary_only:
        return 0
    github = GitHub(context_from_env())
    outcome, comment_id = github.upsert_comment(args.pr, marker(name), body, args.bot_login or BOT_LOGIN)
    print(f"{outcome} comment {comment_id} on #{args.pr} ({marker(name)})")
    return 0
