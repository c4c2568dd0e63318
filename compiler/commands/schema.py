"""``quantgate schema [--check] [--output DIR] [--force]``: write the JSON Schemas under ``schemas/``
(and ``docs/manifest.md``) from the pydantic models.

Writes only into quantgate's own repository unless asked: elsewhere (a repository that uses
quantgate, where ``docs/manifest.md`` is the user's file) it refuses (exit 2) without ``--output DIR``
(just the JSON Schemas, into DIR: e.g. ``--output schemas`` for the manifests' modeline) or
``--force`` (everything, at ``--root``). An explicit ``--root`` names the destination and counts as asked.
``--check`` writes nothing and exits 1 when a committed schema is stale (CI runs it), 0 when fresh.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "write the JSON Schemas in schemas/ from the models"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a schema file is stale")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from the current directory)")
    parser.add_argument("--output", type=Path, default=None, metavar="DIR",
                        help="write only the JSON Schemas, into DIR (any repository)")
    parser.add_argument("--force", action="store_true",
                        help="write schemas/ and docs/manifest.md even outside quantgate's own repository")


def run(args: argparse.Namespace) -> int:
    from compiler import api
    from compiler.discover import find_repo_root
    from compiler.errors import ExitCode, InvalidInput, Problem
    from compiler.manifest.schemas import is_quantgate_repository

    root = args.root or find_repo_root(Path.cwd())
    if (not args.check and args.output is None and args.root is None and not args.force
            and not is_quantgate_repository(root)):
        raise InvalidInput(Problem(
            path=str(root),
            message="not quantgate's own repository: `quantgate schema` would overwrite schemas/ and docs/manifest.md here. "
                    "Use --output schemas for just the JSON Schemas (what the manifests' modeline reads; "
                    "`quantgate init` writes it too), or --force to write both",
        ))
    changed = api.write_schemas(root, check=args.check, output=args.output)
    for path in changed:
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        if args.check:
            print(f"{shown}: stale; run quantgate schema", file=sys.stderr)
        else:
            args.out.info(f"wrote {shown}")
    if args.check and changed:
        return int(ExitCode.REFUSED)
    if not changed:
        args.out.info("schemas up to date")
    return int(ExitCode.OK)
