"""``quantgate validate [PATH...]``: check manifests, print every problem, exit 0 (valid) or 2.

Default: every manifest under ``manifests/`` (never the ``*.lock.yaml``/``*.rules.yaml``/
``*.serving.yaml`` files quantgate writes). A directory argument means the manifests inside it.
Problems go to stderr as ``path:line:col: key.path: message`` with the offending line; with
``--format github`` (the default when ``GITHUB_ACTIONS=true``) each is also printed to stdout as a
workflow-command annotation so it shows inline on the pull-request diff; ``--format json`` prints
``{"ok", "checked", "errors", "warnings"}`` instead. ``--changed BASE``: the manifests ``BASE...HEAD``
touches. Warnings (a model directory not materialised yet) are shown and do not fail the check.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HELP = "check manifests (default: every manifest under manifests/)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="manifest files or directories (default: manifests/ of the repository)")
    parser.add_argument("--format", choices=("text", "github", "json"), default=None,
                        help="text; github: also emit ::error annotations (default when GITHUB_ACTIONS=true); json")
    parser.add_argument("--changed", metavar="BASE", default=None,
                        help="the manifests the change BASE...HEAD touches (as `quantgate changed` lists them)")
    parser.add_argument("--root", type=Path, default=None,
                        help="repository root (default: found from the first PATH or the current directory)")


def _expand(paths: list[Path]) -> list[Path]:
    from compiler.discover import is_tool_file

    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file() and not is_tool_file(p)))
        elif is_tool_file(path):
            print(f"{path}: skipped (written by quantgate, not a manifest)", file=sys.stderr)
        else:
            out.append(path)
    return out


def run(args: argparse.Namespace) -> int:
    # pydantic's plugin discovery scans the metadata of every installed distribution (a large share
    # of validate's start-up in an environment with the model stack); validation needs no plugins.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from compiler import api
    from compiler.errors import ExitCode

    out = args.out
    fmt = args.format or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text")
    chosen = out.manifests(list(args.paths), args.changed, args.root)
    paths = _expand(chosen) if chosen else None
    if chosen is not None and not paths:
        if args.changed:
            out.info("ok: the change touches no manifest")
            return int(ExitCode.OK)
        print("nothing to validate: no manifests among the given paths", file=sys.stderr)
        return int(ExitCode.INVALID)
    result = api.validate(paths, args.root)
    if fmt == "json":
        out.json({"ok": not result.errors, "checked": result.checked, "errors": result.errors, "warnings": result.warnings})
        return int(ExitCode.INVALID if result.errors else ExitCode.OK)
    for problem in result.problems:
        print(problem.render(), file=sys.stderr)
        if fmt == "github":
            print(problem.github())
    errors = result.errors
    bad_files = {p.path for p in errors}
    total = len(result.checked)
    if not total:
        out.note("no manifests found under manifests/")
    if errors:
        print(f"{len(errors)} error{'s' if len(errors) != 1 else ''} in {len(bad_files)} of {total} file{'s' if total != 1 else ''}",
              file=sys.stderr)
        return int(ExitCode.INVALID)
    warned = f", {len(result.warnings)} warning{'s' if len(result.warnings) != 1 else ''}" if result.warnings else ""
    out.info(f"ok: {total} manifest{'s' if total != 1 else ''} valid{warned}")
    return int(ExitCode.OK)
