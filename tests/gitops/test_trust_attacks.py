"""Each attack of issue 12 on the sign-off, played end to end: ``quantgate signoff`` against the
loopback GitHub and a real git history. Every test fails when its defence is removed.

The pull request (``pr`` fixture of test_signoff_command): main holds the demo manifest and its lock
(``base``); ``c1`` loosens the gate, ``c2`` is the lock CI wrote for it. The demo's owners: ml_engineer
@ml-eng, product_owner @product-lead, platform_lead @platform-eng, on_call @acme/ml-oncall; this
change needs ml_engineer + product_owner.
"""

from __future__ import annotations

import copy

import pytest

from compiler.playbook.lockfile import dump_lock, read_lock, write_lock

from .conftest import git
from .test_signoff_command import LOCK, MANIFEST, REAL_LOCK, on_base, open_pr, signoff

BOT = "github-actions[bot]"


@pytest.fixture
def pr(demo_repo, github, monkeypatch):
    return open_pr(demo_repo, github, monkeypatch)


def commit(pr, message: str, files: dict[str, str]) -> str:
    """Commit ``files`` on the pull request's branch and make it the head."""
    repo = pr["repo"]
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def head(pr, github, sha: str) -> None:
    github.push(12, sha)
    pr["head"] = sha


def text(pr, rel: str) -> str:
    return (pr["repo"] / rel).read_text()


def status(github) -> tuple[str, str]:
    return github.statuses[-1]["state"], github.statuses[-1]["description"]


# ------------------------------------------------------------ approvals are bound to the numbers


def test_approvals_given_before_ci_wrote_results_do_not_count(pr, github, capsys):
    """Attack: owners approve the manifest change (c1) before CI measured anything; the numbers
    that arrive later (c2, a lock-only commit, so not 'stale') must not inherit the approvals."""
    github.review(12, "ml-eng", "APPROVED", pr["c1"])
    github.review(12, "product-lead", "APPROVED", pr["c1"])
    code, out = signoff(capsys)
    assert code == 1, out
    assert "missing: ml_engineer" in out and "missing: product_owner" in out
    assert "approval is for other numbers" in out
    assert status(github)[0] == "pending"
    # approving the numbers themselves signs
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "product-lead", "APPROVED", pr["c2"])
    assert signoff(capsys)[0] == 0


def test_a_hand_edit_of_the_numbers_after_the_approvals_voids_them(pr, github, capsys):
    """Attack: after both owners approved CI's numbers, someone nudges the lock (and recomputes
    results_sha256, so verify's hash check passes). The change is lock-only, so only the binding
    of approvals to the results hash notices."""
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "product-lead", "APPROVED", pr["c2"])
    lock = read_lock(pr["repo"] / LOCK).data()
    lock["deltas"]["quality"]["overall"]["candidate"] = 0.8699
    write_lock(pr["repo"] / LOCK, lock)
    c3 = commit(pr, "better numbers", {})
    head(pr, github, c3)
    code, out = signoff(capsys)
    assert code == 1, out
    assert out.count("approval is for other numbers") == 2
    assert read_lock(pr["repo"] / LOCK).data()["signoff"]["status"] == "pending"


def test_a_lock_whose_hash_does_not_match_its_content_is_refused(pr, github, capsys):
    """A careless hand edit (the recorded hash left as it was) fails the sign-off outright, even
    when the owners approve that very commit."""
    edited = text(pr, LOCK).replace("candidate: 0.8681865165433159", "candidate: 0.8699", 1)
    assert edited != text(pr, LOCK)
    c3 = commit(pr, "nudge", {LOCK: edited})
    head(pr, github, c3)
    github.review(12, "ml-eng", "APPROVED", c3)
    github.review(12, "product-lead", "APPROVED", c3)
    code, out = signoff(capsys, "--no-record")
    assert code == 1, out
    assert "refused:" in out and "was edited after quantgate wrote it" in out
    assert status(github)[0] == "failure"


def test_the_written_signoff_block_is_never_trusted(pr, github, capsys):
    """Attack: a hand-written ``signoff: {status: complete, records: [...]}`` (outside the results
    hash). Sign-off recomputes the block from the reviews: with none, it is pending again."""
    lock = read_lock(pr["repo"] / LOCK).data()
    lock["signoff"] = {"status": "complete", "head_sha": pr["c2"], "missing": [], "records": [
        {"role": "ml_engineer", "login": "ml-eng", "review_id": 1, "commit_sha": pr["c2"]},
        {"role": "product_owner", "login": "product-lead", "review_id": 2, "commit_sha": pr["c2"]}]}
    c3 = commit(pr, "signed, honest", {LOCK: dump_lock(lock)})
    head(pr, github, c3)
    code, out = signoff(capsys)
    assert code == 1, out
    assert read_lock(pr["repo"] / LOCK).data()["signoff"] == {
        "status": "pending", "head_sha": c3, "records": [], "missing": ["ml_engineer", "product_owner"]}
    assert status(github)[0] == "pending"


# ------------------------------------------------------------ the pull request does not choose its signers


def test_a_pull_request_cannot_name_its_own_signers(pr, github, capsys):
    """Attack: the PR sets ``owners.ml_engineer: ["@mallory"]`` and mallory approves. Owners come
    from the base branch, and changing them needs the base owner's approval."""
    c3 = commit(pr, "new owner", {MANIFEST: text(pr, MANIFEST).replace('ml_engineer: ["@ml-eng"]', 'ml_engineer: ["@mallory"]')})
    head(pr, github, c3)
    github.review(12, "mallory", "APPROVED", c3)
    github.review(12, "product-lead", "APPROVED", c3)
    code, out = signoff(capsys)
    assert code == 1, out
    assert "missing: ml_engineer for ptq, gate, lock, the change of owners.ml_engineer (an owner on the base branch): one of @ml-eng" in out
    github.review(12, "ml-eng", "APPROVED", c3)  # the base branch's owner agrees
    code, out = signoff(capsys)
    assert code == 0, out
    assert "signed: ml_engineer by @ml-eng" in out


def test_changing_owners_of_a_role_no_play_needs_still_needs_its_base_owners(pr, github, capsys):
    """Attack: reroute the rollback alerts (``owners.on_call``) inside a change the ML engineer and
    product owner sign. The base branch's on_call owners must approve it too."""
    github.team("acme", "ml-oncall", ["olive"])
    c3 = commit(pr, "alerts to me", {MANIFEST: text(pr, MANIFEST).replace('on_call: ["@acme/ml-oncall"]', 'on_call: ["@mallory"]')})
    head(pr, github, c3)
    github.review(12, "ml-eng", "APPROVED", c3)
    github.review(12, "product-lead", "APPROVED", c3)
    code, out = signoff(capsys)
    assert code == 1, out
    assert "missing: on_call for the change of owners.on_call" in out and "@acme/ml-oncall" in out
    github.review(12, "mallory", "APPROVED", c3)  # the new owner cannot approve their own appointment
    assert signoff(capsys)[0] == 1
    github.review(12, "olive", "APPROVED", c3)
    code, out = signoff(capsys)
    assert code == 0, out
    assert read_lock(pr["repo"] / LOCK).data()["signoff"]["records"][0]["role"] == "ml_engineer"  # plays only


def _new_manifest(pr, github, owners_line: str, policy: str | None, pr_policy: str | None = None) -> str:
    """The pull request adds ``manifests/new-model.yaml`` (a copy of the demo whose ml_engineer line
    is ``owners_line``) with its lock; ``policy``: quantgate.yaml on the base branch."""
    if policy is not None:
        on_base(pr, github, {"quantgate.yaml": policy})
    manifest = text(pr, MANIFEST).replace("name: minilm-stsb", "name: new-model").replace('ml_engineer: ["@ml-eng"]', owners_line)
    lock = copy.deepcopy(read_lock(REAL_LOCK).data())
    lock["name"] = "new-model"
    files = {"manifests/new-model.yaml": manifest, "manifests/new-model.lock.yaml": dump_lock(lock)}
    if pr_policy is not None:
        files["quantgate.yaml"] = pr_policy
    c3 = commit(pr, "a new model", files)
    head(pr, github, c3)
    return c3


ALLOW = ("owners:\n  ml_engineer: ['@ml-eng']\n  product_owner: ['@product-lead']\n  platform_lead: ['@platform-eng']\n"
         "  engineering_manager: ['@eng-manager']\n  on_call: ['@acme/ml-oncall']\n")


def test_a_new_manifest_s_owners_must_be_allowed_by_the_base_branch_policy(pr, github, capsys):
    """Attack: a new manifest names mallory, and the PR adds mallory to quantgate.yaml's allow-list
    too. The allow-list is read from the base branch: refused, naming the role and the policy."""
    c3 = _new_manifest(pr, github, 'ml_engineer: ["@mallory"]', ALLOW,
                       pr_policy=ALLOW.replace("['@ml-eng']", "['@ml-eng', '@mallory']"))
    github.review(12, "mallory", "APPROVED", c3)
    github.review(12, "product-lead", "APPROVED", c3)
    code, out = main_signoff(capsys, "manifests/new-model.yaml")
    assert code == 1, out
    assert "refused: owners.ml_engineer: @mallory is not allowed by quantgate.yaml owners: ml_engineer on the base branch" in out
    assert status(github)[0] == "failure"


def test_a_team_member_is_allowed_when_the_allow_list_names_the_team(pr, github, capsys):
    github.team("acme", "ml", ["alice"])
    c3 = _new_manifest(pr, github, 'ml_engineer: ["@alice"]', ALLOW.replace("['@ml-eng']", "['@acme/ml']"))
    for login in ("alice", "product-lead", "platform-eng"):  # a new lock: every play is new, the envelope too
        github.review(12, login, "APPROVED", c3)
    code, out = main_signoff(capsys, "manifests/new-model.yaml")
    assert code == 0, out


def test_without_an_allow_list_a_new_manifest_s_owners_are_taken_as_written_and_said_so(pr, github, capsys):
    c3 = _new_manifest(pr, github, 'ml_engineer: ["@newcomer"]', None)
    for login in ("newcomer", "product-lead", "platform-eng"):
        github.review(12, login, "APPROVED", c3)
    code, out = main_signoff(capsys, "manifests/new-model.yaml")
    assert code == 0, out
    assert "no policy vouched for this new manifest's owners" in out
    assert status(github) == ("success", "all 3 sign-offs present; owners not vouched for by any policy")


def main_signoff(capsys, manifest: str, *extra: str):
    from compiler.cli import main

    code = main(["signoff", manifest, "--pr", "12", *extra])
    out, err = capsys.readouterr()
    return code, out + err


# ------------------------------------------------------------ no self-approval by pushing


def test_an_owner_who_authored_a_change_cannot_sign_it(pr, github, capsys):
    """Attack: ml-eng writes the change (c1) and approves it. The bot's lock commit (c2) is not a
    push by a person."""
    github.pull_commit(12, pr["c1"], "ml-eng")
    github.pull_commit(12, pr["c2"], BOT)
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "product-lead", "APPROVED", pr["c2"])
    code, out = signoff(capsys)
    assert code == 1, out
    assert f"@ml-eng pushed commit {pr['c1'][:12]}, which changes what is signed, and cannot sign it" in out
    assert "missing: ml_engineer" in out and "signed: product_owner by @product-lead" in out


def test_an_owner_who_committed_a_change_cannot_sign_it(pr, github, capsys):
    github.pull_commit(12, pr["c1"], "author", committer="product-lead")
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "product-lead", "APPROVED", pr["c2"])
    code, out = signoff(capsys)
    assert code == 1 and "missing: product_owner" in out and "@product-lead pushed commit" in out


def test_a_person_s_commit_to_the_lock_is_a_push_the_bot_s_is_not(pr, github, capsys):
    github.pull_commit(12, pr["c1"], "author")
    github.pull_commit(12, pr["c2"], "ml-eng", committer=BOT)  # a person's hand on the numbers
    github.review(12, "ml-eng", "APPROVED", pr["c2"])
    github.review(12, "product-lead", "APPROVED", pr["c2"])
    assert signoff(capsys)[0] == 1


def test_commits_that_change_nothing_signed_make_nobody_a_pusher(pr, github, capsys):
    c3 = commit(pr, "typo", {"README.md": "demo, fixed\n"})
    head(pr, github, c3)
    github.pull_commit(12, pr["c1"], "author")
    github.pull_commit(12, pr["c2"], BOT)
    github.pull_commit(12, c3, "ml-eng")
    github.review(12, "ml-eng", "APPROVED", c3)
    github.review(12, "product-lead", "APPROVED", c3)
    code, out = signoff(capsys)
    assert code == 0, out


def test_the_pull_request_cannot_switch_the_pusher_rule_off(pr, github, capsys):
    """Attack: the PR's own quantgate.yaml says ``signoff: {pusher_can_sign: true}``. Only the base
    branch's does count."""
    c3 = commit(pr, "relax", {"quantgate.yaml": "signoff: {pusher_can_sign: true}\n"})
    head(pr, github, c3)
    for sha in (pr["c1"], c3):
        github.pull_commit(12, sha, "ml-eng")
    github.review(12, "ml-eng", "APPROVED", c3)
    github.review(12, "product-lead", "APPROVED", c3)
    code, out = signoff(capsys, "--no-record")
    assert code == 1 and "@ml-eng pushed commit" in out, out
    on_base(pr, github, {"quantgate.yaml": "signoff: {pusher_can_sign: true}\n"})
    code, out = signoff(capsys)
    assert code == 0, out
