"""``quantgate rules``: compile each manifest's ``rollback:`` into its Prometheus rule file
(``compiler.monitoring.rules``), and with ``check`` prove the file with promtool: ``check rules``
always, ``test rules`` on synthetic series that breach and respect every rule (default queries only).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from compiler.discover import find_repo_root, manifest_paths
from compiler.errors import RunnerFailed
from compiler.monitoring.rules import build_rules, dump_rules, promtool_check, synthetic_tests, write_rules


@dataclass(frozen=True)
class CompiledRules:
    manifest: Path
    path: Path  # the rule file
    written: bool
    checked: str | None = None  # None: not checked; "check" or "check + test": what promtool ran
    failures: tuple[str, ...] = ()  # promtool's complaints
    note: str | None = None


def compile_rules(manifests: list[Path] | None = None, check: bool = False) -> list[CompiledRules]:
    """Write the rule file of each manifest (default: every manifest of the repository holding the
    current directory); with ``check`` run promtool on each. ``RunnerFailed`` when promtool is
    missing. Failures are returned, not raised, so every manifest is reported."""
    results = []
    promtool = None
    for manifest_path in manifests or manifest_paths(find_repo_root(Path.cwd())):
        manifest_path = Path(manifest_path)
        target, wrote = write_rules(manifest_path)
        if not check:
            results.append(CompiledRules(manifest_path, target, wrote))
            continue
        promtool = promtool or shutil.which("promtool")
        if promtool is None:
            raise RunnerFailed("promtool is not installed (Debian/Ubuntu: apt-get install prometheus); cannot --check")
        manifest, monitoring, compiled = build_rules(manifest_path)
        note = None
        try:
            tests = synthetic_tests(manifest, compiled, monitoring)
        except ValueError:
            tests = None  # customised queries: their series are unknown, check syntax only
            note = "custom monitoring queries, promtool test rules skipped (check rules only)"
        failures = promtool_check(dump_rules(compiled), tests, promtool)
        results.append(CompiledRules(manifest_path, target, wrote, "check + test" if tests else "check", tuple(failures), note))
    return results
