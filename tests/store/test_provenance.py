"""Results come from CI, not from the pull request (issue: a hand-edited lock was accepted end to end).

The attack: rewrite the ptq result in a lock (better Spearman, drop the warning) with quantgate's own
``dump_lock``, which recomputes ``results_sha256``. Defences under test, each failing without it:
- with a store, ``plan`` does not count the forged play as cached and ``run`` re-measures it, so the
  forged numbers never survive into the lock CI commits back;
- ``verify --provenance`` exits 1 naming the play and the field that differs;
- the honest lock, whose results the publishing job recorded, plans as cached "verified against the
  store"; without a store the plan says "unverified: no store".
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "playbook"))

from fake_runner import FakeRunner  # noqa: E402
from playbook_support import make_repo  # noqa: E402

from compiler import api  # noqa: E402
from compiler.cli import main  # noqa: E402
from compiler.playbook.lockfile import dump_lock, read_lock  # noqa: E402

STORES = ["file", "s3", "oci"]


def published(backend):
    repo = make_repo(backend.root)
    (backend.root / "quantgate.yaml").write_text(f"artifacts: {{store: {backend.url!r}}}\n")
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    assert main(["push", str(repo.manifest), "--root", str(repo.root), "--run-id", "4242"]) == 0  # the trusted publishing job
    return repo


def forge(repo) -> None:
    data = read_lock(repo.lock).data()
    ptq = data["plays"]["ptq"]["result"]
    ptq["quality"]["value"] = 0.849  # better than measured
    ptq["performance"]["latency_p95_ms"] = 1.0
    overall = data["deltas"]["quality"]["overall"]  # a careful forger keeps the lock self-consistent
    overall["candidate"], overall["drop"] = 0.849, overall["baseline"] - 0.849
    data["deltas"]["performance"]["latency_p95_ms"]["candidate"] = 1.0
    repo.lock.write_text(dump_lock(data))  # results_sha256 recomputed: internally consistent


def fresh_clone_journal(repo) -> None:
    """CI has no journal: only the lock (and the store) can say what is known."""
    import shutil

    shutil.rmtree(repo.root / ".quantgate", ignore_errors=True)


@pytest.mark.parametrize("backend", STORES, indirect=True)
def test_an_honest_published_lock_plans_as_verified_and_cached(backend):
    repo = published(backend)
    fresh_clone_journal(repo)
    plan = api.plan(repo.manifest, repo.root)
    assert plan.provenance == "verified against the store"
    statuses = {p.name: p.status for p in plan.plays}
    assert statuses["ptq"] == "cached" and "verified against the store" in plan.play("ptq").why
    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--provenance"]) == 0


@pytest.mark.parametrize("backend", STORES, indirect=True)
def test_a_forged_result_is_re_run_and_reported(backend, capsys):
    repo = published(backend)
    forge(repo)
    fresh_clone_journal(repo)
    assert main(["verify", str(repo.manifest), "--root", str(repo.root)]) == 0  # the hash alone cannot tell
    capsys.readouterr()
    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--provenance"]) == 1
    err = capsys.readouterr().err
    assert "ptq: not produced by CI: plays.ptq.result.performance.latency_p95_ms differs" in err
    assert "run 4242" in err

    plan = api.plan(repo.manifest, repo.root)
    assert plan.play("ptq").status == "run" and "not the one CI recorded" in plan.play("ptq").why
    assert plan.play("envelope").status == "cached"  # untouched results stay cached

    runner = FakeRunner(root=repo.root)
    api.run(repo.manifest, runner=runner, root=repo.root)
    assert "ptq" in runner.calls  # re-measured
    lock = read_lock(repo.lock)
    assert lock.plays.ptq.result["quality"]["value"] != 0.849 and lock.plays.ptq.result["performance"]["latency_p95_ms"] != 1.0
    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--provenance"]) == 0


@pytest.mark.parametrize("backend", ["file"], indirect=True)
def test_a_store_never_takes_a_second_different_result_for_a_key(backend, capsys):
    repo = published(backend)
    forge(repo)
    capsys.readouterr()
    assert main(["push", str(repo.manifest), "--root", str(repo.root)]) == 4  # never overwritten
    assert "already records a different ptq result" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["folder"], indirect=True)
def test_without_a_store_results_are_unverified_and_said_so(backend, capsys):
    repo = make_repo(backend.root)
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    plan = api.plan(repo.manifest, repo.root)
    assert plan.provenance == "unverified: no store" and "unverified: no store" in plan.play("ptq").why
    assert plan.to_dict()["provenance"] == "unverified: no store"
    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--provenance"]) == 2
    assert "needs a store" in capsys.readouterr().err


@pytest.mark.parametrize("backend", ["file"], indirect=True)
def test_a_pull_request_cannot_name_the_store_that_vouches_for_its_results(backend, monkeypatch, tmp_path):
    # The attack: forge the lock, record the forged results in a store of one's own, and point the
    # PR's quantgate.yaml at it. The store is repository policy, read at the base commit in CI.
    import subprocess

    repo = published(backend)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(repo.root)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base", "--no-verify"], check=True)
    base = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    forge(repo)
    (repo.root / "quantgate.yaml").write_text(f"artifacts: {{store: {'file://' + str(tmp_path / 'mine')!r}}}\n")
    assert main(["push", str(repo.manifest), "--root", str(repo.root)]) == 0  # the forged results, "recorded"
    fresh_clone_journal(repo)
    assert api.plan(repo.manifest, repo.root).play("ptq").status == "cached"  # what the PR's own policy says
    monkeypatch.setenv("QUANTGATE_POLICY_REF", base)
    plan = api.plan(repo.manifest, repo.root)
    assert plan.play("ptq").status == "run" and "not the one CI recorded" in plan.play("ptq").why
