"""Commit quantgate's own files back to the pull-request branch and push, safely (through the git
client, ``compiler.clients.git``).

Contract:
- only quantgate's files (``compiler.gitops.changed.is_quantgate_file``) are ever committed; asking for
  anything else is refused before git is touched, and the commit names its paths explicitly
  (``git commit --only``), so whatever else sits in the index stays out;
- author and committer are the workflow's bot identity (``compiler.clients.git.BOT_NAME``);
- push is never forced. When the branch moved meanwhile the push is rejected; then the branch is
  fetched, the one lock-only commit is rebased onto it and the push retried, at most ``attempts``
  times. Someone else's commits are therefore always kept underneath ours. A rebase conflict (they
  changed the same lock) or exhausted retries raise ``Conflict`` (exit 4);
- git's error text is redacted before it is shown (a remote URL may carry a token).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from compiler import discover
from compiler.clients import actions
from compiler.clients.git import BOT_EMAIL, BOT_NAME, DEFAULT_SERVER, Git, GitAuth, GitError
from compiler.errors import Conflict, InvalidInput, Problem
from compiler.gitops.changed import REPORTS_DIR, is_quantgate_file, manifest_name

__all__ = ["BOT_EMAIL", "BOT_NAME", "CommitBack", "Pushed", "commit_back", "default_message", "quantgate_paths_for"]


@dataclass(frozen=True)
class Pushed:
    sha: str | None  # the commit pushed; None when there was nothing to commit
    paths: tuple[str, ...]
    attempts: int  # pushes tried (0 when nothing to commit)
    remote: str = "origin"
    branch: str = ""


def quantgate_paths_for(root: Path, manifests: Iterable[Path]) -> list[str]:
    """The files quantgate writes for these manifests (lock, rules, serving, report folder)."""
    paths = []
    for manifest in manifests:
        manifest = (root / manifest).resolve() if not manifest.is_absolute() else manifest
        for sibling in (discover.lock_path(manifest), discover.rules_path(manifest), discover.serving_path(manifest)):
            paths.append(sibling.relative_to(root.resolve()).as_posix())
        paths.append(f"{REPORTS_DIR}/{manifest_name(manifest)}")
    return paths


def _refuse_foreign(paths: Iterable[str]) -> None:
    refused = [p for p in paths if not is_quantgate_file(p)]
    if refused:
        raise InvalidInput([
            Problem(path=p, message="not a quantgate file; commit-back commits only *.lock.yaml, *.rules.yaml, *.serving.yaml and reports/")
            for p in refused
        ])


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
        server_url: str = DEFAULT_SERVER,
        backoff_s: float = 0.5,
    ):
        paths = list(dict.fromkeys(paths))
        _refuse_foreign(paths)
        self.git = Git.open(Path(root), GitAuth(token, server_url), search_parents=False)
        self.root = self.git.root
        self.paths = paths
        self.message = message
        self.remote = remote
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.branch = branch or self._current_branch()

    def _current_branch(self) -> str:
        branch = self.git.current_branch()
        if branch is None:
            raise InvalidInput(Problem(path="--branch", message="HEAD is detached; name the branch to push to (--branch or $GITHUB_HEAD_REF)"))
        return branch

    def changed_paths(self) -> list[str]:
        """The requested quantgate paths that differ from HEAD (new, modified or deleted)."""
        if not self.paths:
            return []
        found = self.git.status_paths(self.paths)
        refused = [p for p in found if not is_quantgate_file(p)]
        if refused:  # a folder such as reports/<name> can only hold quantgate files; belt and braces
            raise InvalidInput([Problem(path=p, message="not a quantgate file") for p in refused])
        return found

    def run(self) -> Pushed:
        """Commit and push; ``Conflict`` (exit 4) for every git failure, its text redacted."""
        try:
            paths = self.changed_paths()
            if not paths:
                return Pushed(sha=None, paths=(), attempts=0, remote=self.remote, branch=self.branch)
            self.git.commit_paths(paths, self.message)
            attempts = self.git.push_with_retry(self.remote, self.branch, self.attempts, self.backoff_s)
            return Pushed(sha=self.git.head(), paths=tuple(paths), attempts=attempts,
                          remote=self.remote, branch=self.branch)
        except GitError as failed:
            raise Conflict(f"commit-back to {self.remote}/{self.branch} failed: {failed}") from failed


def default_message(names: Iterable[str], what: str = "results") -> str:
    names = sorted(set(names))
    subject = f"quantgate: record {what} for {', '.join(names)}" if names else f"quantgate: record {what}"
    return subject + "\n\nWritten by quantgate commit-back: only quantgate's own files (locks, rules, serving flags, reports)."


def commit_back(
    root: Path,
    manifests: Iterable[Path] = (),
    paths: Iterable[str] = (),
    *,
    message: str | None = None,
    what: str = "results",
    remote: str = "origin",
    branch: str | None = None,
    attempts: int = 5,
    auth: GitAuth | None = None,
) -> Pushed:
    """Commit-back as the CLI does it: the quantgate files of ``manifests`` plus ``paths`` (neither:
    every changed quantgate file), committed and pushed; the pushed sha also goes to the Actions
    step output ``sha``. ``InvalidInput`` for a missing manifest or a foreign path."""
    root = Path(root).resolve()
    manifests = [Path(m) for m in manifests]
    paths = list(paths)
    for manifest in manifests:
        if not (root / manifest).is_file() and not manifest.is_file():
            raise InvalidInput(Problem(path=str(manifest), message="no such manifest"))
    paths += quantgate_paths_for(root, manifests)
    if not manifests and not paths:
        paths = [p for p in Git.open(root, search_parents=False).status_paths() if is_quantgate_file(p)]
    names = [manifest_name(root / m if not m.is_absolute() else m) for m in manifests]
    auth = auth or GitAuth()
    job = CommitBack(root, paths, message or default_message(names, what), remote=remote, branch=branch,
                     attempts=attempts, token=auth.token, server_url=auth.server_url)
    pushed = job.run()
    if pushed.sha is not None:
        actions.set_outputs(sha=pushed.sha)
    return pushed
