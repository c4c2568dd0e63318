"""Pull-request reviews -> which owners signed which play (playbook: reviews are the sign-offs).

The decision is pure: ``decide`` takes the manifest's owners, the plays the lock says ran, the
reviews, the PR author, and two callables (is a commit's diff to the head lock-only? who is in a
team?), and returns a ``Decision``. The GitHub and git plumbing lives in ``compiler.github`` and the
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

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, get_args

from compiler.github import APPROVED, CHANGES_REQUESTED, DISMISSED, Review, parse_team
from compiler.manifest import PLAY_SIGNERS, Role  # who signs each play (PLAYBOOK.md)

#: Role order used for reports and for the deterministic matching: the manifest's order.
ROLE_ORDER: tuple[str, ...] = get_args(Role)
#: Play statuses that produced a result needing its owners' signature (``skipped`` produced nothing;
#: ``cached``, where a lock carries it, was signed when it was produced).
SIGNED_STATUSES = frozenset({"passed", "failed", "error"})
VERDICTS = frozenset({APPROVED, CHANGES_REQUESTED, DISMISSED})
#: Play 8 (monitor) is signed when the model goes live, not in the pull request: its trigger is
#: "the quantized model is live", and on_call receives the rollback alerts rather than signing.
SIGNED_IN_PULL_REQUEST = tuple(play for play in PLAY_SIGNERS if play != "monitor")


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
        """The lock's ``signoff:`` block (compiler.lockfile.update_signoff)."""
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


def _play_items(lock: Mapping | None) -> list[tuple[str, Mapping]]:
    plays = (lock or {}).get("plays") or {}
    if isinstance(plays, Mapping):
        items = list(plays.items())
    elif isinstance(plays, list):
        items = [(p.get("name") or p.get("play"), p) for p in plays if isinstance(p, Mapping)]
    else:
        items = []
    return [(str(name), entry if isinstance(entry, Mapping) else {"status": entry}) for name, entry in items]


def plays_that_ran(lock: Mapping | None, base_lock: Mapping | None = None) -> list[str]:
    """The plays whose owners must sign this change, in playbook order, ``lock`` always included
    (the lock is play 7's record and is always reviewed).

    A play needs its owners when the lock says it produced something (passed, failed, error) that
    the base branch's lock does not already hold: no base lock, or a different ``cache_key`` or
    status there. So an unchanged envelope needs no platform lead, a changed one does. Reads
    ``plays`` as a mapping name -> {status, cache_key} or a list of {name|play, status}."""
    base = dict(_play_items(base_lock))
    ran = []
    for name, entry in _play_items(lock):
        if name not in SIGNED_IN_PULL_REQUEST or entry.get("status") not in SIGNED_STATUSES or name in ran:
            continue
        before = base.get(name)
        if before is not None and before.get("cache_key") == entry.get("cache_key") and before.get("status") == entry.get("status"):
            continue  # signed when the base branch's lock was made
        ran.append(name)
    if "lock" not in ran:
        ran.append("lock")
    return ran


def required_roles(plays: Iterable[str]) -> dict[str, tuple[str, ...]]:
    needed: dict[str, list[str]] = {}
    for play in plays:
        for role in PLAY_SIGNERS.get(play, ()):
            needed.setdefault(role, []).append(play)
    return {role: tuple(needed[role]) for role in ROLE_ORDER if role in needed}


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
    required = required_roles(plays)
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
