"""One funnel: the plan predicts exactly what execution runs.

``plan`` explores ``compiler.playbook.funnel.step`` over every outcome not known yet; ``execute`` walks
the same step with the real outcomes. A property test drives both through random gate outcomes and
manifest switches (mixed precision, QAT) with the scripted runner, and checks that the path the plan
predicts for the outcomes that happened is the one execution took, play for play, and that a plan
made after the run runs nothing and skips what execution skipped.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fake_runner import FakeRunner, Script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from playbook_support import MANIFEST, Repo, make_repo

from compiler import api
from compiler.playbook.funnel import DONE, Route, explore, step
from compiler.vocabulary import Decision, EnvelopeVerdict, Play, Verdict

# (overall, hardest) pairs the default gate (max_drop 0.01, hardest 0.03, close 0.03) judges as each
# decision against the scripted baseline (0.85, 0.60).
QUALITY = {Decision.PASS: (0.845, 0.59), Decision.CLOSE: (0.83, 0.58), Decision.BROKEN: (0.70, 0.40)}


def funnel_repo(root: Path, mixed_precision: bool, qat: bool) -> Repo:
    text = MANIFEST.replace("mixed_precision: {enabled: true, max_protected_fraction: 0.3}",
                            f"mixed_precision: {{enabled: {str(mixed_precision).lower()}, max_protected_fraction: 0.3}}")
    if qat:
        text = text.replace("qat: {enabled: false}", "qat: {enabled: true, justification: 'high volume', steps: 10}")
    return make_repo(root, text)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    envelope=st.sampled_from(["pass", "warn", "wrong-move", "fail"]),
    ptq=st.sampled_from(list(Decision)),
    mixed=st.sampled_from([Decision.PASS, Decision.CLOSE, None]),
    qat=st.sampled_from(list(Decision)),
    mixed_precision=st.booleans(),
    qat_enabled=st.booleans(),
)
def test_the_plan_predicts_the_plays_execution_runs(envelope, ptq, mixed, qat, mixed_precision, qat_enabled):
    root = Path(tempfile.mkdtemp(prefix="funnel-"))
    try:
        repo = funnel_repo(root, mixed_precision, qat_enabled)
        script = Script(envelope=envelope, ptq=QUALITY[ptq], mixed_precision=QUALITY[mixed] if mixed else None, qat=QUALITY[qat])
        plan = api.plan(repo.manifest, repo.root)
        runner = FakeRunner(script, root=repo.root)
        result = api.run(repo.manifest, runner=runner, root=repo.root)

        # The outcomes that happened, read from the lock the run wrote.
        lock = result.lock
        happened = {Play.ENVELOPE: envelope}
        for judgment in lock["plays"]["gate"].get("result", {}).get("judgments", []):
            happened[Play(judgment["candidate"])] = judgment["decision"]
        for play in (Play.MIXED_PRECISION, Play.QAT):
            if play in runner.calls:  # ran, but may have produced no candidate to judge
                happened.setdefault(play, Decision.BROKEN)
        predicted = plan.exploration.predict(happened)
        model_plays = [p for p in runner.calls if p != "envelope"]
        assert list(predicted.ran) == [Play(p) for p in runner.calls], (predicted, runner.calls)
        assert str(predicted.end.verdict) == lock["verdict"]
        statuses = {p.name: p for p in plan.plays}
        for name in model_plays:  # nothing executed was predicted cached or skipped
            assert statuses[name].status == "run"
        for play in plan.plays:  # an unconditional run always happens
            if play.status == "run" and play.condition is None and play.name not in ("gate", "lock", "monitor"):
                assert play.name in runner.calls

        # Planned again after the run: nothing left to run, and the same plays skipped.
        after = {p.name: p.status for p in api.plan(repo.manifest, repo.root).plays}
        assert "run" not in after.values(), after
        skipped = {name for name, entry in lock["plays"].items() if entry["status"] == "skipped"}
        assert {name for name, status in after.items() if status == "skipped"} == skipped
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_step_is_pure_and_ends_every_walk():
    for mp in (False, True):
        for qat in (False, True):
            ways = explore(Route(mixed_precision=mp, qat=qat), {})
            assert ways.paths and all(w.end.play is None and w.end.verdict in (Verdict.LOCKED, Verdict.REFUSED) for w in ways.paths)
            assert ways.always(Play.BASELINE) and ways.always(Play.ENVELOPE) and not ways.always(Play.PTQ)
            assert bool(ways.reached(Play.MIXED_PRECISION)) is mp and bool(ways.reached(Play.QAT)) is qat
    seen = {Play.BASELINE: DONE, Play.ENVELOPE: EnvelopeVerdict.PASS, Play.PTQ: Decision.CLOSE}
    assert step(Route(True, False), seen) == step(Route(True, False), dict(seen))
    assert step(Route(True, False), seen).play == Play.MIXED_PRECISION
    assert step(Route(False, False), seen).verdict == Verdict.REFUSED
