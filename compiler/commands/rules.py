"""``quantgate rules [MANIFEST...]``: compile each manifest's ``rollback:`` into Prometheus alerting
rules next to it (``manifests/<name>.rules.yaml``), written only when they change.

``--check`` then runs ``promtool check rules`` and ``promtool test rules`` on synthetic series that
breach and respect every rule (default queries only); exit 1 if promtool rejects them, 3 if promtool
is not installed.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from compiler.errors import Refused, RunnerFailed

HELP = "compile rollback: into Prometheus alerting rules"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="default: every manifest under manifests/")
    parser.add_argument("--check", action="store_true",
                        help="also run promtool check rules and promtool test rules (synthetic series) on the result")


def run(args: argparse.Namespace) -> int:
    from compiler.monitoring import rules

    from compiler.discover import find_repo_root, manifest_paths

    failures: list[str] = []
    for manifest_path in args.manifests or manifest_paths(find_repo_root(Path.cwd())):
        target, wrote = rules.write_rules(manifest_path)
        target = _shown(target)
        print(f"{'wrote' if wrote else 'unchanged'} {target}")
        if not args.check:
            continue
        promtool = shutil.which("promtool")
        if promtool is None:
            raise RunnerFailed("promtool is not installed (Debian/Ubuntu: apt-get install prometheus); cannot --check")
        manifest, monitoring, compiled = rules.build_rules(manifest_path)
        try:
            tests = rules.synthetic_tests(manifest, compiled, monitoring)
        except ValueError:
            tests = None  # customised queries: their series are unknown, check syntax only
            print(f"note: {target}: custom monitoring queries, promtool test rules skipped (check rules only)")
        found = rules.promtool_check(rules.dump_rules(compiled), tests, promtool)
        failures += [f"{target}: {f}" for f in found]
        if not found:
            print(f"promtool ok {target}" + (" (check + test)" if tests else " (check)"))
    if failures:
        raise Refused("\n".join(failures))
    return 0


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path
