"""``quantgate commit-back [MANIFEST...]``: commit quantgate's own files (locks, rules, serving
flags, reports) to the branch as the workflow's bot and push; never forced, retried over a moving
branch (fetch + rebase), exit 4 when it keeps moving. Without MANIFEST: every changed quantgate file.

Inside Actions the push authenticates with ``$GITHUB_TOKEN`` the way actions/checkout does (an
``http.extraheader`` for this one git call), so the checkout can use ``persist-credentials: false``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "commit quantgate's own files to the branch and push"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST")
    parser.add_argument("--path", action="append", default=[], metavar="PATH",
                        help="a quantgate file to commit (repeatable); anything else is refused")
    parser.add_argument("--message", "-m", default=None, help="commit message (default: names the manifests)")
    parser.add_argument("--what", default="results", help="what the commit records, for the default message (results, sign-off)")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--branch", default=None, help="branch to push (default: $GITHUB_HEAD_REF, else the current branch)")
    parser.add_argument("--attempts", type=int, default=5, help="push attempts before giving up with exit 4 (default 5)")
    parser.add_argument("--root", type=Path, default=Path("."))


def _all_changed(root: Path) -> list[str]:
    import git

    from compiler.gitops.changed import is_quantgate_file
    from compiler.gitops.commitback import porcelain_paths

    out = git.Repo(root).git.status("--porcelain=v1", "-z", "--untracked-files=all")
    return [p for p in porcelain_paths(out) if is_quantgate_file(p)]


def run(args: argparse.Namespace) -> int:
    from compiler.gitops.changed import manifest_name
    from compiler.gitops.commitback import CommitBack, default_message, quantgate_paths_for
    from compiler.errors import InvalidInput, Problem

    root = args.root.resolve()
    paths = list(args.path)
    if args.manifests:
        for manifest in args.manifests:
            if not (root / manifest).is_file() and not manifest.is_file():
                raise InvalidInput(Problem(path=str(manifest), message="no such manifest"))
        paths += quantgate_paths_for(root, args.manifests)
    if not args.manifests and not args.path:
        paths = _all_changed(root)
    names = [manifest_name(root / m if not m.is_absolute() else m) for m in args.manifests]
    message = args.message or default_message(names, args.what)
    job = CommitBack(
        root,
        paths,
        message,
        remote=args.remote,
        branch=args.branch or os.environ.get("GITHUB_HEAD_REF") or None,
        attempts=args.attempts,
        token=os.environ.get("GITHUB_TOKEN") or None,
        server_url=os.environ.get("GITHUB_SERVER_URL", "https://github.com"),
    )
    pushed = job.run()
    if pushed.sha is None:
        print("nothing to commit: quantgate's files are unchanged")
        return 0
    print(f"pushed {pushed.sha} to {args.remote}/{job.branch} after {pushed.attempts} attempt(s): {', '.join(pushed.paths)}")
    output = os.environ.get("GITHUB_OUTPUT")
    if output:
        with open(output, "a", encoding="utf-8") as handle:
            handle.write(f"sha={pushed.sha}\n")
    return 0
