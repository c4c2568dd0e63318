"""compiler.clients.github against the loopback GitHub: reviews normalised, comment upserted, status set,
team members resolved, the token never in an error message."""

from __future__ import annotations

import pytest

from compiler.clients.github import GitHub, context_from_env, review_from_event, review_from_json
from compiler.errors import InvalidInput, RunnerFailed

from .github_server import FIXTURES, WEBHOOKS, load

HEAD = "a" * 40
BASE = "b" * 40


def client(github, **env) -> GitHub:
    return GitHub(context_from_env({**github.env(), **env}), retry=None)


def test_pull_request_and_reviews_from_rest_shapes(github):
    github.open_pull(7, "alice", HEAD, BASE)
    github.review(7, "Bob", "APPROVED", HEAD)
    github.review(7, "carol", "CHANGES_REQUESTED", BASE)
    gh = client(github)
    pr = gh.pull_request(7)
    assert (pr.author, pr.head_sha, pr.base_sha) == ("alice", HEAD, BASE)
    reviews = gh.reviews(7)
    assert [(r.login, r.display_login, r.state, r.commit_id) for r in reviews] == [
        ("bob", "Bob", "APPROVED", HEAD),
        ("carol", "carol", "CHANGES_REQUESTED", BASE),
    ]


def test_reviews_follow_pagination(github):
    github.open_pull(8, "alice", HEAD, BASE)
    for i in range(45):
        github.review(8, f"user{i}", "COMMENTED", HEAD)
    assert len(client(github).reviews(8)) == 45
    assert sum(1 for m, p, _ in github.requests if p.endswith("/pulls/8/reviews")) >= 2


@pytest.mark.parametrize(
    "path, state, login",
    [
        (WEBHOOKS / "pull_request_review" / "submitted.payload.json", "COMMENTED", "codertocat"),
        (WEBHOOKS / "pull_request_review" / "dismissed.payload.json", "DISMISSED", "codertocat"),
        (FIXTURES / "google-github-owners-bot/test/fixtures/actions/pull_request_review.35.submitted.json", "APPROVED", "erwinmombay"),
    ],
)
def test_webhook_review_states_are_normalised(tmp_path, path, state, login):
    event = tmp_path / "event.json"
    event.write_text(path.read_text())
    review = review_from_event(event)
    assert (review.state, review.login) == (state, login)


def test_old_payload_missing_fields_parses_leniently():
    wrapped = load(FIXTURES / "angular-github-robot/test/fixtures/pull_request_review.submitted.json")["payload"]
    review = dict(wrapped["review"])
    for key in ("commit_id", "submitted_at", "author_association", "node_id"):
        review.pop(key, None)
    parsed = review_from_json(review)
    assert parsed.state == "CHANGES_REQUESTED" and parsed.commit_id is None
    assert review_from_json({**review, "user": None}) is None  # a deleted ("ghost") user


def test_comment_created_once_then_updated_in_place(github):
    github.open_pull(3, "alice", HEAD, BASE)
    github.add_comment(3, "mallory", "<!-- quantgate:demo -->\nI am not the bot")
    gh = client(github)
    assert gh.upsert_comment(3, "<!-- quantgate:demo -->", "<!-- quantgate:demo -->\nv1")[0] == "created"
    outcome, comment_id = gh.upsert_comment(3, "<!-- quantgate:demo -->", "<!-- quantgate:demo -->\nv2")
    assert outcome == "updated"
    assert gh.upsert_comment(3, "<!-- quantgate:demo -->", "<!-- quantgate:demo -->\nv2") == ("unchanged", comment_id)
    bodies = [(c["user"]["login"], c["body"]) for c in github.comments[3]]
    assert bodies == [("mallory", "<!-- quantgate:demo -->\nI am not the bot"), ("github-actions[bot]", "<!-- quantgate:demo -->\nv2")]
    assert sum(1 for m, p, _ in github.requests if m == "POST") == 1


def test_status_and_team_members(github):
    gh = client(github)
    gh.set_status(HEAD, "pending", "1 of 3 sign-offs " + "x" * 300)
    assert github.statuses[-1]["sha"] == HEAD
    assert github.statuses[-1]["context"] == "quantgate/signoff"
    assert len(github.statuses[-1]["description"]) == 140
    github.team("acme", "ml-oncall", ["Dana", "erin"])
    assert gh.team_members("acme", "ml-oncall") == frozenset({"dana", "erin"})


def test_errors_never_carry_the_token(github):
    token = "ghs_secretvalue_should_not_leak_42"
    gh = GitHub(context_from_env({**github.env(), "GITHUB_TOKEN": token}), retry=None)
    with pytest.raises(RunnerFailed) as caught:
        gh.pull_request(1)
    assert "401" in str(caught.value) and token not in str(caught.value)


def test_missing_environment_is_invalid_input():
    with pytest.raises(InvalidInput) as caught:
        context_from_env({"GITHUB_TOKEN": "x"})
    assert "$GITHUB_REPOSITORY" in caught.value.render()


def test_teams_token_is_used_for_team_lookups_only(github):
    github.team("acme", "product", ["dana"])
    github.teams_token = "ghp_org_reader_token_0000"
    github.open_pull(4, "alice", HEAD, BASE)
    with pytest.raises(RunnerFailed) as caught:
        client(github).team_members("acme", "product")  # the workflow token cannot read teams
    assert "401" in str(caught.value)
    gh = client(github, QUANTGATE_TEAMS_TOKEN="ghp_org_reader_token_0000")
    assert gh.team_members("acme", "product") == frozenset({"dana"})
    assert gh.pull_request(4).author == "alice"  # everything else still uses GITHUB_TOKEN
