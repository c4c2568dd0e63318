"""The pure parts of issue 12's defences: the lock's signoff block checked for ``verify``
(``signoff_problems``), the base branch's allow-list (``owner_refusals``), the allow-list ``init``
proposes (``allow_list_from``), the new quantgate.yaml keys, and the lock's results at a commit."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from compiler.clients.git import Git
from compiler.clients.github import PullCommit
from compiler.errors import InvalidInput
from compiler.gitops import policy
from compiler.gitops.signoff import results_at
from compiler.playbook.lockfile import dump_lock, read_lock, results_sha256
from compiler.playbook.signers import signoff_problems

from .conftest import demo_manifest_text, git

REAL_LOCK = Path(__file__).parent / "data" / "minilm-stsb.lock.yaml"
H = "c" * 40


@pytest.fixture(scope="module")
def lock() -> dict:
    return read_lock(REAL_LOCK).data()


def signed(lock: dict, **block) -> dict:
    lock = copy.deepcopy(lock)
    lock["signoff"] = {"status": "complete", "head_sha": H, "missing": [], "records": [
        {"role": "ml_engineer", "login": "ml-eng", "review_id": 1, "commit_sha": H},
        {"role": "product_owner", "login": "product-lead", "review_id": 2, "commit_sha": H}], **block}
    return lock


# ------------------------------------------------------------------------ signoff_problems (verify)


def test_a_hand_written_complete_without_records_is_refused(lock):
    bare = signed(lock, records=[])
    problems = signoff_problems(bare)
    assert "signoff: status complete but no record signs ml_engineer" in problems
    assert "signoff: status complete but no record signs product_owner" in problems


def test_a_consistent_block_passes(lock):
    assert signoff_problems(signed(lock)) == []
    assert signoff_problems(lock) == []  # quantgate run's pending block
    base = copy.deepcopy(lock)
    for play in ("ptq", "gate", "lock"):
        base["plays"][play]["cache_key"] = "0" * 64
    assert signoff_problems(signed(lock), base) == []  # exactly ml_engineer + product_owner


def test_complete_needs_head_sha_no_missing_and_reviews(lock):
    assert any("without head_sha" in p for p in signoff_problems(signed(lock, head_sha=None)))
    assert any("while missing" in p for p in signoff_problems(signed(lock, missing=["product_owner"])))
    no_review = signed(lock)
    no_review["signoff"]["records"][0]["review_id"] = None
    assert any("names no review" in p for p in signoff_problems(no_review))


def test_complete_must_cover_roles_the_base_makes_required(lock):
    # against no base lock every play is new: the envelope needs its platform lead
    assert signoff_problems(signed(lock), {}) == ["signoff: status complete but no record signs platform_lead"]


def test_records_only_for_required_roles_once_each_by_distinct_people(lock):
    extra = signed(lock)
    extra["signoff"]["records"].append({"role": "engineering_manager", "login": "em", "review_id": 3, "commit_sha": H})
    assert any("engineering_manager is not a role this lock needs" in p for p in signoff_problems(extra))
    twice = signed(lock)
    twice["signoff"]["records"].append(dict(twice["signoff"]["records"][0]))
    assert any("ml_engineer is signed more than once" in p for p in signoff_problems(twice))
    same = signed(lock)
    same["signoff"]["records"][1]["login"] = "ml-eng"
    assert any("distinct people" in p for p in signoff_problems(same))
    assert not any("distinct" in p for p in signoff_problems(same, distinct_signers=False))


def test_records_must_name_owners_when_the_owners_are_logins(lock):
    owners = {"ml_engineer": ["@ml-eng"], "product_owner": ["@acme/product"]}
    assert signoff_problems(signed(lock), owners=owners) == []  # a team's members are not known offline
    forged = signed(lock)
    forged["signoff"]["records"][0]["login"] = "mallory"
    assert signoff_problems(forged, owners=owners) == ["signoff.records: @mallory is not an owner of ml_engineer (@ml-eng)"]


# ------------------------------------------------------------------------ base-branch policy


def no_teams(org, slug):
    raise AssertionError("no team lookup expected")


def test_allow_list_admits_listed_logins_and_teams_and_members_of_listed_teams():
    allow = {"ml_engineer": ["@ML-Eng", "@acme/ml"], "product_owner": ["@acme/product"]}
    members = {("acme", "ml"): frozenset({"alice"})}
    refusals, notes = policy.owner_refusals(
        {"ml_engineer": ["@ml-eng", "@alice", "@acme/ml"], "product_owner": ["@acme/product"]}, allow,
        lambda org, slug: members[(org, slug)])
    assert refusals == [] and notes == []


def test_allow_list_refuses_others_naming_the_role_and_the_policy():
    refusals, _ = policy.owner_refusals({"ml_engineer": ["@mallory"], "on_call": ["@pager"]},
                                        {"ml_engineer": ["@ml-eng"]}, lambda o, s: frozenset())
    assert refusals == [
        "owners.ml_engineer: @mallory is not allowed by quantgate.yaml owners: ml_engineer on the base branch (allowed: @ml-eng)",
        "owners.on_call: @pager is not allowed by quantgate.yaml owners: on_call on the base branch "
        "(allowed: nobody: the role is not in the allow-list)",
    ]


def test_an_unreadable_team_vouches_for_nobody():
    def forbidden(org, slug):
        raise RuntimeError("HTTP 403")

    refusals, notes = policy.owner_refusals({"ml_engineer": ["@alice"]}, {"ml_engineer": ["@acme/ml"]}, forbidden)
    assert len(refusals) == 1 and "could not resolve @acme/ml" in notes[0]


def test_owners_differ_ignores_case_and_order():
    base = {"ml_engineer": ["@a", "@B"], "on_call": ["@acme/x"]}
    assert policy.owners_differ(base, {"ml_engineer": ["@b", "@A"], "on_call": ["@acme/x"]}) == []
    assert policy.owners_differ(base, {"ml_engineer": ["@a"], "on_call": ["@acme/x"]}) == ["ml_engineer"]


def test_repo_config_keys(tmp_path):
    config = policy.parse_repo_config(
        "owners: {ml_engineer: ['@a', '@org/t']}\nsignoff: {pusher_can_sign: true}\npickle_allowed: [./models/legacy-x]\n"
        "artifacts: {store: file:///tmp/x}\n", "quantgate.yaml")
    assert config.owners == {"ml_engineer": ["@a", "@org/t"]} and config.signoff.pusher_can_sign
    assert config.pickle_allowed == ["./models/legacy-x"] and config.artifacts.store == "file:///tmp/x"
    defaults = policy.parse_repo_config("", "quantgate.yaml")
    assert defaults.owners is None and defaults.signoff.pusher_can_sign is False and defaults.pickle_allowed == []
    with pytest.raises(InvalidInput) as bad:
        policy.parse_repo_config("owners: {ml_engineer: [mallory]}\n", "quantgate.yaml")
    assert "not a GitHub login" in str(bad.value.problems[0].message)


def test_allow_list_from_manifests_and_codeowners(tmp_path):
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "a.yaml").write_text(demo_manifest_text())
    (tmp_path / "manifests" / "b.yaml").write_text(
        demo_manifest_text(**{"name: minilm-stsb": "name: other", 'ml_engineer: ["@ml-eng"]': 'ml_engineer: ["@ML-Eng", "@bob"]'}))
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "CODEOWNERS").write_text(
        "/docs/ @writers\n/manifests/ @acme/ml-leads\n"
        "# BEGIN quantgate (managed)\n/manifests/a.* @generated\n# END quantgate\n")
    allow = policy.allow_list_from(tmp_path)
    assert allow["ml_engineer"] == ["@ml-eng", "@bob", "@acme/ml-leads"]
    assert allow["product_owner"] == ["@product-lead", "@acme/ml-leads"]
    assert not any("@writers" in v or "@generated" in v for v in allow.values())
    # what it returns is a valid quantgate.yaml owners: section
    assert policy.parse_repo_config(f"owners: {allow}\n", "quantgate.yaml").owners == allow


# ------------------------------------------------------------------------ git: results and pushers


def test_results_at_a_commit_are_recomputed_from_its_lock(demo_repo):
    repo = Git.open(demo_repo.work)
    no_lock = git(demo_repo.work, "rev-parse", "HEAD")
    data = read_lock(REAL_LOCK).data()
    # the recorded hash is not what is compared: the content is
    demo_repo.write("manifests/minilm-stsb.lock.yaml", dump_lock(data).replace(results_sha256(data), "ab" * 32))
    locked = demo_repo.commit("lock")
    assert results_at(repo, no_lock, "manifests/minilm-stsb.lock.yaml") is None
    assert results_at(repo, "f" * 40, "manifests/minilm-stsb.lock.yaml") is None
    assert results_at(repo, locked, "manifests/minilm-stsb.lock.yaml") == results_sha256(data)


def test_pushers_are_the_people_on_commits_that_change_what_is_signed(demo_repo):
    repo = Git.open(demo_repo.work)
    demo_repo.write("data/stsb/sts-test.tsv", "changed\n")
    data = demo_repo.commit("data")
    demo_repo.write("README.md", "typo\n")
    readme = demo_repo.commit("readme")
    watched = policy.watched_paths("manifests/minilm-stsb.yaml", ["data/stsb/sts-test.tsv"])
    found = policy.pushers(repo, [PullCommit(data, "alice", "web-flow"), PullCommit(readme, "bob", "bob"),
                                  PullCommit("e" * 40, "carol", None)], watched)
    assert found == {"alice": data[:12], "web-flow": data[:12], "carol": "e" * 12}  # unknown commit: counted


def test_policy_is_never_read_from_a_base_commit_that_is_not_here(demo_repo):
    with pytest.raises(InvalidInput, match="fetch-depth: 0"):
        policy.policy_at(Git.open(demo_repo.work), "d" * 40)
