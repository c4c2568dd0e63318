"""``quantgate check-run --workflow-path P --head-sha S --base REF``: the publishing job's first step.
Refuses (exit 1, naming the file) results from a pull-request run whose workflow file, or the local
``action.yml`` it installs quantgate from, differs from the base branch's (``api.check_run``; why:
``compiler.gitops.trust``).

In the ``workflow_run`` workflow: ``--root`` is the pull request's head checkout (data only),
``--base-root`` the trusted checkout of the default branch. With ``--pr N`` (the number the
untrusted run uploaded) the pull request is read from the GitHub API and must be at ``--head-sha``;
its facts (``pr``, ``base-sha``, ``head-ref``) go to ``$GITHUB_OUTPUT``. With ``--results DIR`` and
every check passed, the touched manifests' quantgate files are copied from ``DIR`` into ``--root``
(no symbolic links, nothing outside the lock, rules, serving flag, report folder and locked artifact).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "refuse results from a pull-request run whose workflow differs from the base branch's"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workflow-path", required=True, metavar="PATH",
                        help="the workflow file that produced the results (github.event.workflow_run.path)")
    parser.add_argument("--head-sha", required=True, metavar="SHA", help="the run's head commit (github.event.workflow_run.head_sha)")
    parser.add_argument("--base", required=True, metavar="REF", help="the trusted commit or ref to compare with (in --base-root)")
    parser.add_argument("--root", type=Path, default=Path("."), help="the pull request's checkout (default: .)")
    parser.add_argument("--base-root", type=Path, default=None, help="the trusted checkout holding --base (default: --root)")
    parser.add_argument("--pr", type=int, default=None, metavar="N",
                        help="the pull request the run claims; read from the API, it must be at --head-sha")
    parser.add_argument("--results", type=Path, default=None, metavar="DIR",
                        help="the downloaded results: copy the touched manifests' quantgate files into --root")


def run(args: argparse.Namespace) -> int:
    from compiler import api
    from compiler.clients import actions

    problems = api.check_run(args.root, args.base, args.head_sha, args.workflow_path, args.base_root)
    for problem in problems:
        print(f"refused: {problem}", file=sys.stderr)
    if problems:
        return 1
    outputs: dict[str, object] = {}
    base = args.base
    if args.pr is not None:
        pr = api.pull_request_at(args.pr, args.head_sha)
        outputs = {"pr": pr.number, "base-sha": pr.base_sha, "head-ref": pr.head_ref}
        base = pr.base_sha
    if args.results is not None:
        copied = api.place_results(args.results, args.root, base, args.head_sha)
        outputs["placed"] = len(copied)
        for path in copied:
            args.out.note(f"placed {path}")
    actions.set_outputs(**outputs)
    print(f"ok: {args.workflow_path} at {args.head_sha[:12]} is the base branch's; "
          + (f"pull request #{args.pr}" if args.pr is not None else "no pull request checked"))
    return 0
