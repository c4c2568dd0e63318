"""``quantgate report [MANIFEST...] [--changed BASE]``: render ``reports/<name>/report.md`` (+ PNG
plots) from each lock, and say where. Default: every manifest under manifests/ that has a lock."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render the human report (Markdown + plots) from a lock"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST",
                        help="manifests to report on (default: every manifest under manifests/ that has a lock)")
    parser.add_argument("--changed", metavar="BASE", default=None,
                        help="the manifests the change BASE...HEAD touches (as `quantgate changed` lists them)")
    parser.add_argument("--root", type=Path, default=None, help="repository root")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def run(args: argparse.Namespace) -> int:
    from compiler import api
    from compiler.discover import lock_path

    out = args.out
    named = out.manifests(list(args.manifests), args.changed, args.root)
    paths = api.manifest_list(named, args.root)
    if named is None:  # every manifest: those with a lock (the others have nothing to report yet)
        paths = [p for p in paths if lock_path(p).is_file()]
    done = []
    for path in paths:
        written = api.report(path, args.root)
        where = api.report_path(path, args.root)
        done.append({"manifest": path, "report": where, "written": written})
        if args.format != "json":
            state = "wrote " + ", ".join(_shown(p) for p in written) if written else "unchanged"
            out.result(f"{_shown(where)}: {state}")
    if args.format == "json":
        out.json(done)
    elif not paths:
        out.note("no locked manifest: nothing to report (run `quantgate run` first)")
    return 0
