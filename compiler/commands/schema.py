"""``quantgate schema [--check]``: write the JSON Schemas under ``schemas/`` from the pydantic models.

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


def run(args: argparse.Namespace) -> int:
    from compiler import api
    from compiler.discover import find_repo_root
    from compiler.errors import ExitCode

    root = args.root or find_repo_root(Path.cwd())
    changed = api.write_schemas(root, check=args.check)
    for path in changed:
        shown = path.relative_to(root) if path.is_relative_to(root) else path
        if args.check:
            print(f"{shown}: stale; run quantgate schema", file=sys.stderr)
        else:
            print(f"wrote {shown}")
    if args.check and changed:
        return int(ExitCode.REFUSED)
    if not changed:
        print("schemas up to date")
    return int(ExitCode.OK)
