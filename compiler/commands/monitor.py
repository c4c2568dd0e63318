"""``quantgate monitor MANIFEST... (--prometheus URL | --snapshot FILE)``: evaluate the rollback rules
on live metrics; on a breach, flip the serving flag to full precision as one git commit.

Exit 0 healthy (or nothing to roll back), 1 rolled back (now, or already), 2 invalid input,
3 metrics unreadable (endpoint down, malformed answer: nothing changed), 4 git failure.
See docs/monitoring.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from compiler.errors import ExitCode, QuantgateError

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


def run(args: argparse.Namespace) -> int:
    from compiler.monitoring.metrics_source import MetricsUnavailable, PrometheusSource, SnapshotSource
    from compiler.monitoring.monitor import monitor_manifest
    from compiler.monitoring.rules import RULES

    if args.prometheus:
        source = PrometheusSource(args.prometheus, args.timeout, os.environ.get("PROMETHEUS_TOKEN") or None)
    else:
        source = SnapshotSource(args.snapshot, RULES)
    codes = []
    manifests = args.manifests or _deployed()
    if not manifests:
        print("no deployed manifest (none has a serving file or a lock): nothing to monitor")
        return 0
    for manifest_path in manifests:
        try:
            branch = None
            if args.branch or args.pr or args.branch_name:
                branch = args.branch_name or f"quantgate/rollback-{_name(manifest_path)}"
            outcome = monitor_manifest(manifest_path, source, branch=branch, pull_request=args.pr,
                                       base=args.base, dry_run=args.dry_run)
            missing = [o.rule.name for o in outcome.observations if o.value is None]
            if args.require_data and missing:
                raise MetricsUnavailable(f"{manifest_path}: no data for {', '.join(missing)} (--require-data)")
        except QuantgateError as exc:
            # One broken manifest or endpoint must not hide the others' results.
            print(f"{manifest_path}: {exc.render()}", file=sys.stderr)
            codes.append(int(exc.exit_code))
            continue
        _print(outcome)
        codes.append(outcome.exit_code)
    # Unreadable metrics and errors outrank a rollback: someone must look at the monitor itself.
    errors = [c for c in codes if c not in (ExitCode.OK, ExitCode.REFUSED)]
    return max(errors) if errors else max(codes)


def _deployed() -> list[Path]:
    from compiler.discover import find_repo_root, lock_path, manifest_paths, serving_path

    root = find_repo_root(Path.cwd())
    found = [p for p in manifest_paths(root) if serving_path(p).is_file() or lock_path(p).is_file()]
    cwd = Path.cwd().resolve()
    return [p.resolve().relative_to(cwd) if p.resolve().is_relative_to(cwd) else p for p in found]


def _name(manifest_path: Path) -> str:
    from compiler.manifest.load import load_manifest

    return load_manifest(manifest_path).manifest.metadata.name


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
