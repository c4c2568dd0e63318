"""``quantgate pull MANIFEST|SERVING --dest DIR``: fetch the active and the fallback artifact of a
locked manifest into ``DIR/quantized`` and ``DIR/full-precision``. Every file is hashed while it
streams into a temporary folder, which is renamed into place only when every file matches the lock:
a mismatch exits 1 naming the file and both hashes, and leaves nothing in ``DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "fetch the active and fallback artifacts of a manifest, verified against its lock"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", type=Path, metavar="MANIFEST|SERVING", help="a manifest or its .serving.yaml")
    parser.add_argument("--dest", type=Path, required=True, help="folder to deploy into (created)")
    parser.add_argument("--root", type=Path, default=None, help="repository root")


def run(args: argparse.Namespace) -> int:
    from compiler import api

    for name, where in api.pull(args.target, args.dest, args.root).items():
        print(f"{name}: {where}")
    return 0
