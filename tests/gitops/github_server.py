"""A loopback GitHub for the GitOps tests: pytest-httpserver answering the REST calls quantgate makes,
with bodies built from the real fixtures vendored in tests/fixtures/github (GitHub's own OpenAPI examples,
recorded webhook payloads), only ids, logins, states and shas adapted.

Shapes the fixtures do not carry (an issue comment, a created commit status) are derived from the
nearest real shape: a comment from a review (same user/body/html_url fields plus ``issue_url``), a
status from the recorded ``status`` webhook event (which carries the status's own fields).
"""

from __future__ import annotations

import copy
import json
import re
import zlib
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

#: vendored copies of the real payloads (tests/fixtures/github/SOURCES.md says where each came from)
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "github"
OPENAPI = FIXTURES / "rest-api-openapi" / "examples"
WEBHOOKS = FIXTURES / "octokit-webhooks" / "payload-examples"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _rebase_urls(value: Any, base: str) -> Any:
    """Point every api.github.com URL at the loopback server (PyGithub follows ``url`` fields)."""
    text = json.dumps(value).replace("https://api.github.com", base)
    return json.loads(text)


def user(login: str, template: dict | None = None) -> dict:
    base = copy.deepcopy(template or load(OPENAPI / "pulls__list-reviews.200.default.json")[0]["user"])
    old = base["login"]
    for key, value in list(base.items()):
        if isinstance(value, str):
            base[key] = value.replace(f"/{old}", f"/{login}")
    base["login"] = login
    base["id"] = zlib.crc32(login.encode()) % 10_000_000
    if login.endswith("[bot]"):
        base["type"] = "Bot"
    return base


class FakeGitHub:
    """State of one repository's pull requests, served over loopback HTTP. Every request is kept in
    ``requests`` as (method, path, json body) for assertions."""

    def __init__(self, httpserver, repository: str = "acme/models"):
        self.server = httpserver
        self.base = httpserver.url_for("").rstrip("/")
        self.repository = repository
        self.pulls: dict[int, dict] = {}
        self.reviews: dict[int, list[dict]] = {}
        self.comments: dict[int, list[dict]] = {}
        self.statuses: list[dict] = []
        self.commits: dict[int, list[dict]] = {}  # GET /pulls/{n}/commits
        self.teams: dict[tuple[str, str], list[str]] = {}
        self.forbidden_teams: set[tuple[str, str]] = set()
        self.teams_token: str | None = None  # when set, only this token may read team members
        self.requests: list[tuple[str, str, Any]] = []
        self._next_id = 9000
        httpserver.expect_request(re.compile(r"^/.*$")).respond_with_handler(self._dispatch)

    # state -----------------------------------------------------------------------------------
    def env(self, token: str = "ghs_loopbacktoken0123456789") -> dict[str, str]:
        return {"GITHUB_API_URL": self.base, "GITHUB_REPOSITORY": self.repository, "GITHUB_TOKEN": token}

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def open_pull(self, number: int, author: str, head_sha: str, base_sha: str, head_ref: str = "quantize") -> dict:
        pr = load(OPENAPI / "pulls__get.200.default.json")
        pr = _rebase_urls(json.loads(json.dumps(pr).replace("octocat/Hello-World", self.repository)), self.base)
        pr["number"] = number
        pr["user"] = user(author, pr["user"])
        pr["head"]["sha"], pr["head"]["ref"] = head_sha, head_ref
        pr["base"]["sha"] = base_sha
        pr["url"] = f"{self.base}/repos/{self.repository}/pulls/{number}"
        pr["issue_url"] = f"{self.base}/repos/{self.repository}/issues/{number}"
        self.pulls[number] = pr
        self.reviews.setdefault(number, [])
        self.comments.setdefault(number, [])
        return pr

    def push(self, number: int, head_sha: str) -> None:
        self.pulls[number]["head"]["sha"] = head_sha

    def review(self, number: int, login: str, state: str, commit_id: str | None, *, at: str | None = None,
               review_id: int | None = None) -> dict:
        """Add a review as the REST list returns it (state upper case)."""
        item = _rebase_urls(load(OPENAPI / "pulls__list-reviews.200.default.json")[0], self.base)
        item["id"] = review_id or self._id()
        item["user"] = user(login, item["user"])
        item["state"] = state.upper()
        item["commit_id"] = commit_id
        n = len(self.reviews[number])
        item["submitted_at"] = at or f"2026-11-26T10:{n:02d}:00Z"
        self.reviews[number].append(item)
        return item

    def pull_commit(self, number: int, sha: str, author: str | None, committer: str | None = None) -> dict:
        """Add a commit to the pull request's commit list as ``GET /pulls/{n}/commits`` returns it
        (``author``/``committer``: the GitHub logins the commit's emails map to; None: no account)."""
        item = _rebase_urls(load(OPENAPI / "pulls__list-commits.200.default.json")[0], self.base)
        item["sha"] = sha
        item["url"] = f"{self.base}/repos/{self.repository}/commits/{sha}"
        item["author"] = user(author, item["author"]) if author else None
        item["committer"] = user(committer or author, item["committer"]) if (committer or author) else None
        self.commits.setdefault(number, []).append(item)
        return item

    def dismiss(self, number: int, review_id: int) -> None:
        for item in self.reviews[number]:
            if item["id"] == review_id:
                item["state"] = "DISMISSED"

    def team(self, org: str, slug: str, logins: list[str]) -> None:
        self.teams[(org.lower(), slug.lower())] = logins

    def add_comment(self, number: int, login: str, body: str) -> dict:
        template = _rebase_urls(load(OPENAPI / "pulls__list-reviews.200.default.json")[0], self.base)
        comment_id = self._id()
        comment = {
            "id": comment_id,
            "node_id": template["node_id"],
            "url": f"{self.base}/repos/{self.repository}/issues/comments/{comment_id}",
            "html_url": f"https://github.com/{self.repository}/pull/{number}#issuecomment-{comment_id}",
            "issue_url": f"{self.base}/repos/{self.repository}/issues/{number}",
            "body": body,
            "user": user(login, template["user"]),
            "created_at": "2026-11-26T10:00:00Z",
            "updated_at": "2026-11-26T10:00:00Z",
            "author_association": "CONTRIBUTOR",
        }
        self.comments[number].append(comment)
        return comment

    # HTTP ------------------------------------------------------------------------------------
    def _json(self, data: Any, status: int = 200) -> Response:
        return Response(json.dumps(data), status=status, content_type="application/json")

    def _dispatch(self, request: Request) -> Response:
        body = request.get_json(silent=True) if request.data else None
        path = request.path
        self.requests.append((request.method, path, body))
        token = self.teams_token if self.teams_token and path.startswith("/orgs/") else self.env()["GITHUB_TOKEN"]
        if request.headers.get("Authorization", "") not in (f"token {token}", f"Bearer {token}"):
            return self._json({"message": "Bad credentials"}, 401)
        repo = f"/repos/{self.repository}"
        routes = [
            ("GET", rf"^{repo}$", lambda m: self._repository()),
            ("GET", rf"^{repo}/pulls/(\d+)$", lambda m: self.pulls[int(m[1])]),
            ("GET", rf"^{repo}/pulls/(\d+)/reviews$", lambda m: self._page(request, self.reviews[int(m[1])])),
            ("GET", rf"^{repo}/pulls/(\d+)/commits$", lambda m: self._page(request, self.commits.get(int(m[1]), []))),
            ("GET", rf"^{repo}/issues/(\d+)$", lambda m: self.pulls[int(m[1])]),
            ("GET", rf"^{repo}/issues/(\d+)/comments$", lambda m: self._page(request, self.comments[int(m[1])])),
            ("POST", rf"^{repo}/issues/(\d+)/comments$", lambda m: (self._create_comment(int(m[1]), body), 201)),
            ("PATCH", rf"^{repo}/issues/comments/(\d+)$", lambda m: self._edit_comment(int(m[1]), body)),
            ("GET", rf"^{repo}/commits/([0-9a-f]{{40}})$", lambda m: self._commit(m[1])),
            ("POST", rf"^{repo}/statuses/([0-9a-f]{{40}})$", lambda m: (self._status(m[1], body), 201)),
            ("GET", r"^/orgs/([^/]+)$", lambda m: self._org(m[1])),
            ("GET", r"^/orgs/([^/]+)/teams/([^/]+)$", lambda m: self._team(m[1], m[2])),
            ("GET", r"^/orgs/([^/]+)/teams/([^/]+)/members$", lambda m: self._members(request, m[1], m[2])),
        ]
        for method, pattern, handler in routes:
            match = re.match(pattern, path)
            if match and request.method == method:
                try:
                    result = handler(match)
                except KeyError:
                    return self._json({"message": "Not Found"}, 404)
                if isinstance(result, Response):
                    return result
                data, status = result if isinstance(result, tuple) else (result, 200)
                return self._json(data, status)
        return self._json({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, 404)

    def _page(self, request: Request, items: list) -> Response:
        """GitHub pagination: ``per_page``/``page`` and a ``Link`` header to the next page."""
        per_page = int(request.args.get("per_page", 30))
        page = int(request.args.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        response = self._json(chunk)
        if page * per_page < len(items):
            response.headers["Link"] = f'<{self.base}{request.path}?per_page={per_page}&page={page + 1}>; rel="next"'
        return response

    def _repository(self) -> dict:
        repo = load(WEBHOOKS / "pull_request" / "opened.payload.json")["repository"]
        repo = _rebase_urls(repo, self.base)
        repo["full_name"] = self.repository
        repo["url"] = f"{self.base}/repos/{self.repository}"
        return repo

    def _create_comment(self, number: int, body: dict) -> dict:
        return self.add_comment(number, "github-actions[bot]", body["body"])

    def _edit_comment(self, comment_id: int, body: dict) -> dict:
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == comment_id:
                    if comment["user"]["login"] != "github-actions[bot]":
                        raise KeyError(comment_id)  # GitHub answers 403/404 for someone else's comment
                    comment["body"] = body["body"]
                    comment["updated_at"] = "2026-11-26T11:00:00Z"
                    return comment
        raise KeyError(comment_id)

    def _commit(self, sha: str) -> dict:
        commit = _rebase_urls(load(OPENAPI / "pulls__list-commits.200.default.json")[0], self.base)
        commit["sha"] = sha
        commit["url"] = f"{self.base}/repos/{self.repository}/commits/{sha}"
        return commit

    def _status(self, sha: str, body: dict) -> dict:
        event = load(FIXTURES / "angular-github-robot" / "test" / "fixtures" / "status.json")["payload"]
        status = {
            "url": f"{self.base}/repos/{self.repository}/statuses/{sha}",
            "id": self._id(),
            "node_id": "MDEzOlN0YXR1c0NvbnRleHQx",
            "state": body["state"],
            "description": body.get("description"),
            "target_url": body.get("target_url"),
            "context": body.get("context", "default"),
            "created_at": event["created_at"],
            "updated_at": event["updated_at"],
            "creator": _rebase_urls(event["sender"], self.base),
        }
        self.statuses.append({**status, "sha": sha})
        return status

    def _org(self, org: str) -> dict:
        data = _rebase_urls(load(WEBHOOKS / "pull_request" / "opened.with-organization.payload.json")["organization"], self.base)
        data["login"] = org
        data["url"] = f"{self.base}/orgs/{org}"
        return data

    def _team(self, org: str, slug: str) -> dict:
        if (org.lower(), slug.lower()) not in self.teams:
            raise KeyError(slug)
        team = _rebase_urls(load(WEBHOOKS / "team" / "created.payload.json")["team"], self.base)
        team["slug"] = slug
        team["url"] = f"{self.base}/orgs/{org}/teams/{slug}"
        return team

    def _members(self, request: Request, org: str, slug: str):
        key = (org.lower(), slug.lower())
        if key in self.forbidden_teams:
            return self._json({"message": "Resource not accessible by integration"}, 403)
        template = load(OPENAPI / "teams__list-members-in-org.200.default.json")[0]
        members = [_rebase_urls(user(login, template), self.base) for login in self.teams[key]]
        return self._page(request, members)
