"""Commit quantgate's own files back to the pull-request branch and push, safely (gitpython).

Contract:
- only quantgate's files (``compiler.changed.is_quantgate_file``) are ever committed; asking for
  anything else is refused before git is touched, and the commit names its paths explicitly
  (``git commit --only``), so whatever else sits in the index stays out;
- author and committer are the workflow's bot identity;
- push is never forced. When the branch moved meanwhile the push is rejected; then the branch is
  fetched, the one lock-only commit is rebased onto it and the push retried, at most ``attempts``
  times. Someone else's commits are therefore always kept underneath ours. A rebase conflict (they
  changed the same lock) or exhausted retries raise ``Conflict`` (exit 4);
- git's error text is redacted before it is shown (a remote URL may carry a token).
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from compiler.changed import REPORTS_DIR, is_quantgate_file, manifest_name
from compiler.errors import Conflict, InvalidInput, Problem
from compiler.github import redact

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"


@dataclass(frozen=True)
class Pushed:
    sha: str | None  # the commit pushed; None when there was nothing to commit
    paths: tuple[str, ...]
    attempts: int  # pushes tried (0 when nothing to commit)


def _bot_env() -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": BOT_NAME,
        "GIT_AUTHOR_EMAIL": BOT_EMAIL,
        "GIT_COMMITTER_NAME": BOT_NAME,
        "GIT_COMMITTER_EMAIL": BOT_EMAIL,
        "GIT_TERMINAL_PROMPT": "0",
    }


def _auth_config(token: str | None, server_url: str) -> list[str]:
    """``-c http.<server>/.extraheader=...`` for one git call, the way actions/checkout passes the
    token, so it never lands in .git/config or in a remote URL."""
    if not token:
        return []
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return ["-c", f"http.{server_url.rstrip('/')}/.extraheader=AUTHORIZATION: basic {basic}"]


def quantgate_paths_for(root: Path, manifests: Iterable[Path]) -> list[str]:
    """The files quantgate writes for these manifests (lock, rules, serving, report folder)."""
    from compiler import discover

    paths = []
    for manifest in manifests:
        manifest = (root / manifest).resolve() if not manifest.is_absolute() else manifest
        for sibling in (discover.lock_path(manifest), discover.rules_path(manifest), discover.serving_path(manifest)):
            paths.append(sibling.relative_to(root.resolve()).as_posix())
        name = manifest_name(manifest)
        paths.append(f"{REPORTS_DIR}/{name}")
    return paths


class CommitBack:
    """One commit-back: ``run()`` commits the changed quantgate files among ``paths`` and pushes."""

    def __init__(
        self,
        root: Path,
        paths: Iterable[str],
        message: str,
        *,
        remote: str = "origin",
        branch: str | None = None,
        attempts: int = 5,
        token: str | None = None,
        server_url: str = "https://github.com",
        backoff_s: float = 0.5,
    ):
        import git

        self.root = root
        self.repo = git.Repo(root)
        self.message = message
        self.remote = remote
        self.attempts = max(1, attempts)
        self.token = token
        self.auth = _auth_config(token, server_url)
        self.backoff_s = backoff_s
        refused = [p for p in paths if not is_quantgate_file(p)]
        if refused:
            raise InvalidInput(
                [Problem(path=p, message="not a quantgate file; commit-back commits only *.lock.yaml, *.rules.yaml, *.serving.yaml and reports/") for p in refused]
            )
        self.paths = list(dict.fromkeys(paths))
        self.branch = branch or self._current_branch()

    def _current_branch(self) -> str:
        if self.repo.head.is_detached:
            raise InvalidInput(Problem(path="--branch", message="HEAD is detached; name the branch to push to (--branch or $GITHUB_HEAD_REF)"))
        return self.repo.active_branch.name

    def _git(self, *args: str, auth: bool = False) -> str:
        import git

        cmd = [*(self.auth if auth else []), *args]
        try:
            return self.repo.git.execute(["git", *cmd], env={**os.environ, **_bot_env()})
        except git.GitCommandError as exc:
            raise _GitFailed(redact(f"git {args[0]}: {exc.stderr or exc.stdout or exc}".strip(), self.token)) from exc

    def changed_paths(self) -> list[str]:
        """The requested quantgate paths that differ from HEAD (new, modified or deleted)."""
        if not self.paths:
            return []
        out = self._git("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *self.paths)
        found = porcelain_paths(out)
        refused = [p for p in found if not is_quantgate_file(p)]
        if refused:  # a folder such as reports/<name> can only hold quantgate files; belt and braces
            raise InvalidInput([Problem(path=p, message="not a quantgate file") for p in refused])
        return found

    def run(self) -> Pushed:
        """Commit and push; ``Conflict`` (exit 4) for every git failure, its text redacted."""
        try:
            return self._run()
        except _GitFailed as failed:
            raise Conflict(f"commit-back to {self.remote}/{self.branch} failed: {failed}") from failed

    def _run(self) -> Pushed:
        paths = self.changed_paths()
        if not paths:
            return Pushed(sha=None, paths=(), attempts=0)
        self._git("add", "--all", "--", *paths)
        self._git("-c", "commit.gpgsign=false", "commit", "--no-verify", "--quiet", "-m", self.message, "--only", "--", *paths)
        for attempt in range(1, self.attempts + 1):
            try:
                self._git("push", "--porcelain", self.remote, f"HEAD:refs/heads/{self.branch}", auth=True)
                return Pushed(sha=self.repo.head.commit.hexsha, paths=tuple(paths), attempts=attempt)
            except _GitFailed as failed:
                last = failed
            if attempt == self.attempts:
                break
            self._catch_up()
            time.sleep(self.backoff_s * attempt)
        raise Conflict(
            f"push to {self.remote}/{self.branch} was rejected {self.attempts} times (the branch keeps moving); "
            f"the lock commit is kept locally, run commit-back again. Last error: {last}"
        )

    def _catch_up(self) -> None:
        """Fetch the branch and rebase our one commit onto it; a conflict aborts the rebase."""
        self._git("fetch", "--quiet", self.remote, f"refs/heads/{self.branch}", auth=True)
        try:
            self._git("-c", "commit.gpgsign=false", "rebase", "--quiet", "--autostash", "FETCH_HEAD")
        except _GitFailed as failed:
            try:
                self._git("rebase", "--abort")
            except _GitFailed:
                pass
            raise Conflict(
                f"{self.remote}/{self.branch} changed the same quantgate files meanwhile; rebase the branch "
                f"and run again ({failed})"
            ) from failed


def porcelain_paths(out: str) -> list[str]:
    """Paths from ``git status --porcelain=v1 -z``: ``XY path``, where a rename or copy is followed
    by its source path as a separate field (not a path that changed here, so skipped)."""
    fields = out.split("\0")
    paths = []
    i = 0
    while i < len(fields):
        entry = fields[i]
        if len(entry) > 3:
            paths.append(entry[3:])
            if entry[0] in "RC":
                i += 1
        i += 1
    return sorted(set(paths))


class _GitFailed(Exception):
    """A git command failed; the message is already redacted."""


def default_message(names: Iterable[str], what: str = "results") -> str:
    names = sorted(set(names))
    subject = f"quantgate: record {what} for {', '.join(names)}" if names else f"quantgate: record {what}"
    return subject + "\n\nWritten by quantgate commit-back: only quantgate's own files (locks, rules, serving flags, reports)."
