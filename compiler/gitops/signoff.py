"""Pull-request reviews -> which owners signed which play (playbook: reviews are the sign-offs).

The decision is pure: ``decide`` takes the owners who may sign, the plays the lock says ran, the
reviews, the PR author, who pushed changes, and callables (is a commit's diff to the head lock-only?
does the lock at that commit hold the head's numbers? who is in a team?), and returns a
``Decision``. The GitHub and git plumbing lives in ``compiler.clients`` and ``sign_off`` below; what
the repository trusts is read from the base commit by ``compiler.gitops.policy``.

Who must sign: the owners of each play whose result in the lock is new against the base branch's
lock (``plays_that_ran``), always the lock's reviewers, and, for each role whose owners the pull
request changes, one of that role's owners on the base branch.

Whose approval is read: for a manifest that exists on the base branch, its owners *there* (a pull
request cannot name its own signers); for a new manifest, its owners as written, provided the base
branch's ``quantgate.yaml`` ``owners:`` allow-list vouches for each (else sign-off is refused); with no
allow-list at all they are taken as written and the decision says that no policy vouched for them.

Rules (each has a test in tests/gitops/test_signoff_rules.py):
- only a reviewer's latest *verdict* counts: APPROVED, CHANGES_REQUESTED or DISMISSED. COMMENTED
  reviews carry no verdict and neither count nor revoke (GitHub's own reading); a DISMISSED latest
  verdict leaves that reviewer with nothing;
- APPROVED signs; CHANGES_REQUESTED by an owner of a required role blocks the whole sign-off;
- the pull request's author cannot sign for any role;
- an owner who authored or committed a commit of the pull request that changes the manifest, its
  data, its model or quantgate.yaml cannot sign (unless quantgate.yaml ``signoff.pusher_can_sign``);
- an approval counts only if the diff from its commit to the head touches nothing but quantgate's
  own files (a manifest, model or data changed after the approval makes it stale);
- an approval counts only if the lock at its commit holds the head's numbers: its results hash,
  recomputed from its content, equals the head lock's (an approval given before CI wrote results,
  or before a hand edit of them, signs nothing);
- ``@org/team`` owners are expanded through team membership;
- with ``signoff.distinct_signers`` (the default) every required role needs its own person; the
  assignment of people to roles is a maximum bipartite matching, so one person who owns two roles
  never blocks a valid assignment and never fills both;
- anything in ``refused`` (owners a new manifest names that the allow-list does not vouch for, a
  lock whose recorded hash does not match its content) fails the sign-off outright.

The lock's own ``signoff:`` block is an output only: it is recomputed here on every run and never
read as input (``compiler.playbook.signers.signoff_problems`` checks it for ``verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
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
from compiler.gitops import policy
from compiler.gitops.changed import references, touches_only_quantgate_files
from compiler.manifest.load import load_manifest
from compiler.playbook.lockfile import parse_lock, read_lock, results_sha256, update_signoff
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
    refused: tuple[str, ...] = field(default=())  # why sign-off is refused whatever the reviews say
    owner_records: tuple[Record, ...] = field(default=())  # base owners approving a change of owners
    unvouched: bool = False  # a new manifest's owners, taken as written: no allow-list vouched for them

    @property
    def complete(self) -> bool:
        return not self.missing and not self.blocked_by and not self.refused

    def as_lock(self) -> dict:
        """The lock's ``signoff:`` block (compiler.playbook.lockfile.update_signoff): the play
        sign-offs; approvals of a change of owners are in the status and summary only."""
        return {
            "status": "complete" if self.complete else "pending",
            "head_sha": self.head_sha,
            "records": [r.as_lock() for r in self.records],
            "missing": list(self.missing),
        }

    def summary(self) -> str:
        """One line for the commit status (GitHub cuts descriptions at 140 characters)."""
        unvouched = "; owners not vouched for by any policy" if self.unvouched else ""
        if self.refused:
            return ("refused: " + self.refused[0])[:140]
        if self.blocked_by:
            return "changes requested by " + ", ".join(f"@{login}" for login, _ in self.blocked_by)
        signed = len(self.records) + len(self.owner_records)
        if self.missing:
            return (f"{signed} of {len(self.required)} sign-offs; missing " + ", ".join(self.missing) + unvouched)[:140]
        return f"all {len(self.required)} sign-offs present{unvouched}"


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


#: The reason recorded in ``Decision.required`` for a role whose owners the pull request changes.
OWNERS_CHANGE = "owners"


def decide(
    *,
    owners: Mapping[str, list[str]],
    plays: Iterable[str],
    reviews: Iterable[Review],
    author: str,
    head_sha: str,
    is_fresh: Callable[[str], bool],
    same_results: Callable[[str], bool],
    team_members: Callable[[str, str], frozenset[str]],
    distinct_signers: bool = True,
    pushers: Mapping[str, str] | None = None,
    owners_changed: Iterable[str] = (),
    refused: Iterable[str] = (),
    unvouched: bool = False,
) -> Decision:
    """Which required roles are signed, by whom, and what is missing, blocking or refused.

    ``owners``: who may sign each role (the base branch's owners for a manifest that exists there).
    ``same_results(commit)``: the lock at ``commit`` holds the head's numbers. ``pushers``: login ->
    a commit it pushed that changes what is signed (they cannot sign). ``owners_changed``: roles whose
    owners the pull request changes (one of ``owners[role]`` must approve). ``refused``: reasons the
    sign-off fails whatever the reviews say. ``unvouched``: noted, see ``Decision``."""
    required = {role: list(reasons) for role, reasons in signers(plays).items()}
    for role in owners_changed:
        required.setdefault(role, []).append(OWNERS_CHANGE)
    play_roles = [role for role in ROLE_ORDER if role in required and required[role] != [OWNERS_CHANGE]]
    owner_roles = [role for role in ROLE_ORDER if required.get(role) == [OWNERS_CHANGE]]
    members, notes = role_members({role: owners.get(role, []) for role in required}, team_members)
    author = author.lower()
    pushers = {login.lower(): sha for login, sha in (pushers or {}).items()}
    latest = latest_verdicts(reviews)
    fresh_cache: dict[str, bool] = {}
    bound_cache: dict[str, bool] = {}

    def fresh(commit: str | None) -> bool:
        if not commit:
            return False
        if commit not in fresh_cache:
            fresh_cache[commit] = commit == head_sha or is_fresh(commit)
        return fresh_cache[commit]

    def bound(commit: str) -> bool:
        if commit not in bound_cache:
            bound_cache[commit] = same_results(commit)
        return bound_cache[commit]

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
        if login in pushers:
            notes.append(
                f"@{review.display_login} pushed commit {pushers[login]}, which changes what is signed, and cannot "
                "sign it (quantgate.yaml signoff.pusher_can_sign)"
            )
            continue
        if not fresh(review.commit_id):
            notes.append(
                f"@{review.display_login}'s approval is stale: the change moved past commit "
                f"{(review.commit_id or 'unknown')[:12]} in files other than quantgate's own"
            )
            continue
        if not bound(str(review.commit_id)):
            notes.append(
                f"@{review.display_login}'s approval is for other numbers: the lock at commit "
                f"{str(review.commit_id)[:12]} does not hold the head's results (approve again now that they are there)"
            )
            continue
        approvals[login] = review

    def record(role: str, login: str) -> Record:
        review = approvals[login]
        return Record(role=role, login=review.display_login, review_id=review.id, commit_sha=review.commit_id)

    candidates = {
        role: sorted(login for login in approvals if login in members.get(role, ())) for role in required
    }
    if distinct_signers:
        assignment = _match(play_roles, candidates)
    else:
        assignment = {role: candidates[role][0] for role in play_roles if candidates[role]}
    records = tuple(record(role, assignment[role]) for role in play_roles if role in assignment)
    owner_records = tuple(record(role, candidates[role][0]) for role in owner_roles if candidates[role])
    signed = {r.role for r in records} | {r.role for r in owner_records}
    missing = tuple(role for role in ROLE_ORDER if role in required and role not in signed)
    if distinct_signers:
        for role in missing:
            shared = [login for login in candidates[role] if login in assignment.values()]
            for login in shared:
                notes.append(
                    f"@{approvals[login].display_login} could sign {role} but already signs another role; "
                    "co-signs need distinct people (signoff.distinct_signers)"
                )
    if unvouched:
        notes.append(
            "no policy vouched for this new manifest's owners: quantgate.yaml on the base branch has no owners: "
            "allow-list, so they are taken as written"
        )
    return Decision(
        head_sha=head_sha,
        required={role: tuple(required[role]) for role in ROLE_ORDER if role in required},
        records=records,
        missing=missing,
        blocked_by=tuple(blocked),
        notes=tuple(notes),
        refused=tuple(refused),
        owner_records=owner_records,
        unvouched=unvouched,
    )


def describe_missing(decision: Decision, owners: Mapping[str, list[str]]) -> list[str]:
    """Human lines: who is still missing, for which plays, who could sign."""
    lines = [f"refused: {reason}" for reason in decision.refused]
    for login, role in decision.blocked_by:
        lines.append(f"blocked: @{login} ({role}) requested changes")
    for role in decision.missing:
        plays = ", ".join(
            "the change of owners." + role + " (an owner on the base branch)" if play == OWNERS_CHANGE else play
            for play in decision.required.get(role, ())
        )
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
    out += [f"| {md(r.role)} (owners change) | {md('@' + r.login)} | {md(r.review_id)} |" for r in decision.owner_records]
    out += ["", *[f"- {md(line)}" for line in lines], ""]
    return "\n".join(out) + "\n"


def results_at(repo: Git, commit: str, lock_relpath: str) -> str | None:
    """The results hash of the lock at ``commit``, recomputed from its content (the recorded
    ``results_sha256`` is not trusted); None when there is no lock there, the commit is unknown, or
    the lock does not parse."""
    text = repo.show(commit, lock_relpath)
    if text is None:
        return None
    try:
        return results_sha256(parse_lock(text, f"{commit[:12]}:{lock_relpath}").data())
    except InvalidInput:
        return None


@dataclass(frozen=True)
class Trust:
    """What the base branch says about one manifest's sign-off (``trust``)."""

    owners: dict[str, list[str]]  # who may sign each role
    distinct_signers: bool
    owners_changed: tuple[str, ...]
    refused: tuple[str, ...]
    notes: tuple[str, ...]
    unvouched: bool
    pusher_can_sign: bool
    watched: tuple[str, ...]  # paths whose change makes a committer a pusher


def trust(repo: Git, base: str, manifest_relpath: str, lock_relpath: str, manifest, team_members) -> Trust:
    """The owners, policy and refusals for ``manifest`` (the pull request's version) read from the
    base commit: ``quantgate.yaml`` there, and the manifest's owners there when it exists there.
    What a pusher changes: the manifest, its data and model (as named at head and at base),
    ``quantgate.yaml``, and the lock (the numbers; only the bot, never an owner, writes it)."""
    config = policy.policy_at(repo, base)
    head_owners = {role: manifest.owners.of(role) for role in ROLE_ORDER}
    before = policy.manifest_policy_at(repo, base, manifest_relpath)
    refused: list[str] = []
    notes: list[str] = []
    head_refs, model_dir = references(manifest.model_dump(mode="json"))
    watched = policy.watched_paths(manifest_relpath, head_refs, [model_dir] if model_dir else [],
                                   before.references if before else (), [lock_relpath])
    if before is not None:
        # owners it adds must be allowed too, when the base branch has an allow-list
        added = {role: [o for o in listed if o.lower() not in {b.lower() for b in before.owners.get(role, [])}]
                 for role, listed in head_owners.items()}
        if config.owners is not None:
            refused, notes = policy.owner_refusals({r: o for r, o in added.items() if o}, config.owners, team_members)
        return Trust(owners=before.owners, distinct_signers=before.distinct_signers or manifest.signoff.distinct_signers,
                     owners_changed=tuple(policy.owners_differ(before.owners, head_owners)), refused=tuple(refused),
                     notes=tuple(notes), unvouched=False, pusher_can_sign=config.signoff.pusher_can_sign, watched=watched)
    unvouched = config.owners is None
    if not unvouched:
        refused, notes = policy.owner_refusals({r: o for r, o in head_owners.items() if o}, config.owners, team_members)
    return Trust(owners=head_owners, distinct_signers=manifest.signoff.distinct_signers, owners_changed=(),
                 refused=tuple(refused), notes=tuple(notes), unvouched=unvouched,
                 pusher_can_sign=config.signoff.pusher_can_sign, watched=watched)


def sign_off(manifest_path: Path, pull_request: int, *, sha: str | None = None, record: bool = True,
             set_status: bool = True, root: Path | None = None, context: Context | None = None,
             github: GitHub | None = None) -> SignoffResult:
    """Decide from the pull request's reviews whether the owners the base branch trusts signed every
    play the lock says ran; record the decision in the lock's ``signoff:`` (recomputed every time,
    never read), set ``quantgate/signoff`` on the head (``sha``, default the PR head) and append a
    table to the job summary.

    GitHub context from the Actions environment unless given; the review of a
    ``pull_request_review`` event is merged in (the REST list can lag the event). Staleness, the
    locks at approved commits and the base branch's policy are read with local git, so the checkout
    needs the PR's history and its base commit (``fetch-depth: 0``)."""
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
    lock_rel = repo.relpath(lock_file)
    trusted = trust(repo, pr.base_sha, repo.relpath(loaded.path), lock_rel, manifest, github.team_members)
    head_results = results_sha256(lock.data())
    refused = list(trusted.refused)
    if lock.results_sha256 != head_results:
        refused.append(f"{lock_rel} was edited after quantgate wrote it (its content hashes to {head_results[:12]}, "
                       f"results_sha256 records {lock.results_sha256[:12]}); quantgate verify says the same")
    pushed = {} if trusted.pusher_can_sign else policy.pushers(repo, github.pull_request_commits(pull_request),
                                                               trusted.watched)
    decision = decide(
        owners=trusted.owners,
        plays=plays_that_ran(lock.data(), base_lock(repo, pr.base_sha, lock_file)),
        reviews=reviews,
        author=pr.author,
        head_sha=head,
        is_fresh=lambda commit: touches_only_quantgate_files(repo.root, commit, head),
        same_results=lambda commit: results_at(repo, commit, lock_rel) == head_results,
        team_members=github.team_members,
        distinct_signers=trusted.distinct_signers,
        pushers=pushed,
        owners_changed=trusted.owners_changed,
        refused=refused,
        unvouched=trusted.unvouched,
    )
    if trusted.notes:
        decision = replace(decision, notes=(*trusted.notes, *decision.notes))
    lines = describe_missing(decision, trusted.owners)
    recorded = update_signoff(lock_file, decision.as_lock()) if record else None
    state = None
    if set_status:
        state = "success" if decision.complete else ("failure" if decision.blocked_by or decision.refused else "pending")
        github.set_status(head, state, decision.summary())
    actions.append_summary(_summary(name, decision, [*lines, *decision.notes]))
    return SignoffResult(name, lock_file, head, decision, tuple(lines), recorded, state)
