"""The one GitHub REST client, through PyGithub: pull requests (read, open), reviews, team members,
the one quantgate comment per manifest, and the ``quantgate/signoff`` commit status. Sign-off,
comments and monitoring's rollback pull requests all go through ``GitHub``; nothing else in
quantgate talks to GitHub's API.

The context comes from the standard Actions environment (``GITHUB_API_URL``, ``GITHUB_REPOSITORY``,
``GITHUB_TOKEN``, optionally ``GITHUB_EVENT_PATH``; ``QUANTGATE_TEAMS_TOKEN``, when set, is used
only to read ``@org/team`` membership, which the workflow token may not read). Tokens are handed to
PyGithub and nowhere else: it never appears in a message, and every error text that leaves this module is passed through
``redact`` first.

Review states differ by source: the REST list says ``APPROVED``, webhook payloads say ``approved``,
and payloads recorded years ago lack fields GitHub added since. ``Review`` is the one normalised
shape; both readers fill it leniently, reading only the fields quantgate needs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.clients.secrets import redact
from compiler.errors import InvalidInput, Problem, RunnerFailed

#: Review states that carry a verdict; COMMENTED and PENDING carry none.
APPROVED = "APPROVED"
CHANGES_REQUESTED = "CHANGES_REQUESTED"
COMMENTED = "COMMENTED"
DISMISSED = "DISMISSED"
PENDING = "PENDING"
STATES = frozenset({APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED, PENDING})

STATUS_CONTEXT = "quantgate/signoff"
#: The login GitHub gives the workflow token's comments; only its comments are ever edited.
BOT_LOGIN = "github-actions[bot]"


@dataclass(frozen=True)
class Review:
    """One pull-request review, normalised: ``state`` is upper case, ``login`` lower-cased for
    comparison (``display_login`` keeps the spelling), ``commit_id`` may be None on old payloads."""

    id: int
    login: str
    display_login: str
    state: str
    commit_id: str | None
    submitted_at: str | None  # ISO 8601 as GitHub sends it; sorts chronologically


@dataclass(frozen=True)
class PullRequest:
    number: int
    author: str  # lower-cased login
    head_sha: str
    base_sha: str
    head_ref: str


@dataclass(frozen=True)
class PullCommit:
    """One commit of a pull request with the GitHub accounts its author and committer emails map to
    (lower-cased; None when an email maps to no account). Commit metadata is what the pusher wrote:
    only signed commits (branch protection "require signed commits") make it trustworthy."""

    sha: str
    author: str | None
    committer: str | None


@dataclass(frozen=True)
class Context:
    api_url: str
    repository: str  # owner/name
    token: str
    event_path: Path | None = None
    teams_token: str | None = None

    @property
    def owner(self) -> str:
        return self.repository.split("/", 1)[0]


def context_from_env(env: dict[str, str] | None = None) -> Context:
    """The Actions context; missing variables are one InvalidInput naming each (never their values)."""
    env = dict(os.environ if env is None else env)
    problems = []
    for key in ("GITHUB_REPOSITORY", "GITHUB_TOKEN"):
        if not env.get(key):
            problems.append(Problem(path=f"${key}", message="not set (run inside GitHub Actions or export it)"))
    repo = env.get("GITHUB_REPOSITORY", "")
    if repo and not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", repo):
        problems.append(Problem(path="$GITHUB_REPOSITORY", message=f"{repo!r} is not 'owner/name'"))
    if problems:
        raise InvalidInput(problems)
    event = env.get("GITHUB_EVENT_PATH")
    return Context(
        api_url=env.get("GITHUB_API_URL") or "https://api.github.com",
        repository=repo,
        token=env["GITHUB_TOKEN"],
        event_path=Path(event) if event else None,
        teams_token=env.get("QUANTGATE_TEAMS_TOKEN") or None,
    )


def normalise_state(state: object) -> str:
    value = str(state or "").strip().upper()
    return value if value in STATES else PENDING


def review_from_json(data: dict[str, Any]) -> Review | None:
    """A review from a REST list item or a webhook ``review`` object; None when it has no author
    (deleted users come back as ``user: null``) or no id."""
    user = data.get("user") or {}
    login = user.get("login")
    review_id = data.get("id")
    if not login or review_id is None:
        return None
    return Review(
        id=int(review_id),
        login=str(login).lower(),
        display_login=str(login),
        state=normalise_state(data.get("state")),
        commit_id=data.get("commit_id") or None,
        submitted_at=data.get("submitted_at") or None,
    )


def review_from_event(event_path: Path | None) -> Review | None:
    """The review a ``pull_request_review`` event carries, if the event file holds one. The REST
    list may lag the event by a moment, so the caller merges this one in by id."""
    if event_path is None or not event_path.is_file():
        return None
    try:
        payload = json.loads(event_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    review = payload.get("review") if isinstance(payload, dict) else None
    return review_from_json(review) if isinstance(review, dict) else None


class GitHubError(RunnerFailed):
    """Exit 3: GitHub did not answer as expected. ``status`` (None when it did not answer at all) and
    ``detail`` (GitHub's ``message``) are kept for callers that explain the failure in their terms;
    the text is already redacted."""

    def __init__(self, message: str, status: int | None = None, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail

    def reason(self) -> str:
        """``HTTP 401: Bad credentials``, or the connection error."""
        if self.status is None:
            return self.detail
        return f"HTTP {self.status}: {self.detail}" if self.detail else f"HTTP {self.status}"


class GitHub:
    """A PyGithub client for one repository. Every API failure becomes ``RunnerFailed`` with a
    redacted message (exit 3: the service quantgate depends on did not answer as expected)."""

    def __init__(self, context: Context, timeout: float = 30.0, retry: int | None = 2):
        from github import Auth, Github

        self.context = context
        self._client = Github(
            auth=Auth.Token(context.token), base_url=context.api_url, timeout=int(timeout), retry=retry, lazy=True
        )
        self._repo = self._client.get_repo(context.repository)
        self._teams_client = (
            Github(auth=Auth.Token(context.teams_token), base_url=context.api_url, timeout=int(timeout), retry=retry, lazy=True)
            if context.teams_token
            else self._client
        )
        self._teams: dict[str, frozenset[str]] = {}

    def _call(self, what: str, fn, *args, **kwargs):
        from github import GithubException

        try:
            return fn(*args, **kwargs)
        except GithubException as exc:
            message = exc.data.get("message") if isinstance(exc.data, dict) else exc.data
            failure = GitHubError("", exc.status, self._redact(str(message or "")))
            raise GitHubError(self._redact(f"GitHub API: {what}: {failure.reason()}"), exc.status, failure.detail) from exc
        except OSError as exc:  # connection refused, DNS, TLS
            detail = self._redact(str(exc))
            raise GitHubError(f"GitHub API: {what}: {detail}", None, detail) from exc

    def _redact(self, text: str) -> str:
        return redact(text, self.context.token, self.context.teams_token)

    # pull requests and reviews ------------------------------------------------------------------

    def pull_request(self, number: int) -> PullRequest:
        # lazy client: the request happens when raw_data is read, so inside _call
        raw = self._call(f"GET pull request #{number}", lambda: self._repo.get_pull(number).raw_data)
        return PullRequest(
            number=number,
            author=str((raw.get("user") or {}).get("login") or "").lower(),
            head_sha=raw["head"]["sha"],
            base_sha=raw["base"]["sha"],
            head_ref=raw["head"].get("ref", ""),
        )

    def reviews(self, number: int) -> list[Review]:
        def fetch() -> list[Review]:
            pr = self._repo.get_pull(number)
            found = (review_from_json(r.raw_data) for r in pr.get_reviews())
            return [r for r in found if r is not None]

        return self._call(f"GET reviews of #{number}", fetch)

    def pull_request_commits(self, number: int) -> list[PullCommit]:
        """``GET /repos/{o}/{r}/pulls/{n}/commits``: the pull request's commits, oldest first, with
        ``author.login`` / ``committer.login`` (GitHub lists at most 250)."""

        def login(user: Any) -> str | None:
            return str(user.login).lower() if user is not None and getattr(user, "login", None) else None

        def fetch() -> list[PullCommit]:
            # attributes, not raw_data: on a lazy client raw_data would re-fetch every commit
            return [PullCommit(sha=str(c.sha), author=login(c.author), committer=login(c.committer))
                    for c in self._repo.get_pull(number).get_commits()]

        return self._call(f"GET commits of #{number}", fetch)

    def team_members(self, org: str, slug: str) -> frozenset[str]:
        """Lower-cased logins of ``@org/slug``; needs a token that may read the organisation's teams
        (the workflow token may not: set ``QUANTGATE_TEAMS_TOKEN``, used for this call only)."""
        key = f"{org}/{slug}".lower()
        if key not in self._teams:

            def fetch() -> frozenset[str]:
                team = self._teams_client.get_organization(org).get_team_by_slug(slug)
                return frozenset(str(m.login).lower() for m in team.get_members())

            self._teams[key] = self._call(f"GET members of @{org}/{slug}", fetch)
        return self._teams[key]

    # the comment ---------------------------------------------------------------------------------

    def upsert_comment(self, number: int, marker: str, body: str, bot_login: str = BOT_LOGIN) -> tuple[str, int]:
        """Edit the one comment of ``bot_login`` whose body starts with ``marker``, or create it.
        Returns ``("updated"|"created"|"unchanged", comment id)``. Comments by anyone else are never
        touched, even when they quote the marker."""

        def run() -> tuple[str, int]:
            issue = self._repo.get_issue(number)
            # attributes, not raw_data: on a lazy client raw_data would re-fetch every comment
            for comment in issue.get_comments():
                author = str(comment.user.login if comment.user else "").lower()
                text = comment.body or ""
                if author == bot_login.lower() and text.startswith(marker):
                    if text == body:
                        return "unchanged", int(comment.id)
                    comment.edit(body)
                    return "updated", int(comment.id)
            created = issue.create_comment(body)
            return "created", int(created.id)

        return self._call(f"comment on #{number}", run)

    # pull requests we open ----------------------------------------------------------------------

    def open_pull_request(self, head: str, base: str, title: str, body: str) -> str:
        """Open a pull request ``head`` -> ``base`` (both branches of this repository); returns its
        URL. An already open pull request for ``head`` into ``base`` is reused, not duplicated."""

        def run() -> str:
            for pull in self._repo.get_pulls(state="open", head=f"{self.context.owner}:{head}", base=base):
                return str(pull.html_url)
            return str(self._repo.create_pull(title=title, body=body, head=head, base=base).html_url)

        return self._call(f"open pull request {head} -> {base}", run)

    # commit status -------------------------------------------------------------------------------

    def set_status(self, sha: str, state: str, description: str, target_url: str | None = None) -> None:
        """Set ``quantgate/signoff`` on ``sha``; ``state`` is success | pending | failure | error."""
        from github.GithubObject import NotSet

        def run() -> None:
            commit = self._repo.get_commit(sha)
            commit.create_status(
                state=state, description=description[:140], context=STATUS_CONTEXT, target_url=target_url or NotSet
            )

        self._call(f"POST status for {sha[:12]}", run)


def parse_team(owner: str) -> tuple[str, str] | None:
    """``@org/team`` -> (org, team); a plain login -> None."""
    body = owner.lstrip("@")
    if "/" not in body:
        return None
    org, slug = body.split("/", 1)
    return org, slug


def logins(owners: Iterable[str]) -> list[str]:
    return [o.lstrip("@").lower() for o in owners if parse_team(o) is None]
