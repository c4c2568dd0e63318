"""Whose signature a lock needs: the plays whose results are new against the base branch's lock,
and the roles that sign them (``compiler.vocabulary.PLAY_SIGNERS``). The lock's pending list and
``quantgate signoff`` both read it from here, so they can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from compiler.vocabulary import PLAY_SIGNERS, Play, Role, Status

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
