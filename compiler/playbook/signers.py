"""Whose signature a lock needs: the plays whose results are new against the base branch's lock,
and the roles that sign them (``compiler.vocabulary.PLAY_SIGNERS``). The lock's pending list and
``quantgate signoff`` both read it from here, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from compiler.vocabulary import PLAY_SIGNERS, Play, Role, SignoffStatus, Status

#: Play statuses that produced a result needing its owners' signature (``skipped`` produced nothing).
SIGNED_STATUSES = frozenset({Status.PASSED, Status.FAILED, Status.ERROR})
#: Play 8 (monitor) is signed when the model goes live, not in the pull request: its trigger is
#: "the quantized model is live", and on_call receives the rollback alerts rather than signing.
SIGNED_IN_PULL_REQUEST: tuple[Play, ...] = tuple(play for play in Play if play != Play.MONITOR)


def _play_items(lock: Mapping | None) -> list[tuple[str, Mapping]]:
    plays = (lock or {}).get("plays") or {}
    return [(str(name), entry) for name, entry in plays.items() if isinstance(entry, Mapping)]


def plays_that_ran(lock: Mapping | None, base_lock: Mapping | None = None) -> list[str]:
    """The plays whose owners must sign this change, in playbook order, ``lock`` always included
    (the lock is play 7's record and is always reviewed).

    A play needs its owners when the lock says it produced something (passed, failed, error) that
    the base branch's lock does not already hold: no base lock, or a different ``cache_key`` or
    status there. So an unchanged envelope needs no platform lead, a changed one does."""
    base = dict(_play_items(base_lock))
    ran = []
    for name, entry in _play_items(lock):
        if name not in SIGNED_IN_PULL_REQUEST or entry.get("status") not in SIGNED_STATUSES or name in ran:
            continue
        before = base.get(name)
        if before is not None and before.get("cache_key") == entry.get("cache_key") and before.get("status") == entry.get("status"):
            continue  # signed when the base branch's lock was made
        ran.append(name)
    if Play.LOCK not in ran:
        ran.append(Play.LOCK.value)
    return ran


def signers(plays: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """role -> the plays it signs among ``plays``, in role order."""
    needed: dict[str, list[str]] = {}
    for play in plays:
        for role in PLAY_SIGNERS.get(Play(play), ()):
            needed.setdefault(role.value, []).append(str(play))
    return {role.value: tuple(needed[role.value]) for role in Role if role.value in needed}


def signoff_problems(lock: Mapping, base_lock: Mapping | None = None, *,
                     owners: Mapping[str, Iterable[str]] | None = None, distinct_signers: bool = True) -> list[str]:
    """Whether a lock's ``signoff:`` block is consistent with the lock itself; the problems, empty
    when it is. Pure: it reads no review, so it cannot tell a real approval from a made-up one (the
    ``quantgate/signoff`` status, recomputed from GitHub, is the authority); it refuses a block no
    ``quantgate signoff`` could have written, such as a hand-written ``status: complete``.

    Required roles: with ``base_lock`` (the base branch's lock, or ``{}`` for none) exactly the
    roles of ``plays_that_ran(lock, base_lock)``. Without it the base is unknown, so the check is
    bounded: at least the lock's own reviewers (play 7: ml_engineer + product_owner) must have
    signed, and records may name only roles of plays the lock says produced a result.

    - ``status: complete`` needs ``head_sha``, an empty ``missing``, records covering every required
      role, each with a review id and a commit, and (``distinct_signers``) distinct people;
    - records only for required roles, at most one per role (any status);
    - ``owners`` (role -> the manifest's owners): a record's login must be among the role's owners
      when they are all plain logins (a team's members cannot be known offline).
    """
    block = lock.get("signoff") if isinstance(lock, Mapping) else None
    if not isinstance(block, Mapping):
        return ["signoff: missing (quantgate run writes a pending block)"]
    if base_lock is None:
        required = set(signers([Play.LOCK.value]))
        allowed = set(signers(plays_that_ran(lock, None)))
    else:
        required = allowed = set(signers(plays_that_ran(lock, base_lock)))
    problems: list[str] = []
    status = str(block.get("status") or "")
    records = [r for r in (block.get("records") or []) if isinstance(r, Mapping)]
    if len(records) != len(block.get("records") or []):
        problems.append("signoff.records: every record must be a mapping (role, login, review_id, commit_sha)")
    roles = [str(r.get("role") or "") for r in records]
    for role in sorted({r for r in roles if roles.count(r) > 1}):
        problems.append(f"signoff.records: {role} is signed more than once")
    for role in sorted(set(roles) - allowed):
        problems.append(f"signoff.records: {role or '(no role)'} is not a role this lock needs "
                        f"(needed: {', '.join(sorted(allowed)) or 'none'})")
    for record in records:
        role, login = str(record.get("role") or ""), str(record.get("login") or "").lstrip("@").lower()
        listed = list((owners or {}).get(role) or [])
        if owners is not None and listed and all("/" not in o for o in listed) \
                and login not in {o.lstrip("@").lower() for o in listed}:
            problems.append(f"signoff.records: @{login} is not an owner of {role} ({', '.join(listed)})")
    if status == SignoffStatus.COMPLETE.value:
        if not block.get("head_sha"):
            problems.append("signoff: status complete without head_sha (the commit the sign-off was decided on)")
        if block.get("missing"):
            problems.append(f"signoff: status complete while missing {', '.join(map(str, block['missing']))}")
        for role in sorted(required - set(roles)):
            problems.append(f"signoff: status complete but no record signs {role}")
        for record in records:
            if record.get("review_id") is None or not record.get("commit_sha"):
                problems.append(f"signoff.records: {record.get('role')} by @{record.get('login')} names no review "
                                "and commit (only an approving review signs)")
        logins = [str(r.get("login") or "").lower() for r in records]
        if distinct_signers and len(set(logins)) != len(logins):
            problems.append("signoff.records: one person signs several roles; co-signs need distinct people")
    elif status != SignoffStatus.PENDING.value:
        problems.append(f"signoff.status: {status!r} is neither pending nor complete")
    return problems
