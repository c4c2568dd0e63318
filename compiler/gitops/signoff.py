"""Pull-request reviews -> which owners signed which play (playbook: reviews are the sign-offs).

The decision is pure: ``decide`` takes the manifest's owners, the plays the lock says ran, the
reviews, the PR author, and two callables (is a commit's diff to the head lock-only? who is in a
team?), and returns a ``Decision``. The GitHub and git plumbing lives in ``compiler.clients.github`` and the
``signoff`` command.

Who must sign: the owners of each play whose result in the lock is new against the base branch's
lock (``plays_that_ran``), and always the lock's reviewers.

Rules (each has a test in tests/gitops/test_signoff_rules.py):
- only a reviewer's latest *verdict* counts: APPROVED, CHANGES_REQUESTED or DISMISSED. COMMENTED
  reviews carry no verdict and neither count nor revoke (GitHub's own reading); a DISMISSED latest
  verdict leaves that reviewer with nothing;
- APPROVED signs; CHANGES_REQUESTED by an owner of a required role blocks the whole sign-off;
- the pull request's author cannot sign for any role;
- an approval counts only if the diff from its commit to the head touches nothing but quantgate's
  own files (a manifest, model or data changed after the approval makes it stale);
- ``@org/team`` owners are expanded through team membership;
- with ``signoff.distinct_signers`` (the default) every required role needs its own person; the
  assignment of people to roles is a maximum bipartite matching, so one person who owns two roles
  never blocks a valid assignment and never fills both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from compiler import discover
from compiler.clients import actions
from compiler.clients.git import Git
from compiler.clients.github import (
    APPROVED,
    CHANGES_REQUESTED,
    DISMISSED,
    Context,
    GitHub,
    Review,
    context_from_env,
    parse_team,
    review_from_event,
)
from compiler.errors import InvalidInput
from compiler.gitops.changed import touches_only_quantgate_files
from compiler.manifest.load import load_manifest
from compiler.playbook.lockfile import parse_lock, read_lock, update_signoff
from compiler.playbook.signers import plays_that_ran, signers
from compiler.report.escape import md
from compiler.vocabulary import Role

#: Role order used for reports and for the deterministic matching: the manifest's order.
ROLE_ORDER: tuple[str, ...] = Role.values()
VERDICTS = frozenset({APPROVED, CHANGES_REQUESTED, DISMISSED})


@dataclass(frozen=True)
class Record:
    role: str
    login: str
    review_id: int
    commit_sha: str | None

    def as_lock(self) -> dict:
        return {"role": self.role, "login": self.login, "review_id": self.review_id, "commit_sha": self.commit_sha}


@dataclass(frozen=True)
class Decision:
    head_sha: str
    required: dict[str, tuple[str, ...]]  # role -> plays needing it
    records: tuple[Record, ...]
    missing: tuple[str, ...]  # roles
    blocked_by: tuple[tuple[str, str], ...]  # (login, role) whose latest verdict is CHANGES_REQUESTED
    notes: tuple[str, ...] = field(default=())  # why an approval did not count

    @property
    def complete(self) -> bool:
        return not self.missing and not self.blocked_by

    def as_lock(self) -> dict:
        """The lock's ``signoff:`` block (compiler.playbook.lockfile.update_signoff)."""
        return {
            "status": "complete" if self.complete else "pending",
            "head_sha": self.head_sha,
            "records": [r.as_lock() for r in self.records],
            "missing": list(self.missing),
        }

    def summary(self) -> str:
        """One line for the commit status (GitHub cuts descriptions at 140 characters)."""
        if self.blocked_by:
            return "changes requested by " + ", ".join(f"@{login}" for login, _ in self.blocked_by)
        if self.missing:
            return f"{len(self.records)} of {len(self.required)} sign-offs; missing " + ", ".join(self.missing)
        return f"all {len(self.required)} sign-offs present"


def latest_verdicts(reviews: Iterable[Review]) -> dict[str, Review]:
    """Each reviewer's latest review that carries a verdict (by submission time, then id)."""
    latest: dict[str, Review] = {}
    for review in sorted(reviews, key=lambda r: (r.submitted_at or "", r.id)):
        if review.state in VERDICTS:
            latest[review.login] = review
    return latest


def role_members(
    owners: Mapping[str, list[str]], team_members: Callable[[str, str], frozenset[str]]
) -> tuple[dict[str, frozenset[str]], list[str]]:
    """role -> lower-cased logins allowed to sign it; teams expanded. Unresolvable teams become a
    note and contribute nobody (never everybody)."""
    members: dict[str, frozenset[str]] = {}
    notes: list[str] = []
    for role, listed in owners.items():
        people: set[str] = set()
        for owner in listed:
            team = parse_team(owner)
            if team is None:
                people.add(owner.lstrip("@").lower())
                continue
            try:
                people |= team_members(*team)
            except Exception as exc:  # noqa: BLE001 - reported, and the team then signs nothing
                notes.append(f"could not resolve {owner} for {role}: {exc}")
        members[role] = frozenset(people)
    return members, notes


def _match(roles: list[str], candidates: dict[str, list[str]]) -> dict[str, str]:
    """Maximum bipartite matching roles -> distinct people (Kuhn's augmenting paths; a handful of
    roles, so the simple algorithm is exact and instant)."""
    owner_of: dict[str, str] = {}  # person -> role

    def augment(role: str, seen: set[str]) -> bool:
        for person in candidates.get(role, []):
            if person in seen:
                continue
            seen.add(person)
            if person not in owner_of or augment(owner_of[person], seen):
                owner_of[person] = role
                return True
        return False

    for role in roles:
        augment(role, set())
    return {role: person for person, role in owner_of.items()}


def decide(
    *,
    owners: Mapping[str, list[str]],
    plays: Iterable[str],
    reviews: Iterable[Review],
    author: str,
    head_sha: str,
    is_fresh: Callable[[str], bool],
    team_members: Callable[[str, str], frozenset[str]],
    distinct_signers: bool = True,
) -> Decision:
    """Which required roles are signed, by whom, and what is missing or blocking."""
    required = signers(plays)
    members, notes = role_members(owners, team_members)
    author = author.lower()
    latest = latest_verdicts(reviews)
    fresh_cache: dict[str, bool] = {}

    def fresh(commit: str | None) -> bool:
        if not commit:
            return False
        if commit not in fresh_cache:
            fresh_cache[commit] = commit == head_sha or is_fresh(commit)
        return fresh_cache[commit]

    blocked: list[tuple[str, str]] = []
    approvals: dict[str, Review] = {}
    for login, review in sorted(latest.items()):
        roles_held = [role for role in required if login in members.get(role, ())]
        if review.state == CHANGES_REQUESTED and roles_held:
            blocked.extend((review.display_login, role) for role in roles_held[:1])
            continue
        if review.state != APPROVED or not roles_held:
            continue
        if login == author:
            notes.append(f"@{review.display_login} is the pull request's author and cannot sign")
            continue
        if not fresh(review.commit_id):
            notes.append(
                f"@{review.display_login}'s approval is stale: the change moved past commit "
                f"{(review.commit_id or 'unknown')[:12]} in files other than quantgate's own"
            )
            continue
        approvals[login] = review

    candidates = {
        role: sorted(login for login in approvals if login in members.get(role, ())) for role in required
    }
    roles = list(required)
    if distinct_signers:
        assignment = _match(roles, candidates)
    else:
        assignment = {role: candidates[role][0] for role in roles if candidates[role]}
    records = tuple(
        Record(role=role, login=approvals[assignment[role]].display_login, review_id=approvals[assignment[role]].id,
               commit_sha=approvals[assignment[role]].commit_id)
        for role in roles
        if role in assignment
    )
    missing = tuple(role for role in roles if role not in assignment)
    if distinct_signers:
        for role in missing:
            shared = [login for login in candidates[role] if login in assignment.values()]
            for login in shared:
                notes.append(
                    f"@{approvals[login].display_login} could sign {role} but already signs another role; "
                    "co-signs need distinct people (signoff.distinct_signers)"
                )
    return Decision(
        head_sha=head_sha,
        required=required,
        records=records,
        missing=missing,
        blocked_by=tuple(blocked),
        notes=tuple(notes),
    )


def describe_missing(decision: Decision, owners: Mapping[str, list[str]]) -> list[str]:
    """Human lines: who is still missing, for which plays, who could sign."""
    lines = []
    for login, role in decision.blocked_by:
        lines.append(f"blocked: @{login} ({role}) requested changes")
    for role in decision.missing:
        plays = ", ".join(decision.required.get(role, ()))
        who = ", ".join(owners.get(role, [])) or "nobody (owners." + role + " is empty)"
        lines.append(f"missing: {role} for {plays}: one of {who}")
    return lines


# ------------------------------------------------------------------------- the sign-off pipeline


@dataclass(frozen=True)
class SignoffResult:
    """What ``sign_off`` decided and did. ``decision`` is None when there is no lock yet."""

    name: str
    lock_path: Path
    head_sha: str
    decision: Decision | None
    missing_lines: tuple[str, ...] = ()  # describe_missing
    recorded: bool | None = None  # None: not recorded (asked not to, or no lock)
    status: str | None = None  # the commit status set; None when not set
    message: str | None = None  # why nothing was decided

    @property
    def complete(self) -> bool:
        return self.decision is not None and self.decision.complete


def base_lock(repo: Git, commit: str, lock_file: Path) -> dict | None:
    """The lock as the base branch has it, as plain data (None: no lock there, the commit is not
    fetched, or the lock there does not parse)."""
    try:
        rel = repo.relpath(lock_file)
    except ValueError:
        return None
    text = repo.show(commit, rel)
    if text is None:
        return None
    try:
        return parse_lock(text, f"{commit[:12]}:{rel}").data()
    except InvalidInput:
        return None


def _summary(name: str, decision: Decision, lines: list[str]) -> str:
    out = [f"### quantgate sign-off: {md(name)}", "", "| role | signed by | review |", "|---|---|---|"]
    out += [f"| {md(r.role)} | {md('@' + r.login)} | {md(r.review_id)} |" for r in decision.records]
    out += ["", *[f"- {md(line)}" for line in lines], ""]
    return "\n".join(out) + "\n"


def sign_off(manifest_path: Path, pull_request: int, *, sha: str | None = None, record: bool = True,
             set_status: bool = True, root: Path | None = None, context: Context | None = None,
             github: GitHub | None = None) -> SignoffResult:
    """Decide from the pull request's reviews whether the owners the manifest names signed every
    play the lock says ran; record the decision in the lock's ``signoff:``, set ``quantgate/signoff``
    on the head (``sha``, default the PR head) and append a table to the job summary.

    GitHub context from the Actions environment unless given; the review of a
    ``pull_request_review`` event is merged in (the REST list can lag the event). Staleness is
    judged with local git, so the checkout needs the PR's history."""
    context = context or context_from_env()
    github = github or GitHub(context)
    loaded = load_manifest(Path(manifest_path), root)
    manifest, name = loaded.manifest, loaded.manifest.metadata.name
    lock_file = discover.lock_path(Path(manifest_path))
    lock = read_lock(lock_file)
    pr = github.pull_request(pull_request)
    head = sha or pr.head_sha
    if lock is None:
        message = "no lock yet: quantgate run has not recorded results"
        if set_status:
            github.set_status(head, "pending", message)
        return SignoffResult(name, lock_file, head, None, status="pending" if set_status else None, message=message)

    reviews = github.reviews(pull_request)
    event_review = review_from_event(context.event_path)
    if event_review is not None:
        # the event's version of its review wins: the REST list can lag (a new review missing, a
        # dismissed one still approved)
        reviews = [r for r in reviews if r.id != event_review.id] + [event_review]

    repo = Git.open(loaded.root)
    owners = {role: manifest.owners.of(role) for role in type(manifest.owners).model_fields}
    decision = decide(
        owners=owners,
        plays=plays_that_ran(lock.data(), base_lock(repo, pr.base_sha, lock_file)),
        reviews=reviews,
        author=pr.author,
        head_sha=head,
        is_fresh=lambda commit: touches_only_quantgate_files(repo.root, commit, head),
        team_members=github.team_members,
        distinct_signers=manifest.signoff.distinct_signers,
    )
    lines = describe_missing(decision, owners)
    recorded = update_signoff(lock_file, decision.as_lock()) if record else None
    state = None
    if set_status:
        state = "success" if decision.complete else ("failure" if decision.blocked_by else "pending")
        github.set_status(head, state, decision.summary())
    actions.append_summary(_summary(name, decision, [*lines, *decision.notes]))
    return SignoffResult(name, lock_file, head, decision, tuple(lines), recorded, state)
