"""verify: a nudged number, a post-lock manifest edit, changed data or artifact -> exit 1, named."""

from __future__ import annotations

from fake_runner import FakeRunner, Script

from compiler import api
from compiler.cli import main
from compiler.playbook.lockfile import dump_lock, read_lock, results_sha256, update_signoff


def locked(repo, script=None):
    api.run(repo.manifest, runner=FakeRunner(script or Script(ptq=(0.83, 0.58)), root=repo.root), root=repo.root)


def problems(repo):
    [verdict] = api.verify([repo.manifest], repo.root)
    return verdict.problems


def test_fresh_lock_verifies(repo, capsys):
    locked(repo)
    assert problems(repo) == []
    assert main(["verify", str(repo.manifest), "--root", str(repo.root)]) == 0
    assert "ok:" in capsys.readouterr().out


def test_nudged_number_is_caught_and_named(repo, capsys):
    locked(repo)
    text = repo.lock.read_text()
    # Make a failing candidate look passing: the kind of edit a hurried human might make.
    text = text.replace("      candidate: 0.848\n", "      candidate: 0.849\n", 1)
    repo.lock.write_text(text)
    found = problems(repo)
    assert any("edited after quantgate wrote it" in p for p in found)
    assert any("deltas.quality.overall.candidate is 0.849" in p for p in found)
    assert main(["verify", str(repo.manifest), "--root", str(repo.root)]) == 1
    assert "deltas.quality.overall.candidate" in capsys.readouterr().err


def test_a_self_consistent_forgery_still_fails_the_recomputed_gate(repo):
    # Refused lock turned into "locked" by someone who also recomputed the hash: the gate,
    # recomputed from the recorded numbers and the manifest, still says no.
    locked(repo, Script(ptq=(0.83, 0.58), mixed_precision=None))
    lock = read_lock(repo.lock).data()
    lock["verdict"] = "locked"
    ptq = lock["plays"]["ptq"]["result"]
    lock["final"] = {
        "candidate": "ptq", "method": ptq["method"], "weights": "int8", "activations": "none", "group_size": None,
        "backend": ptq["backend"], "backend_version": ptq["backend_version"], "config": ptq["config"],
        "calibration": {"path": "data/train.tsv", "sha256": ptq["calibration_sha256"], "samples": ptq["calibration_samples"], "seed": 0},
        "protected_layers": [], "quantized_layers": ptq["quantized_layers"], "artifact": ptq["artifact"],
    }
    repo.lock.write_text(dump_lock(lock))  # recomputes results_sha256: the hash alone cannot catch this
    found = problems(repo)
    assert not any("edited after" in p for p in found)
    assert any("do not pass the manifest's gate (recomputed: close)" in p for p in found)


def test_manifest_edit_after_locking_names_the_section(repo):
    locked(repo)
    repo.edit("max_drop: 0.01", "max_drop: 0.02")
    [p] = problems(repo)
    assert "changed after it was locked (changed: gate)" in p


def test_changed_evaluation_data_is_caught(repo):
    locked(repo)
    with open(repo.root / "data" / "eval.tsv", "a") as handle:
        handle.write("3\textra a\textra b\n")
    assert any("evaluation data data/eval.tsv is not what was locked" in p for p in problems(repo))


def test_tampered_artifact_is_caught(repo):
    locked(repo)
    artifact = read_lock(repo.lock).data()["final"]["artifact"]
    (repo.root / artifact["path"] / "model.bin").write_bytes(b"something else")
    assert any("does not match its locked sha256" in p for p in problems(repo))


def test_signoff_updates_keep_verify_green_and_change_nothing_else(repo):
    locked(repo)
    before = read_lock(repo.lock).data()
    record = {"status": "complete", "head_sha": "a" * 40,
              "records": [{"role": "ml_engineer", "login": "ml-eng", "review_id": 1, "commit_sha": "a" * 40},
                          {"role": "product_owner", "login": "product-lead", "review_id": 2, "commit_sha": "a" * 40}], "missing": []}
    assert update_signoff(repo.lock, record) is True
    assert update_signoff(repo.lock, record) is False  # same content: not rewritten
    after = read_lock(repo.lock).data()
    assert after["signoff"] == record
    assert results_sha256(after) == results_sha256(before) == after["results_sha256"]
    assert problems(repo) == []


def test_a_hand_written_complete_signoff_fails_verify(repo):
    # signoff: is outside results_sha256, so nothing but this check stands between a hand-written
    # "complete" and a green verify.
    locked(repo)
    update_signoff(repo.lock, {"status": "complete", "head_sha": "c" * 40, "records": [], "missing": []})
    found = problems(repo)
    assert any("signoff: status complete but no record signs ml_engineer" in p for p in found), found


def test_rerun_keeps_recorded_signoffs_while_results_are_unchanged(repo):
    locked(repo)
    record = {"status": "complete", "head_sha": "b" * 40, "records": [], "missing": []}
    update_signoff(repo.lock, record)
    locked(repo)
    assert read_lock(repo.lock).data()["signoff"] == record
    repo.edit("max_drop: 0.01", "max_drop: 0.005")  # different results: sign-offs are stale
    locked(repo)
    assert read_lock(repo.lock).data()["signoff"]["status"] == "pending"


def test_refused_lock_does_not_verify(repo):
    locked(repo, Script(envelope="fail"))
    assert any("records a refusal" in p for p in problems(repo))


def test_unlocked_manifest_fails_unless_skipped(repo, capsys):
    assert main(["verify", str(repo.manifest), "--root", str(repo.root)]) == 1
    assert "no lock file" in capsys.readouterr().err
    assert main(["verify", str(repo.manifest), "--root", str(repo.root), "--skip-unlocked"]) == 0
    assert "has no lock yet" in capsys.readouterr().out
