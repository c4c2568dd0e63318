"""The funnel, the lock and the no-op rerun, through the real pipeline with the fake runner."""

from __future__ import annotations

import shutil

import pytest
from fake_runner import FakeRunner, Script

from compiler import api
from compiler.errors import Conflict, InvalidInput, RunnerFailed
from compiler.playbook.journal import run_guard
from compiler.playbook.lockfile import read_lock


def run(repo, script: Script | None = None):
    runner = FakeRunner(script or Script(), root=repo.root)
    result = api.run(repo.manifest, runner=runner, root=repo.root)
    return result, runner.calls


def statuses(lock):
    return {name: entry["status"] for name, entry in lock["plays"].items()}


def test_pass_after_ptq_locks_and_skips_mixed_precision(repo):
    result, calls = run(repo)
    assert calls == ["baseline", "envelope", "ptq"]
    lock = read_lock(repo.lock).data()
    assert lock["verdict"] == "locked" and lock["final"]["candidate"] == "ptq"
    assert statuses(lock) == {"baseline": "passed", "envelope": "passed", "ptq": "passed", "gate": "passed",
                              "mixed_precision": "skipped", "qat": "skipped", "lock": "passed", "monitor": "passed"}
    assert lock["deltas"]["quality"]["overall"] == {"baseline": 0.85, "candidate": 0.845, "drop": pytest.approx(0.005)}
    assert lock["signoff"]["status"] == "pending"
    assert (repo.root / "reports" / "demo" / "report.md").is_file()


def test_unchanged_rerun_changes_no_byte_and_calls_no_runner(repo):
    run(repo, Script(ptq=(0.83, 0.58)))  # through mixed precision: the most state to reproduce
    before = {p: p.read_bytes() for p in (repo.lock, *sorted((repo.root / "reports").rglob("*.*")))}
    mtime = repo.lock.stat().st_mtime_ns
    result, calls = run(repo, Script(ptq=(0.83, 0.58)))
    assert calls == []
    assert not result.lock_written and result.report_written == []
    assert {p: p.read_bytes() for p in before} == before
    assert repo.lock.stat().st_mtime_ns == mtime
    assert not api.plan(repo.manifest, repo.root).loads_model


def test_fresh_clone_rerun_serves_everything_from_the_lock(repo):
    run(repo, Script(ptq=(0.83, 0.58)))
    before = repo.lock.read_bytes()
    shutil.rmtree(repo.root / ".quantgate")  # the journal is git-ignored: a fresh clone has none
    _, calls = run(repo, Script(ptq=(0.83, 0.58)))
    assert calls == [] and repo.lock.read_bytes() == before


def test_close_goes_through_mixed_precision(repo):
    _, calls = run(repo, Script(ptq=(0.83, 0.58)))
    assert calls == ["baseline", "envelope", "ptq", "mixed_precision"]
    lock = read_lock(repo.lock).data()
    assert lock["final"]["candidate"] == "mixed_precision"
    assert lock["final"]["protected_layers"] == ["encoder.layer.0.attention.q", "encoder.layer.0.attention.k"]
    assert [j["decision"] for j in lock["plays"]["gate"]["result"]["judgments"]] == ["close", "pass"]
    assert lock["evaluations"] == {"full": 4, "by_play": {"baseline": 1, "ptq": 1, "mixed_precision": 2}}
    report = (repo.root / "reports" / "demo" / "report.md").read_text()
    assert "mixed_precision.png" in report and (repo.root / "reports" / "demo" / "sensitivity.png").is_file()


def test_mixed_precision_exhausted_without_qat_stops_with_a_next_step(repo):
    result, calls = run(repo, Script(ptq=(0.83, 0.58), mixed_precision=None))
    assert calls == ["baseline", "envelope", "ptq", "mixed_precision"]
    lock = read_lock(repo.lock).data()
    assert lock["verdict"] == "refused" and lock["final"] is None
    assert "max_protected_fraction" in lock["next_step"] and "enable qat" in lock["next_step"]
    assert statuses(lock)["qat"] == "skipped" and statuses(lock)["lock"] == "skipped"


def test_broken_with_qat_enabled_runs_qat_and_requires_the_engineering_manager(repo):
    repo.edit("qat: {enabled: false}", "qat: {enabled: true, justification: 'serves 40M requests a day', steps: 10}")
    _, calls = run(repo, Script(ptq=(0.70, 0.40)))
    assert calls == ["baseline", "envelope", "ptq", "qat"]  # broken: mixed precision cannot help
    lock = read_lock(repo.lock).data()
    assert lock["final"]["candidate"] == "qat"
    assert statuses(lock)["mixed_precision"] == "skipped"
    assert "engineering_manager" in lock["signoff"]["missing"]


def test_envelope_fail_stops_before_quantization(repo):
    result, calls = run(repo, Script(envelope="fail"))
    assert calls == ["baseline", "envelope"]
    lock = read_lock(repo.lock).data()
    assert lock["verdict"] == "refused" and "envelope said fail" in lock["next_step"]
    assert statuses(lock)["ptq"] == "skipped"


def test_rollback_change_reruns_no_play_and_rewrites_only_play_8(repo):
    run(repo)
    old = read_lock(repo.lock).data()
    repo.edit("quality_floor: 0.78", "quality_floor: 0.70")
    plan = api.plan(repo.manifest, repo.root)
    assert plan.to_dict()["summary"]["run"] == ["lock", "monitor"] and not plan.loads_model
    _, calls = run(repo)
    new = read_lock(repo.lock).data()
    assert calls == []
    assert new["plays"]["monitor"]["result"]["rollback"]["quality_floor"] == 0.70
    same = lambda lock: {k: v for k, v in lock["plays"].items() if k not in ("monitor", "lock")}  # noqa: E731
    assert same(new) == same(old)
    assert new["manifest"]["sections"]["rollback"] != old["manifest"]["sections"]["rollback"]


def test_owner_change_reruns_nothing(repo):
    run(repo)
    repo.edit('on_call: ["@acme/ml-oncall"]', 'on_call: ["@new-oncall"]')
    assert api.plan(repo.manifest, repo.root).to_dict()["summary"]["run"] == ["lock"]
    _, calls = run(repo)
    assert calls == []


def test_relaxing_the_gate_on_a_fresh_clone_loads_no_model(repo):
    run(repo, Script(ptq=(0.83, 0.58), mixed_precision=None))
    assert read_lock(repo.lock).data()["verdict"] == "refused"
    shutil.rmtree(repo.root / ".quantgate")
    repo.edit("max_drop: 0.01", "max_drop: 0.025")
    _, calls = run(repo, Script(ptq=(0.83, 0.58)))
    assert calls == []  # ptq's recorded numbers are judged again; nothing is re-measured
    assert read_lock(repo.lock).data()["final"]["candidate"] == "ptq"


def test_new_target_on_a_fresh_clone_reruns_the_baseline_for_its_per_example_scores(repo):
    run(repo)
    shutil.rmtree(repo.root / ".quantgate")
    repo.edit("weights: int8", "weights: int4")
    plan = api.plan(repo.manifest, repo.root)
    assert plan.play("baseline").status == "run" and "per-example" in plan.play("baseline").why
    assert plan.play("envelope").status == "run"  # the target changed
    _, calls = run(repo)
    assert calls == ["baseline", "envelope", "ptq"]


def test_runner_failure_is_exit_3_and_keeps_finished_plays(repo):
    with pytest.raises(RunnerFailed, match="ptq backend crashed"):
        run(repo, Script(fail={"ptq": "runner"}))
    assert not repo.lock.exists()
    _, calls = run(repo)
    assert calls == ["ptq"]  # baseline and envelope came from the journal


def test_runner_input_error_is_located_invalid_input(repo):
    with pytest.raises(InvalidInput) as err:
        run(repo, Script(fail={"baseline": "input"}))
    problem = err.value.problems[0]
    assert (problem.path, problem.line) == ("data/eval.tsv", 4) and "7" in problem.message


def test_plan_resolves_the_backend_from_declarations_whatever_is_installed(repo, monkeypatch):
    import importlib.metadata

    def nothing_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    repo.edit("backend: torchao", "backend: auto")  # auto used to pick among installed backends only
    installed = api.plan(repo.manifest, repo.root)
    monkeypatch.setattr(importlib.metadata, "version", nothing_installed)
    bare = api.plan(repo.manifest, repo.root)
    assert bare.backend == installed.backend == "onnxruntime"  # first registered for cpu int8 encoders
    assert [p.cache_key for p in bare.plays] == [p.cache_key for p in installed.plays]


def test_a_backend_that_cannot_run_the_target_is_refused_before_any_model_at_its_key(repo):
    repo.edit("backend: torchao", "backend: optimum-quanto")
    repo.edit("activations: none", "activations: dynamic-int8")
    runner = FakeRunner(root=repo.root)
    with pytest.raises(InvalidInput) as err:
        api.run(repo.manifest, runner=runner, root=repo.root)
    problem = err.value.problems[0]
    assert problem.key_path == "quantization.backend" and problem.line == 30 and "optimum-quanto" in problem.source_line
    assert "optimum-quanto" in problem.message and runner.calls == []


def test_second_run_of_the_same_manifest_refuses_with_conflict(repo):
    with run_guard(repo.root, "demo"):
        with pytest.raises(Conflict, match="another `quantgate run`"):
            api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root, wait_s=0.3)
    _, calls = run(repo)  # released: the next run proceeds
    assert calls[0] == "baseline"


def test_plan_marks_what_depends_on_results_not_known_yet(repo):
    repo.edit("qat: {enabled: false}", "qat: {enabled: true, justification: 'high volume', steps: 10}")
    plays = {p.name: p for p in api.plan(repo.manifest, repo.root).plays}
    assert plays["baseline"].condition is None and plays["baseline"].status == "run"
    assert plays["mixed_precision"].condition == "only if the gate says close"
    assert plays["qat"].condition == "only if mixed precision (or the gate) still misses"
    assert plays["lock"].condition == "only if the gate passes"
    run(repo, Script(ptq=(0.83, 0.58)))  # close -> mixed precision passes
    after = {p.name: (p.status, p.condition) for p in api.plan(repo.manifest, repo.root).plays}
    assert after == {"baseline": ("cached", None), "envelope": ("cached", None), "ptq": ("cached", None), "gate": ("cached", None),
                     "mixed_precision": ("cached", None), "qat": ("skipped", None), "lock": ("cached", None), "monitor": ("cached", None)}


def test_cli_run_exit_2_names_the_backend_line_and_loads_nothing(repo, capsys):
    from compiler.cli import main

    repo.edit("backend: torchao", "backend: onnxruntime")
    repo.edit("device: cpu", "device: cuda")  # ONNX Runtime is registered for CPU only
    assert main(["run", str(repo.manifest), "--root", str(repo.root)]) == 2
    err = capsys.readouterr().err
    assert "manifests/demo.yaml:30:12: quantization.backend: backend 'onnxruntime' cannot run" in err
    assert not (repo.root / ".quantgate" / "journal").exists()
