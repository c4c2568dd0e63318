"""The playbook's closed vocabulary, defined once: plays, roles, decisions and statuses (and the shape of a GitHub login).

Every module imports these names from here; none spells its own list. Members are ``str`` values
(``Play.PTQ == "ptq"``), so they read and write as the plain strings the manifest, plan JSON and lock
use. A leaf module: imports nothing from quantgate.
"""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """``enum.StrEnum`` for Python 3.10: members are their string values."""

    def __str__(self) -> str:
        return str(self.value)

    __format__ = str.__format__

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(m.value for m in cls)


class Play(StrEnum):
    """The eight plays, in playbook order."""

    BASELINE = "baseline"
    ENVELOPE = "envelope"
    PTQ = "ptq"
    GATE = "gate"
    MIXED_PRECISION = "mixed_precision"
    QAT = "qat"
    LOCK = "lock"
    MONITOR = "monitor"

    @property
    def number(self) -> int:
        return list(Play).index(self) + 1

    @property
    def title(self) -> str:
        return _TITLES[self]


_TITLES = {
    Play.BASELINE: "baseline", Play.ENVELOPE: "envelope check", Play.PTQ: "post-training quantization",
    Play.GATE: "evaluate + gate", Play.MIXED_PRECISION: "mixed precision", Play.QAT: "quantization-aware training",
    Play.LOCK: "lock", Play.MONITOR: "monitor",
}

PLAYS: tuple[Play, ...] = tuple(Play)
#: Plays that load a model (the ones a no-op rerun must not touch).
MODEL_PLAYS: tuple[Play, ...] = (Play.BASELINE, Play.PTQ, Play.MIXED_PRECISION, Play.QAT)
#: Plays that produce a quantized candidate the gate judges.
CANDIDATE_PLAYS: tuple[Play, ...] = (Play.PTQ, Play.MIXED_PRECISION, Play.QAT)


class Role(StrEnum):
    """Who signs (the playbook's owner column); the manifest's ``owners:`` keys."""

    ML_ENGINEER = "ml_engineer"
    PLATFORM_LEAD = "platform_lead"
    PRODUCT_OWNER = "product_owner"
    ENGINEERING_MANAGER = "engineering_manager"
    ON_CALL = "on_call"


#: Which roles sign which play (PLAYBOOK.md). Plan, validation, lock and sign-off all read this table.
PLAY_SIGNERS: dict[Play, tuple[Role, ...]] = {
    Play.BASELINE: (Role.ML_ENGINEER,),
    Play.ENVELOPE: (Role.PLATFORM_LEAD,),
    Play.PTQ: (Role.ML_ENGINEER,),
    Play.GATE: (Role.ML_ENGINEER, Role.PRODUCT_OWNER),
    Play.MIXED_PRECISION: (Role.ML_ENGINEER,),
    Play.QAT: (Role.ML_ENGINEER, Role.ENGINEERING_MANAGER),
    Play.LOCK: (Role.ML_ENGINEER, Role.PRODUCT_OWNER),
    Play.MONITOR: (Role.ON_CALL, Role.PRODUCT_OWNER),
}
#: Roles that sign by pull-request review (on_call receives alerts instead).
REVIEW_ROLES: tuple[Role, ...] = (Role.ML_ENGINEER, Role.PLATFORM_LEAD, Role.PRODUCT_OWNER, Role.ENGINEERING_MANAGER)


class Decision(StrEnum):
    """The gate's decision for one candidate (play 4)."""

    PASS = "pass"
    CLOSE = "close"
    BROKEN = "broken"


class EnvelopeVerdict(StrEnum):
    """Play 2's verdict. Only ``fail`` stops the funnel; ``warn`` and ``wrong-move`` are advisory."""

    PASS = "pass"
    WARN = "warn"
    WRONG_MOVE = "wrong-move"
    FAIL = "fail"


class Status(StrEnum):
    """A play's status in a lock: dbt's closed set (``failed`` is a valid result that missed its bar,
    ``error`` is something that broke)."""

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"


class PlanStatus(StrEnum):
    """What the plan says of a play before it runs."""

    RUN = "run"
    CACHED = "cached"
    SKIPPED = "skipped"


class Verdict(StrEnum):
    """A run's outcome, recorded in the lock."""

    LOCKED = "locked"
    REFUSED = "refused"


class SignoffStatus(StrEnum):
    PENDING = "pending"
    COMPLETE = "complete"


#: A GitHub login (a user, or the organisation part of ``org/team``): the regex text the manifest's
#: owner check and the report's mention escaping both build on.
GITHUB_LOGIN = r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}"
