"""Each sign-off rule (compiler.gitops.signoff) with a test that fails if the rule is removed. Staleness is
judged on a real git repository; reviews are parsed from the REST fixture shape."""

from __future__ import annotations

import pytest

from compiler.clients.github import review_from_json
from compiler.gitops.changed import touches_only_quantgate_files
from compiler.gitops.signoff import decide
from compiler.playbook.signers import plays_that_ran
from compiler.playbook.signers import signers as required_roles

from .github_server import OPENAPI, load

OWNERS = {
    "ml_engineer": ["@ml-eng"],
    "platform_lead": ["@platform-eng"],
    "product_owner": ["@product-lead"],
    "engineering_manager": ["@eng-manager"],
    "on_call": ["@acme/ml-oncall"],
}
PLAYS = ["baseline", "ptq", "gate", "lock"]  # needs ml_engineer + product_owner


def review(login: str, state: str, commit: str | None, n: int):
    item = load(OPENAPI / "pulls__list-reviews.200.default.json")[0]
    item.update(id=1000 + n, state=state, commit_id=commit, submitted_at=f"2026-11-26T09:{n:02d}:00Z")
    item["user"] = {**item["user"], "login": login}
    return review_from_json(item)


def no_teams(org: str, slug: str) -> frozenset[str]:
    raise AssertionError(f"no team lookup expected (@{org}/{slug})")


def run_decide(reviews, *, head="h" * 40, owners=OWNERS, plays=PLAYS, author="someone", fresh=lambda c: True,
               same_results=lambda c: True, teams=no_teams, distinct=True, **rules):
    return decide(owners=owners, plays=plays, reviews=reviews, author=author, head_sha=head, is_fresh=fresh,
                  same_results=same_results, team_members=teams, distinct_signers=distinct, **rules)


H = "h" * 40


def test_both_owners_approving_completes():
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2)])
    assert d.complete
    assert [(r.role, r.login, r.review_id, r.commit_sha) for r in d.records] == [
        ("ml_engineer", "ml-eng", 1001, H),
        ("product_owner", "product-lead", 1002, H),
    ]


def test_only_the_latest_review_per_reviewer_counts():
    later_block = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2),
                              review("product-lead", "CHANGES_REQUESTED", H, 3)])
    assert not later_block.complete and later_block.blocked_by == (("product-lead", "product_owner"),)
    later_approve = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "CHANGES_REQUESTED", H, 2),
                                review("product-lead", "APPROVED", H, 3)])
    assert later_approve.complete and later_approve.records[1].review_id == 1003


def test_changes_requested_by_an_owner_blocks_even_when_the_role_is_covered():
    owners = {**OWNERS, "product_owner": ["@product-lead", "@second-po"]}
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2),
                    review("second-po", "CHANGES_REQUESTED", H, 3)], owners=owners)
    assert not d.missing and d.blocked_by == (("second-po", "product_owner"),) and not d.complete


def test_changes_requested_by_a_non_owner_does_not_block():
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2),
                    review("bystander", "CHANGES_REQUESTED", H, 3)])
    assert d.complete


def test_commented_does_not_count_and_does_not_revoke():
    only_comment = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "COMMENTED", H, 2)])
    assert only_comment.missing == ("product_owner",)
    approve_then_comment = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2),
                                       review("product-lead", "COMMENTED", H, 3)])
    assert approve_then_comment.complete


def test_dismissed_does_not_count():
    # a dismissed approval shows in the REST list with state DISMISSED
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "DISMISSED", H, 2)])
    assert d.missing == ("product_owner",)
    # and a dismissal after an approval leaves nothing
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2),
                    review("product-lead", "DISMISSED", H, 3)])
    assert d.missing == ("product_owner",)


def test_pending_review_does_not_count():
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "PENDING", H, 2)])
    assert d.missing == ("product_owner",)


def test_the_author_cannot_sign_for_any_role():
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2)], author="ML-Eng")
    assert d.missing == ("ml_engineer",)
    assert any("author" in note for note in d.notes)


def test_team_owners_resolve_through_membership():
    owners = {**OWNERS, "product_owner": ["@acme/product"]}
    teams = {("acme", "product"): frozenset({"dana"})}
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("Dana", "APPROVED", H, 2)], owners=owners,
                   teams=lambda org, slug: teams[(org, slug)])
    assert d.complete and d.records[1].login == "Dana"
    outsider = run_decide([review("ml-eng", "APPROVED", H, 1), review("erin", "APPROVED", H, 2)], owners=owners,
                          teams=lambda org, slug: teams[(org, slug)])
    assert outsider.missing == ("product_owner",)


def test_unresolvable_team_signs_nothing():
    owners = {**OWNERS, "product_owner": ["@acme/product"]}

    def forbidden(org, slug):
        raise RuntimeError("HTTP 403 Resource not accessible by integration")

    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("dana", "APPROVED", H, 2)], owners=owners, teams=forbidden)
    assert d.missing == ("product_owner",) and any("could not resolve @acme/product" in n for n in d.notes)


def test_one_person_with_two_roles_signs_one_unless_allowed():
    owners = {**OWNERS, "product_owner": ["@ml-eng"]}
    distinct = run_decide([review("ml-eng", "APPROVED", H, 1)], owners=owners)
    assert len(distinct.records) == 1 and len(distinct.missing) == 1
    assert any("distinct" in note for note in distinct.notes)
    shared = run_decide([review("ml-eng", "APPROVED", H, 1)], owners=owners, distinct=False)
    assert shared.complete and {r.role for r in shared.records} == {"ml_engineer", "product_owner"}


def test_distinct_assignment_is_a_matching_not_first_come():
    # alice may sign either role, bob only ml_engineer: a greedy pass in role order would give
    # ml_engineer to alice and leave product_owner empty; the matching finds bob+alice.
    owners = {**OWNERS, "ml_engineer": ["@alice", "@bob"], "product_owner": ["@alice"]}
    d = run_decide([review("alice", "APPROVED", H, 1), review("bob", "APPROVED", H, 2)], owners=owners)
    assert d.complete
    assert {(r.role, r.login) for r in d.records} == {("ml_engineer", "bob"), ("product_owner", "alice")}


@pytest.fixture
def history(demo_repo):
    """c1: the PR change; c2: a lock + report commit on top; c3: a data change on top."""
    repo = demo_repo.work
    demo_repo.write("manifests/minilm-stsb.yaml", demo_repo.work.joinpath("manifests/minilm-stsb.yaml").read_text() + "# c1\n")
    c1 = demo_repo.commit("change")
    demo_repo.write("manifests/minilm-stsb.lock.yaml", "schema_version: 1\n")
    demo_repo.write("reports/minilm-stsb/report.md", "# report\n")
    c2 = demo_repo.commit("lock")
    demo_repo.write("data/stsb/sts-test.tsv", "a\tb\tc\td\t1.0\tx\ty\n")
    c3 = demo_repo.commit("data")
    return repo, c1, c2, c3


def test_approval_stays_fresh_across_lock_only_commits(history):
    repo, c1, c2, _ = history
    d = run_decide([review("ml-eng", "APPROVED", c1, 1), review("product-lead", "APPROVED", c1, 2)], head=c2,
                   fresh=lambda c: touches_only_quantgate_files(repo, c, c2))
    assert d.complete


def test_approval_goes_stale_when_data_changes_after_it(history):
    repo, c1, c2, c3 = history
    d = run_decide([review("ml-eng", "APPROVED", c3, 1), review("product-lead", "APPROVED", c2, 2)], head=c3,
                   fresh=lambda c: touches_only_quantgate_files(repo, c, c3))
    assert d.missing == ("product_owner",) and any("stale" in n for n in d.notes)


def test_unknown_or_missing_commit_is_stale(history):
    repo, _, _, c3 = history
    fresh = lambda c: touches_only_quantgate_files(repo, c, c3)  # noqa: E731
    assert not fresh("0" * 40)
    d = run_decide([review("ml-eng", "APPROVED", None, 1), review("product-lead", "APPROVED", c3, 2)], head=c3, fresh=fresh)
    assert d.missing == ("ml_engineer",)


def test_plays_that_ran_decide_the_roles():
    lock = {"plays": {"baseline": {"status": "cached"}, "envelope": {"status": "passed"}, "ptq": {"status": "passed"},
                      "gate": {"status": "passed"}, "mixed_precision": {"status": "skipped"}, "qat": {"status": "passed"},
                      "lock": {"status": "passed"}, "monitor": {"status": "passed"}}}
    plays = plays_that_ran(lock)
    assert plays == ["envelope", "ptq", "gate", "qat", "lock"]
    assert list(required_roles(plays)) == ["ml_engineer", "platform_lead", "product_owner", "engineering_manager"]
    # the typed lock (compiler.playbook.lockmodel.Lock) holds plays as a mapping only
    assert plays_that_ran(None) == ["lock"]


def test_only_plays_that_changed_against_the_base_lock_need_signing():
    base = {"plays": {"baseline": {"status": "passed", "cache_key": "b1"}, "envelope": {"status": "passed", "cache_key": "e1"},
                      "ptq": {"status": "passed", "cache_key": "p1"}, "gate": {"status": "passed", "cache_key": "g1"},
                      "lock": {"status": "passed", "cache_key": "l1"}}}
    head = {"plays": {**base["plays"], "gate": {"status": "passed", "cache_key": "g2"}, "lock": {"status": "passed", "cache_key": "l2"}}}
    assert plays_that_ran(head, base) == ["gate", "lock"]
    assert "platform_lead" not in required_roles(plays_that_ran(head, base))
    moved = {"plays": {**head["plays"], "envelope": {"status": "passed", "cache_key": "e2"}}}
    assert "platform_lead" in required_roles(plays_that_ran(moved, base))  # envelope change: platform lead
    assert plays_that_ran(head, None) == ["baseline", "envelope", "ptq", "gate", "lock"]  # no base lock: all


# ------------------------------------------------------------------ issue 12: trust (pure rules)


def test_an_approval_counts_only_for_the_numbers_at_its_commit():
    before = "b" * 40
    d = run_decide([review("ml-eng", "APPROVED", before, 1), review("product-lead", "APPROVED", H, 2)],
                   same_results=lambda c: c != before)
    assert d.missing == ("ml_engineer",) and any("other numbers" in n for n in d.notes)


def test_an_owner_who_pushed_cannot_sign():
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2)],
                   pushers={"ML-Eng": "abc123"})
    assert d.missing == ("ml_engineer",) and any("pushed commit abc123" in n for n in d.notes)


def test_a_change_of_owners_needs_an_owner_of_that_role_outside_the_matching():
    owners = {**OWNERS, "on_call": ["@olive"]}
    without = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2)],
                         owners=owners, owners_changed=["on_call"])
    assert without.missing == ("on_call",) and without.required["on_call"] == ("owners",)
    # the on_call owner may also be a play signer: no distinct-signers conflict for an owners change
    owners = {**OWNERS, "on_call": ["@ml-eng"]}
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2)],
                   owners=owners, owners_changed=["on_call"])
    assert d.complete and [r.role for r in d.owner_records] == ["on_call"]
    assert [r["role"] for r in d.as_lock()["records"]] == ["ml_engineer", "product_owner"]


def test_a_refusal_fails_whatever_the_reviews_say():
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2)],
                   refused=["owners.ml_engineer: @mallory is not allowed"])
    assert not d.complete and not d.missing and d.summary().startswith("refused: owners.ml_engineer")
    assert d.as_lock()["status"] == "pending"


def test_unvouched_owners_are_said_plainly():
    d = run_decide([review("ml-eng", "APPROVED", H, 1), review("product-lead", "APPROVED", H, 2)], unvouched=True)
    assert d.complete and "not vouched for by any policy" in d.summary()
    assert any("no policy vouched" in n for n in d.notes)
