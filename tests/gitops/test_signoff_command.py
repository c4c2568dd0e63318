"""``quantgate signoff`` end to end against the loopback GitHub and a real git history: exit code,
who is missing, the commit status, the record in the lock, the webhook review merged in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from compiler.cli import main
from compiler.playbook.lockfile import read_lock, write_lock

from .conftest import git
from .github_server import FIXTURES

# a lock written by a real `quantgate run` of the demo manifest (limit 64, 96MiB envelope), plays
# statuses replaced below; if the lock schema moves on, regenerate it with that run
REAL_LOCK = Path(__file__).parent / "data" / "minilm-stsb.lock.yaml"

MANIFEST = "manifests/minilm-stsb.yaml"
LOCK = "manifests/minilm-stsb.lock.yaml"
CHANGED = ("ptq", "gate", "lock")  # the PR moves these plays' cache keys; the envelope stays


@pytest.fixture
def pr(demo_repo, github, monkeypatch):
    """PR #12 by 'author': a manifest change (c1), then a lock-only commit (c2) at the head."""
    return open_pr(demo_repo, github, monkeypatch)


def open_pr(demo_repo, github, monkeypatch) -> dict:
    """The ``pr`` fixture's pull request (shared with test_trust_attacks)."""
    repo = demo_repo.work
    lock = read_lock(REAL_LOCK).data()
    git(repo, "checkout", "-q", "main")
    write_lock(repo / LOCK, lock)
    base = demo_repo.commit("locked on main")
    git(repo, "push", "-q", "origin", "main")
    git(repo, "checkout", "-q", "-b", "loosen")
    demo_repo.write(MANIFEST, (repo / MANIFEST).read_text().replace("max_drop: 0.01", "max_drop: 0.02"))
    c1 = demo_repo.commit("loosen the gate")
    for play in CHANGED:
        lock["plays"][play]["cache_key"] = "f" * 64
    write_lock(repo / LOCK, lock)
    c2 = demo_repo.commit("lock")
    github.open_pull(12, "author", c2, base)
    for key, value in github.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(repo)
    return {"c1": c1, "c2": c2, "base": base, "repo": repo}


def on_base(pr, github, files: dict[str, str]) -> str:
    """Commit ``files`` (path -> text) on main, and make that commit the pull request's base: what
    the repository trusts is read from there, never from the pull request."""
    repo = pr["repo"]
    git(repo, "checkout", "-q", "main")
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "policy on main")
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "loosen")
    github.pulls[12]["base"]["sha"] = base
    return base


def signoff(capsys, *extra):
    code = main(["signoff", MANIFEST, "--pr", "12", *extra])
    out, err = capsys.readouterr()
    return code, out + err


def test_missing_owners_exit_1_with_names_and_pending_status(pr, github, capsys):
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    code, out = signoff(capsys)
    assert code == 1
    assert "missing: product_owner for gate, lock: one of @product-lead" in out
    assert "signed: ml_engineer by @ml-eng" in out
    status = github.statuses[-1]
    assert (status["sha"], status["state"], status["context"]) == (pr["c2"], "pending", "quantgate/signoff")
    assert status["description"] == "1 of 2 sign-offs; missing product_owner"
    recorded = read_lock(pr["repo"] / LOCK).data()["signoff"]
    assert recorded["status"] == "pending" and recorded["missing"] == ["product_owner"]


def test_complete_exit_0_records_who_signed(pr, github, capsys, tmp_path, monkeypatch):
    a = github.review(12, "ml-eng", "APPROVED", pr["c2"])
    b = github.review(12, "product-lead", "APPROVED", pr["c2"])
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, out = signoff(capsys)
    assert code == 0, out
    assert github.statuses[-1]["state"] == "success"
    lock = read_lock(pr["repo"] / LOCK).data()
    assert lock["signoff"] == {
        "status": "complete",
        "head_sha": pr["c2"],
        "records": [
            {"role": "ml_engineer", "login": "ml-eng", "review_id": a["id"], "commit_sha": pr["c2"]},
            {"role": "product_owner", "login": "product-lead", "review_id": b["id"], "commit_sha": pr["c2"]},
        ],
        "missing": [],
    }
    text = summary.read_text()
    assert "product" in text and not re.search(r"(?<![`\u200b])@product", text)  # escaped: no mention from the summary
    # a second run changes nothing in the lock
    assert "unchanged signoff" in signoff(capsys)[1]


def test_changes_requested_sets_a_failure_status(pr, github, capsys):
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "product-lead", "CHANGES_REQUESTED", pr["c2"])
    code, out = signoff(capsys)
    assert code == 1 and "blocked: @product-lead (product_owner) requested changes" in out
    assert github.statuses[-1]["state"] == "failure"


def test_review_from_the_event_payload_is_merged(pr, github, capsys, tmp_path, monkeypatch):
    """The REST list may not list a review yet when its event arrives: the payload's counts too
    (webhook state lower case)."""
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    payload = json.loads((FIXTURES / "google-github-owners-bot/test/fixtures/actions/pull_request_review.35.submitted.json").read_text())
    payload["review"]["user"]["login"] = "product-lead"
    payload["review"]["commit_id"] = pr["c2"]
    assert payload["review"]["state"] == "approved"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    code, out = signoff(capsys)
    assert code == 0, out


def test_sha_option_and_no_record(pr, github, capsys):
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "product-lead", "APPROVED", pr["c2"])
    before = (pr["repo"] / LOCK).read_bytes()
    code, _ = signoff(capsys, "--sha", pr["c2"], "--no-record")
    assert code == 0 and (pr["repo"] / LOCK).read_bytes() == before
    assert github.statuses[-1]["sha"] == pr["c2"]


def test_team_owner_through_the_members_api(pr, github, capsys):
    repo = pr["repo"]
    team_owned = (repo / MANIFEST).read_text().replace('product_owner: ["@product-lead"]', 'product_owner: ["@acme/product"]')
    on_base(pr, github, {MANIFEST: git(repo, "show", f"{pr['base']}:{MANIFEST}").replace(
        'product_owner: ["@product-lead"]', 'product_owner: ["@acme/product"]')})
    (repo / MANIFEST).write_text(team_owned)
    github.team("acme", "product", ["dana"])
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "dana", "APPROVED", pr["c2"])
    code, out = signoff(capsys, "--sha", pr["c2"])
    assert code == 0, out
    assert ("GET", "/orgs/acme/teams/product/members", None) in github.requests


def test_forbidden_team_lookup_is_a_note_not_a_crash(pr, github, capsys):
    repo = pr["repo"]
    team_owned = (repo / MANIFEST).read_text().replace('product_owner: ["@product-lead"]', 'product_owner: ["@acme/product"]')
    on_base(pr, github, {MANIFEST: git(repo, "show", f"{pr['base']}:{MANIFEST}").replace(
        'product_owner: ["@product-lead"]', 'product_owner: ["@acme/product"]')})
    (repo / MANIFEST).write_text(team_owned)
    github.team("acme", "product", ["dana"])
    github.forbidden_teams.add(("acme", "product"))
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "dana", "APPROVED", pr["c2"])
    code, out = signoff(capsys, "--sha", pr["c2"])
    assert code == 1 and "could not resolve @acme/product" in out and "403" in out
    assert github.env()["GITHUB_TOKEN"] not in out


def test_no_lock_yet_is_pending(demo_repo, github, capsys, monkeypatch):
    head = git(demo_repo.work, "rev-parse", "HEAD")
    github.open_pull(12, "author", head, git(demo_repo.work, "rev-parse", "main"))
    for key, value in github.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(demo_repo.work)
    code, out = signoff(capsys)
    assert code == 1 and "no lock yet" in out
    assert github.statuses[-1]["state"] == "pending"


def test_dismissal_event_wins_over_a_lagging_rest_list(pr, github, capsys, tmp_path, monkeypatch):
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    approved = github.review(12, "product-lead", "APPROVED", pr["c2"])
    payload = json.loads((FIXTURES / "octokit-webhooks/payload-examples/pull_request_review/dismissed.payload.json").read_text())
    payload["review"].update(id=approved["id"], commit_id=pr["c2"], submitted_at=approved["submitted_at"])
    payload["review"]["user"]["login"] = "product-lead"
    assert payload["review"]["state"] == "dismissed"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(payload))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    code, out = signoff(capsys)
    assert code == 1 and "missing: product_owner" in out
