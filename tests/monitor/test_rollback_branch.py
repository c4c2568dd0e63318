"""Rollback on a branch pushed to a real bare remote, with the pull request opened through PyGithub
against a loopback server answering GitHub's REST shapes (built from the fixtures vendored in tests/fixtures/github)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from werkzeug import Request, Response

from compiler.cli import main

from .conftest import BREACH, git

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"  # vendored, see its SOURCES.md
REPOSITORY = "acme/models"
BRANCH = "quantgate/rollback-demo"


class LoopbackPulls:
    """GET /repos/{r}, GET and POST /repos/{r}/pulls with real payload shapes."""

    def __init__(self, server):
        self.base = server.url_for("").rstrip("/")
        self.created: list[dict] = []
        self.requests: list[tuple[str, str]] = []
        server.expect_request("/repos/" + REPOSITORY).respond_with_handler(self._repo)
        server.expect_request("/repos/" + REPOSITORY + "/pulls").respond_with_handler(self._pulls)

    def _rebase(self, value) -> dict:
        text = json.dumps(value).replace("https://api.github.com", self.base)
        return json.loads(text.replace("Codertocat/Hello-World", REPOSITORY).replace("octocat/Hello-World", REPOSITORY))

    def _repo(self, request: Request) -> Response:
        self.requests.append((request.method, request.path))
        payload = json.loads((FIXTURES / "octokit-webhooks/payload-examples/pull_request/opened.payload.json").read_text())
        repo = self._rebase(payload["repository"])
        repo["full_name"], repo["url"] = REPOSITORY, f"{self.base}/repos/{REPOSITORY}"
        return Response(json.dumps(repo), content_type="application/json")

    def _pulls(self, request: Request) -> Response:
        self.requests.append((request.method, request.full_path))
        if request.method == "GET":
            head = request.args.get("head", "")
            found = [p for p in self.created if f"acme:{p['head']['ref']}" == head]
            return Response(json.dumps(found), content_type="application/json")
        body = request.get_json()
        assert request.headers["Authorization"] == "token ghs_monitortoken0123"
        pull = self._rebase(json.loads((FIXTURES / "rest-api-openapi/examples/pulls__get.200.default.json").read_text()))
        number = 100 + len(self.created)
        pull.update(number=number, title=body["title"], body=body["body"],
                    html_url=f"https://github.com/{REPOSITORY}/pull/{number}")
        pull["head"]["ref"], pull["base"]["ref"] = body["head"], body["base"]
        self.created.append(pull)
        return Response(json.dumps(pull), status=201, content_type="application/json")


@pytest.fixture
def github(httpserver, monkeypatch) -> LoopbackPulls:
    pulls = LoopbackPulls(httpserver)
    monkeypatch.setenv("GITHUB_API_URL", pulls.base)
    monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_monitortoken0123")
    monkeypatch.delenv("GITHUB_SERVER_URL", raising=False)  # the bare remote is a path, not GitHub
    monkeypatch.delenv("GITHUB_REF_NAME", raising=False)
    return pulls


def test_breach_commits_on_a_branch_pushes_and_opens_one_pull_request(deployed, tmp_path, github, capsys):
    snapshot = tmp_path / "metrics.json"
    snapshot.write_text(json.dumps({"quality_floor": BREACH["quality_floor"]}))
    remote = tmp_path / "remote.git"
    head = git(deployed, "rev-parse", "HEAD")
    manifest = str(deployed / "manifests" / "demo.yaml")

    assert main(["monitor", manifest, "--snapshot", str(snapshot), "--branch", "--pr"]) == 1
    out = capsys.readouterr().out
    assert f"pull request: https://github.com/{REPOSITORY}/pull/100" in out
    # The checkout is untouched; the remote branch holds one commit on top of main: the flag.
    assert git(deployed, "rev-parse", "HEAD") == head and git(deployed, "status", "--porcelain") == ""
    assert git(remote, "rev-list", "--count", f"main..{BRANCH}") == "1"
    assert git(remote, "show", "--name-only", "--format=", BRANCH).splitlines() == ["manifests/demo.serving.yaml"]
    assert "active: full-precision" in git(remote, "show", f"{BRANCH}:manifests/demo.serving.yaml")
    (pull,) = github.created
    assert pull["head"]["ref"] == BRANCH and pull["base"]["ref"] == "main"
    assert "quality_floor" in pull["title"] and "0.71" in pull["title"] and "0.78" in pull["title"]

    # A second breach report: the branch already rolls back, so no commit, no second pull request.
    tip = git(remote, "rev-parse", BRANCH)
    assert main(["monitor", manifest, "--snapshot", str(snapshot), "--branch", "--pr"]) == 1
    assert git(remote, "rev-parse", BRANCH) == tip
    assert len(github.created) == 1
    assert "ghs_monitortoken0123" not in capsys.readouterr().out


def test_failed_pull_request_is_a_clear_conflict(deployed, tmp_path, httpserver, monkeypatch, capsys):
    # bad credentials are refused on every endpoint (the client reads the repository lazily)
    httpserver.expect_request(re.compile("^/repos/" + REPOSITORY + "(/.*)?$")).respond_with_json({"message": "Bad credentials"}, status=401)
    monkeypatch.setenv("GITHUB_API_URL", httpserver.url_for("").rstrip("/"))
    monkeypatch.setenv("GITHUB_REPOSITORY", REPOSITORY)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_secretvalue999")
    snapshot = tmp_path / "metrics.json"
    snapshot.write_text(json.dumps({"latency_p95_ms": 500}))
    assert main(["monitor", str(deployed / "manifests" / "demo.yaml"), "--snapshot", str(snapshot), "--pr"]) == 4
    err = capsys.readouterr().err
    assert "could not open the pull request: HTTP 401: Bad credentials" in err
    assert "ghs_secretvalue999" not in err


def test_after_the_rollback_was_merged_and_reverted_a_new_breach_rolls_back_again(deployed, tmp_path, monkeypatch):
    for key in ("GITHUB_TOKEN", "GITHUB_SERVER_URL", "GITHUB_REF_NAME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(deployed)  # no MANIFEST: every deployed manifest
    remote = tmp_path / "remote.git"
    snapshot = tmp_path / "metrics.json"
    snapshot.write_text(json.dumps({"error_rate_ceiling": 0.5}))
    assert main(["monitor", "--snapshot", str(snapshot), "--branch"]) == 1
    first = git(remote, "rev-parse", BRANCH)
    # The rollback pull request is merged, then a person restores the quantized model on main.
    git(deployed, "pull", "--quiet", "--ff-only", "origin", BRANCH)
    serving = deployed / "manifests" / "demo.serving.yaml"
    serving.write_text(serving.read_text().replace("active: full-precision", "active: quantized"))
    git(deployed, "commit", "--quiet", "-am", "serve the quantized model again")
    git(deployed, "push", "--quiet", "origin", "HEAD:main")
    assert main(["monitor", "--snapshot", str(snapshot), "--branch"]) == 1
    second = git(remote, "rev-parse", BRANCH)
    assert second != first
    assert git(remote, "rev-list", "--count", f"main..{BRANCH}") == "1"  # one new commit on top of main
    assert git(remote, "merge-base", "--is-ancestor", first, second) == ""  # pushed without force
