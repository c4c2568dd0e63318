"""``quantgate monitor MANIFEST... (--prometheus URL | --snapshot FILE)``: evaluate the rollback rules
on live metrics; on a breach, flip the serving flag to full precision as one git commit
(``api.monitor``; ``compiler.monitoring.monitor``).

Exit 0 healthy (or nothing to roll back), 1 rolled back (now, or already), 2 invalid input,
3 metrics unreadable (endpoint down, malformed answer: nothing changed), 4 git failure.
``--format json``: one object per manifest (state, observations, commit, notes, error).
See docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from compiler import api

HELP = "evaluate the rollback rules on live metrics; roll back on a breach"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="default: every manifest under manifests/ that has a serving file or a lock")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--prometheus", metavar="URL", help="Prometheus base URL (instant queries on /api/v1/query); "
                       "a bearer token is read from $PROMETHEUS_TOKEN if set")
    where.add_argument("--snapshot", metavar="FILE", type=Path,
                       help='JSON object of current values per rule, e.g. {"quality_floor": 0.74}')
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per Prometheus query (default 10)")
    parser.add_argument("--branch", action="store_true",
                        help="commit the rollback on a branch pushed to origin instead of the current branch")
    parser.add_argument("--branch-name", metavar="NAME", help="that branch (default: quantgate/rollback-<name>)")
    parser.add_argument("--pr", action="store_true", help="implies --branch: also open a pull request (GitHub Actions environment)")
    parser.add_argument("--base", help="the pull request's base branch (default: $GITHUB_REF_NAME or the current branch)")
    parser.add_argument("--dry-run", action="store_true", help="evaluate and report; change nothing")
    parser.add_argument("--require-data", action="store_true", help="treat a rule with no data as unreadable metrics (exit 3)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace) -> int:
    result = api.monitor(args.manifests, prometheus=args.prometheus, snapshot=args.snapshot, timeout=args.timeout,
                         branch=args.branch, branch_name=args.branch_name, pull_request=args.pr, base=args.base,
                         dry_run=args.dry_run, require_data=args.require_data)
    if args.format == "json":
        args.out.json([{"manifest": item.manifest, "outcome": item.outcome, "error": item.error} for item in result.results])
        return result.exit_code
    if not result.results:
        print("no deployed manifest (none has a serving file or a lock): nothing to monitor")
        return 0
    for item in result.results:
        if item.error is not None:
            print(f"{item.manifest}: {item.error.render()}", file=sys.stderr)
        else:
            _print(item.outcome)
    return result.exit_code


def _print(outcome) -> None:
    print(f"{outcome.name}: {outcome.state}")
    for observation in outcome.observations:
        print(f"  {observation.line()}")
    if outcome.commit is not None and outcome.commit.sha:
        where = f" on branch {outcome.commit.branch}" if outcome.commit.branch else ""
        print(f"  rolled back to full precision: commit {outcome.commit.sha[:12]}{where}")
        if outcome.commit.pull_request:
            print(f"  pull request: {outcome.commit.pull_request}")
    for note in outcome.notes:
        print(f"  note: {note}")
