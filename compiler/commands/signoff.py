"""``quantgate signoff MANIFEST --pr N``: decide from the pull request's reviews whether the owners
named in the manifest signed every play the lock says ran (rules: ``compiler.gitops.signoff``).

GitHub context from the Actions environment (``GITHUB_API_URL``, ``GITHUB_REPOSITORY``,
``GITHUB_TOKEN``; the review of a ``pull_request_review`` event in ``GITHUB_EVENT_PATH`` is merged in).
Staleness is judged with local git, so the checkout needs the PR's history (``fetch-depth: 0``).
Records the decision in the lock (``signoff:``), sets the commit status ``quantgate/signoff`` on the
head, prints who is still missing. Exit 0 when complete, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

HELP = "decide from pull-request reviews whether the owners signed"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", type=Path, metavar="MANIFEST")
    parser.add_argument("--pr", type=int, required=True, metavar="N", help="pull request number")
    parser.add_argument("--sha", default=None,
                        help="commit to judge and to set the status on (default: the PR head); after a "
                             "lock-only commit-back pass the new HEAD")
    parser.add_argument("--no-record", action="store_true", help="do not write the decision into the lock")
    parser.add_argument("--no-status", action="store_true", help="do not set the commit status")
    parser.add_argument("--root", type=Path, default=None, help="repository root (default: found from MANIFEST)")


def _step_summary(name: str, decision, lines: list[str]) -> None:
    from compiler.report.escape import md

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    out = [f"### quantgate sign-off: {md(name)}", "", "| role | signed by | review |", "|---|---|---|"]
    out += [f"| {md(r.role)} | {md('@' + r.login)} | {md(r.review_id)} |" for r in decision.records]
    out += ["", *[f"- {md(line)}" for line in lines], ""]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(out) + "\n")


def _lock_at(root: Path, commit: str, lock_file: Path) -> dict | None:
    """The lock as the base branch has it (None: no lock there, or the commit is not fetched)."""
    import git

    from compiler.errors import InvalidInput
    from compiler.playbook.lockfile import parse_lock

    try:
        rel = lock_file.resolve().relative_to(root.resolve()).as_posix()
        text = git.Repo(root).git.show(f"{commit}:{rel}")
    except (ValueError, git.GitError):
        return None
    try:
        return parse_lock(text, f"{commit[:12]}:{rel}")
    except InvalidInput:
        return None


def run(args: argparse.Namespace) -> int:
    from compiler import discover
    from compiler.gitops.changed import touches_only_quantgate_files
    from compiler.clients.github import GitHub, context_from_env, review_from_event
    from compiler.manifest.load import load_manifest
    from compiler.playbook.lockfile import read_lock, update_signoff
    from compiler.gitops.signoff import decide, describe_missing, plays_that_ran

    context = context_from_env()
    loaded = load_manifest(args.manifest, args.root)
    root = loaded.root
    manifest = loaded.manifest
    lock_file = discover.lock_path(args.manifest)
    lock = read_lock(lock_file)
    github = GitHub(context)
    pr = github.pull_request(args.pr)
    head = args.sha or pr.head_sha
    if lock is None:
        message = "no lock yet: quantgate run has not recorded results"
        print(f"{args.manifest}: {message}")
        if not args.no_status:
            github.set_status(head, "pending", message)
        return 1

    reviews = github.reviews(args.pr)
    event_review = review_from_event(context.event_path)
    if event_review is not None:
        # the REST list can lag the event by a moment (a new review missing, a dismissed one still
        # approved): the event's version of its review wins
        reviews = [r for r in reviews if r.id != event_review.id] + [event_review]

    base_lock = _lock_at(root, pr.base_sha, lock_file)
    owners = {role: manifest.owners.of(role) for role in type(manifest.owners).model_fields}
    decision = decide(
        owners=owners,
        plays=plays_that_ran(lock, base_lock),
        reviews=reviews,
        author=pr.author,
        head_sha=head,
        is_fresh=lambda commit: touches_only_quantgate_files(root, commit, head),
        team_members=github.team_members,
        distinct_signers=manifest.signoff.distinct_signers,
    )
    for record in decision.records:
        print(f"signed: {record.role} by @{record.login} (review {record.review_id} on {str(record.commit_sha)[:12]})")
    lines = describe_missing(decision, owners)
    for line in [*lines, *(f"note: {n}" for n in decision.notes)]:
        print(line)
    if not args.no_record:
        wrote = update_signoff(lock_file, decision.as_lock())
        print(f"{'recorded' if wrote else 'unchanged'} signoff in {lock_file}")
    if not args.no_status:
        state = "success" if decision.complete else ("failure" if decision.blocked_by else "pending")
        github.set_status(head, state, decision.summary())
    _step_summary(manifest.metadata.name, decision, [*lines, *decision.notes])
    print("sign-off complete" if decision.complete else "sign-off incomplete")
    return 0 if decision.complete else 1
