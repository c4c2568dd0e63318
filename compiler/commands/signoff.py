"""``quantgate signoff MANIFEST --pr N``: decide from the pull request's reviews whether the owners
named in the manifest signed every play the lock says ran (``api.sign_off``; rules:
``compiler.gitops.signoff``). Exit 0 when complete, 1 otherwise. ``--format json``: the decision.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compiler import api

HELP = "decide from pull-request reviews whether the owners signed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--pr", type=int, required=True, metavar="N", help="pull request number")
    parser.add_argument("--sha", default=None,
                        help="commit to judge and to set the status on (default: the PR head); after a "
                             "lock-only commit-back pass the new HEAD")
    parser.add_argument("--no-record", action="store_true", help="do not write the decision into the lock")
    parser.add_argument("--no-status", action="store_true", help="do not set the commit status")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from MANIFEST)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    result = api.sign_off(args.manifest, args.pr, sha=args.sha, record=not args.no_record,
                          set_status=not args.no_status, root=args.root)
    decision = result.decision
    if args.format == "json":
        args.out.json({"manifest": args.manifest, "complete": result.complete, "status": result.status,
                       "recorded": result.recorded, "lock": result.lock_path, "head_sha": result.head_sha,
                       "records": decision.records if decision else [], "missing": list(result.missing_lines),
                       "notes": list(decision.notes) if decision else [], "message": result.message})
        return 0 if result.complete else 1
    if decision is None:
        print(f"{args.manifest}: {result.message}")
        return 1
    for record in decision.records:
        print(f"signed: {record.role} by @{record.login} (review {record.review_id} on {str(record.commit_sha)[:12]})")
    for line in [*result.missing_lines, *(f"note: {n}" for n in decision.notes)]:
        print(line)
    if result.recorded is not None:
        print(f"{'recorded' if result.recorded else 'unchanged'} signoff in {result.lock_path}")
    print("sign-off complete" if result.complete else "sign-off incomplete")
    return 0 if result.complete else 1
