"""compiler.clients.git on real repositories: the token travels only in the environment of the
calls that reach the remote (never argv, .git/config or a message), and every commit is the bot's."""

from __future__ import annotations

import base64

import pytest

from compiler.clients.git import BOT_EMAIL, BOT_NAME, Git, GitAuth, GitError

from .conftest import git

TOKEN = "ghs_clienttoken_0123456789"


def test_auth_is_an_extraheader_in_the_environment_only():
    auth = GitAuth(TOKEN, "https://github.example.com/")
    env = auth.env({"GIT_CONFIG_COUNT": "2"})
    assert env["GIT_CONFIG_COUNT"] == "3"  # added to what the environment already configures
    assert env["GIT_CONFIG_KEY_2"] == "http.https://github.example.com/.extraheader"
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert env["GIT_CONFIG_VALUE_2"] == f"AUTHORIZATION: basic {basic}"
    assert TOKEN not in repr(auth) and GitAuth().env({}) == {}
    assert GitAuth.from_env({"GITHUB_TOKEN": TOKEN}).server_url == "https://github.com"


def test_commit_of_explicit_paths_as_the_bot(demo_repo):
    repo = Git.open(demo_repo.work / "manifests")  # discovered from a folder inside
    assert repo.root.resolve() == demo_repo.work.resolve()
    demo_repo.write("manifests/minilm-stsb.lock.yaml", "schema_version: 1\n")
    demo_repo.write("README.md", "staged, not ours\n")
    git(demo_repo.work, "add", "README.md")
    sha = repo.commit_paths(["manifests/minilm-stsb.lock.yaml"], "quantgate: lock")
    assert git(demo_repo.work, "log", "-1", "--format=%H|%an <%ae>", sha) == f"{sha}|{BOT_NAME} <{BOT_EMAIL}>"
    assert git(demo_repo.work, "diff", "--cached", "--name-only") == "README.md"


def test_push_with_token_leaves_no_trace_and_errors_are_redacted(demo_repo):
    repo = Git(demo_repo.work, GitAuth(TOKEN, "https://127.0.0.1:9"))
    demo_repo.write("manifests/minilm-stsb.lock.yaml", "schema_version: 1\n")
    repo.commit_paths(["manifests/minilm-stsb.lock.yaml"], "quantgate: lock")
    assert repo.push_with_retry("origin", "quantize", attempts=1) == 1
    assert TOKEN not in (demo_repo.work / ".git" / "config").read_text()
    git(demo_repo.work, "remote", "set-url", "origin", f"https://x-access-token:{TOKEN}@127.0.0.1:9/acme/models.git")
    with pytest.raises(GitError) as caught:
        repo.push("origin", "quantize")
    assert TOKEN not in str(caught.value) and caught.value.exit_code == 4


def test_worktree_leaves_the_checkout_alone(demo_repo):
    repo = Git.open(demo_repo.work)
    head = repo.head()
    with repo.worktree("HEAD") as work:
        (work.root / "manifests" / "minilm-stsb.serving.yaml").write_text("active: full-precision\n")
        work.commit_paths(["manifests/minilm-stsb.serving.yaml"], "rollback")
        assert work.head() != head
    assert repo.head() == head and git(demo_repo.work, "worktree", "list").count("\n") == 0


def test_not_a_repository_is_a_git_error(tmp_path):
    with pytest.raises(GitError):
        Git.open(tmp_path)
