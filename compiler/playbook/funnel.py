"""The playbook's funnel as one pure step function: what has been seen -> what happens next.

baseline -> envelope -> ptq -> gate; *pass* locks; *close* goes to mixed precision (when enabled) and
back to the gate; *broken*, or mixed precision exhausted, goes to QAT only when it is enabled (its
justification and engineering manager are validated with the manifest), else the run stops. An
envelope that fails stops before quantization.

``step(route, seen)`` is the only place this is written. ``seen`` maps each finished play to its
outcome: the envelope's verdict, and for each candidate play (ptq, mixed_precision, qat) the gate's
decision on it. ``execute`` walks it with real outcomes; ``plan`` walks it over every outcome not
known yet (``explore``), which is why the plan predicts exactly what execution runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from compiler.vocabulary import CANDIDATE_PLAYS, Decision, EnvelopeVerdict, Play, Verdict

#: The outcome ``seen`` records for the baseline (it has no decision of its own).
DONE = "done"


@dataclass(frozen=True)
class Route:
    """The parts of a manifest that choose the funnel's path."""

    mixed_precision: bool
    qat: bool

    @classmethod
    def of(cls, manifest) -> Route:
        return cls(mixed_precision=manifest.mixed_precision.enabled, qat=manifest.qat.enabled)


@dataclass(frozen=True)
class Step:
    """What comes next: ``play`` to run (None when the funnel has ended), plays skipped on the way
    here with why, and once ended the verdict, the candidate locked and why the fallback ran."""

    play: Play | None
    skipped: tuple[tuple[Play, str], ...] = ()
    verdict: Verdict | None = None
    final: Play | None = None
    fallback_why: str | None = None  # why QAT was (or would have been) the next step


def step(route: Route, seen: Mapping[Play, str]) -> Step:
    """The next step of the funnel given the outcomes ``seen`` so far. Pure."""
    for play in (Play.BASELINE, Play.ENVELOPE):
        if play not in seen:
            return Step(play)
    if seen[Play.ENVELOPE] == EnvelopeVerdict.FAIL:
        why = f"the envelope said {EnvelopeVerdict.FAIL}"
        return Step(None, _skip((Play.PTQ, Play.GATE, Play.MIXED_PRECISION, Play.QAT, Play.LOCK, Play.MONITOR), why), Verdict.REFUSED)
    if Play.PTQ not in seen:
        return Step(Play.PTQ)
    first = seen[Play.PTQ]
    if first == Decision.PASS:
        return _locked(Play.PTQ, _skip((Play.MIXED_PRECISION, Play.QAT), "the gate passed after ptq"))
    skipped: tuple[tuple[Play, str], ...] = ()
    if first == Decision.CLOSE and route.mixed_precision:
        if Play.MIXED_PRECISION not in seen:
            return Step(Play.MIXED_PRECISION)
        if seen[Play.MIXED_PRECISION] == Decision.PASS:
            return _locked(Play.MIXED_PRECISION, _skip((Play.QAT,), "the gate passed after mixed precision"))
        fallback = "mixed precision reached its cap without passing the gate"
    elif first == Decision.CLOSE:
        skipped = _skip((Play.MIXED_PRECISION,), "mixed_precision.enabled is false")
        fallback = "ptq is close at the gate and mixed precision is disabled"
    else:
        skipped = _skip((Play.MIXED_PRECISION,), "the gate says broken: protecting layers cannot close the gap")
        fallback = f"ptq is {first} at the gate"
    if not route.qat:
        return Step(None, skipped + _skip((Play.QAT,), "qat.enabled is false") + _nothing_to_lock(), Verdict.REFUSED, fallback_why=fallback)
    if Play.QAT not in seen:
        return Step(Play.QAT, skipped, fallback_why=fallback)
    if seen[Play.QAT] == Decision.PASS:
        return _locked(Play.QAT, skipped, fallback)
    return Step(None, skipped + _nothing_to_lock(), Verdict.REFUSED, fallback_why=fallback)


def _skip(plays: tuple[Play, ...], why: str) -> tuple[tuple[Play, str], ...]:
    return tuple((p, why) for p in plays)


def _nothing_to_lock() -> tuple[tuple[Play, str], ...]:
    return _skip((Play.LOCK, Play.MONITOR), "the gate did not pass: nothing to lock")


def _locked(final: Play, skipped: tuple[tuple[Play, str], ...], fallback: str | None = None) -> Step:
    return Step(None, skipped, Verdict.LOCKED, final=final, fallback_why=fallback)


# ------------------------------------------------------------------------------ walking it ahead


def possible_outcomes(play: Play) -> tuple[str, ...]:
    """Every outcome ``play`` can have, as far as the funnel distinguishes them."""
    if play == Play.BASELINE:
        return (DONE,)
    if play == Play.ENVELOPE:
        return (EnvelopeVerdict.PASS, EnvelopeVerdict.FAIL)  # warn and wrong-move walk like pass
    if play in CANDIDATE_PLAYS:
        return tuple(Decision)
    raise ValueError(f"{play} has no outcome of its own")


def funnel_outcome(play: Play, outcome: str) -> str:
    """An outcome as the funnel tells it apart (advisory envelope verdicts walk like pass)."""
    if play == Play.ENVELOPE and outcome != EnvelopeVerdict.FAIL:
        return EnvelopeVerdict.PASS
    return outcome


@dataclass(frozen=True)
class Walk:
    """One complete walk: the outcomes assumed (only those not known yet), the plays run in order,
    and how it ended."""

    assumed: dict[Play, str]
    ran: tuple[Play, ...]
    end: Step


@dataclass(frozen=True)
class Exploration:
    """Every path the funnel can still take given what is known."""

    paths: tuple[Walk, ...] = field(default=())

    def reached(self, play: Play) -> list[Walk]:
        return [p for p in self.paths if play in p.ran]

    def always(self, play: Play) -> bool:
        return all(play in p.ran for p in self.paths)

    def ends(self, verdict: Verdict) -> list[Walk]:
        return [p for p in self.paths if p.end.verdict == verdict]

    def predict(self, outcomes: Mapping[Play, str]) -> Walk:
        """The path taken when the plays not known yet turn out as ``outcomes``."""
        for path in self.paths:
            if all(funnel_outcome(play, outcomes.get(play, "")) == value for play, value in path.assumed.items()):
                return path
        raise KeyError(f"no path of the funnel matches {dict(outcomes)}")

    def skip_why(self, play: Play) -> str | None:
        for path in self.paths:
            for skipped, why in path.end.skipped:
                if skipped == play:
                    return why
        return None


def explore(route: Route, known: Mapping[Play, str]) -> Exploration:
    """Walk ``step`` over every outcome of the plays whose outcome ``known`` does not hold."""
    paths: list[Walk] = []

    def walk(seen: dict[Play, str], assumed: dict[Play, str], ran: tuple[Play, ...]) -> None:
        nxt = step(route, seen)
        if nxt.play is None:
            paths.append(Walk(dict(assumed), ran, nxt))
            return
        play = nxt.play
        if play in known:
            walk({**seen, play: funnel_outcome(play, known[play])}, assumed, ran + (play,))
            return
        for outcome in possible_outcomes(play):
            extra = {} if play == Play.BASELINE else {play: outcome}
            walk({**seen, play: outcome}, {**assumed, **extra}, ran + (play,))

    walk({}, {}, ())
    return Exploration(tuple(paths))
