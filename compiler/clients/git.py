"""The one git client: every git command quantgate runs (sign-off, commit-back, changed, monitor)
goes through ``Git``.

- repository discovery: ``Git.open(path)`` (``GitError`` when ``path`` is not in a repository);
- one bot identity, ``github-actions[bot]``, for every commit quantgate makes (the identity GitHub
  shows for the workflow token's commits), whatever git is configured with;
- tokens reach git the way actions/checkout passes them: an ``http.<server>/.extraheader`` set for
  the one call that talks to the remote, through ``GIT_CONFIG_*`` in that call's environment, so
  the token is in no argv, no ``.git/config``, no remote URL and no message;
- commits of explicit paths only (``git commit --only``): whatever else is staged stays staged, out
  of the commit;
- pushes are never forced; ``push_with_retry`` fetches and rebases our commit over a branch that
  moved meanwhile;
- ``worktree(start)``: a temporary worktree, so a commit on another branch leaves the checkout alone;
- every failure is ``GitError`` (exit 4, a git conflict or failure) with its text redacted.

gitpython is imported lazily (it costs start-up time that ``quantgate validate`` never needs).
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from compiler.clients.secrets import redact
from compiler.errors import Conflict

BOT_NAME = "github-actions[bot]"
BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"
DEFAULT_SERVER = "https://github.com"


class GitError(Conflict):
    """Exit 4: a git command failed. The message is already redacted."""


@dataclass(frozen=True)
class GitAuth:
    """A token for the remote, sent as actions/checkout sends it. ``repr`` never shows the token."""

    token: str | None = None
    server_url: str = DEFAULT_SERVER

    def __repr__(self) -> str:
        return f"GitAuth(token={'***' if self.token else None}, server_url={self.server_url!r})"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> GitAuth:
        """``$GITHUB_TOKEN`` for ``$GITHUB_SERVER_URL`` (default github.com); no token outside Actions."""
        env = os.environ if env is None else env
        return cls(env.get("GITHUB_TOKEN") or None, (env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER).rstrip("/"))

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """``GIT_CONFIG_*`` entries adding the extraheader to whatever ``base`` already configures."""
        if not self.token:
            return {}
        count = int(base.get("GIT_CONFIG_COUNT") or 0)
        basic = base64.b64encode(f"x-access-token:{self.token}".encode()).decode()
        return {
            "GIT_CONFIG_COUNT": str(count + 1),
            f"GIT_CONFIG_KEY_{count}": f"http.{self.server_url.rstrip('/')}/.extraheader",
            f"GIT_CONFIG_VALUE_{count}": f"AUTHORIZATION: basic {basic}",
        }


def bot_env() -> dict[str, str]:
    """Author and committer for every commit quantgate makes; git never prompts."""
    return {
        "GIT_AUTHOR_NAME": BOT_NAME,
        "GIT_AUTHOR_EMAIL": BOT_EMAIL,
        "GIT_COMMITTER_NAME": BOT_NAME,
        "GIT_COMMITTER_EMAIL": BOT_EMAIL,
        "GIT_TERMINAL_PROMPT": "0",
    }


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


class Git:
    """One working tree. ``run`` is the only place a git process starts."""

    def __init__(self, root: Path, auth: GitAuth | None = None):
        self.root = Path(root)
        self.auth = auth or GitAuth()

    @classmethod
    def open(cls, path: Path, auth: GitAuth | None = None, search_parents: bool = True) -> Git:
        """The repository holding ``path`` (its top level); ``GitError`` when there is none."""
        import git

        try:
            repo = git.Repo(Path(path), search_parent_directories=search_parents)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
            raise GitError(f"{path} is not inside a git repository") from exc
        if repo.working_tree_dir is None:
            raise GitError(f"{path} is a bare git repository: it has no working tree")
        return cls(Path(repo.working_tree_dir), auth)

    # running git ----------------------------------------------------------------------------------

    def run(self, *args: str, remote: bool = False) -> str:
        """``git args`` in the working tree as the bot; ``remote``: with the token. ``GitError``
        (redacted) when git fails."""
        import git

        env = {**os.environ, **bot_env()}
        if remote:
            env.update(self.auth.env(env))
        try:
            return git.Git(str(self.root)).execute(["git", *args], env=env)
        except git.GitCommandError as exc:
            detail = (exc.stderr or exc.stdout or "").strip() or f"exit {exc.status}"
            raise GitError(self.redact(f"git {args[0]}: {detail}")) from exc
        except OSError as exc:  # git itself missing, or the folder gone
            raise GitError(self.redact(f"git {args[0]}: {exc}")) from exc

    def ok(self, *args: str) -> bool:
        """Whether ``git args`` succeeds (for yes/no questions such as ``merge-base --is-ancestor``)."""
        try:
            self.run(*args)
            return True
        except GitError:
            return False

    def redact(self, text: str) -> str:
        return redact(text, self.auth.token)

    # reading --------------------------------------------------------------------------------------

    def relpath(self, path: Path) -> str:
        """``path`` relative to the top level, posix style."""
        return Path(path).resolve().relative_to(self.root.resolve()).as_posix()

    def current_branch(self) -> str | None:
        """The checked-out branch; None when HEAD is detached."""
        try:
            return self.run("symbolic-ref", "--quiet", "--short", "HEAD") or None
        except GitError:
            return None

    def head(self) -> str:
        return self.run("rev-parse", "HEAD")

    def commit_of(self, ref: str) -> str | None:
        """The commit sha ``ref`` names; None when it names none here (not fetched, misspelt)."""
        try:
            return self.run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") or None
        except GitError:
            return None

    def show(self, commit: str, relpath: str) -> str | None:
        """A file's text at ``commit``; None when it is not there (or the commit is unknown)."""
        try:
            return self.run("show", f"{commit}:{relpath}")
        except GitError:
            return None

    def changed_names(self, base: str, head: str | None = None) -> list[tuple[str, str]]:
        """(status letter, path) for ``base...head`` (head None: the working tree against the merge
        base, untracked files excluded). Renames show as a delete plus an add."""
        if head is None:
            merge_base = self.run("merge-base", base, "HEAD")
            out = self.run("diff", "--name-status", "--no-renames", "-z", merge_base)
        else:
            out = self.run("diff", "--name-status", "--no-renames", "-z", f"{base}...{head}")
        fields = [f for f in out.split("\0") if f]
        return [(fields[i][0], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]

    def diff_paths(self, commit: str, head: str) -> list[str] | None:
        """The paths that differ between two commits; None when either is unknown here."""
        try:
            out = self.run("diff", "--name-only", "--no-renames", "-z", commit, head)
        except GitError:
            return None
        return [p for p in out.split("\0") if p]

    def tree_files(self, commit: str, folder: str) -> list[str]:
        out = self.run("ls-tree", "-r", "-z", "--name-only", commit, "--", folder)
        return [p for p in out.split("\0") if p]

    def status_paths(self, paths: Iterable[str] = ()) -> list[str]:
        """Paths (among ``paths``; all when empty) that differ from HEAD: new, modified or deleted."""
        paths = list(paths)
        return porcelain_paths(self.run("status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *paths))

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.ok("merge-base", "--is-ancestor", ancestor, descendant)

    # writing --------------------------------------------------------------------------------------

    def commit_paths(self, paths: Iterable[str], message: str) -> str:
        """Commit exactly ``paths`` as the bot (additions and deletions included; anything else
        staged stays staged, out of the commit); returns the new commit's sha."""
        paths = list(dict.fromkeys(paths))
        self.run("add", "--all", "--", *paths)
        self.run("-c", "commit.gpgsign=false", "commit", "--no-verify", "--quiet", "-m", message, "--only", "--", *paths)
        return self.head()

    def remote_has_branch(self, remote: str, branch: str) -> bool:
        return bool(self.run("ls-remote", "--heads", remote, f"refs/heads/{branch}", remote=True).strip())

    def fetch(self, remote: str, branch: str) -> str:
        """Fetch ``branch`` from ``remote``; returns the fetched commit (``FETCH_HEAD``)."""
        self.run("fetch", "--quiet", remote, f"refs/heads/{branch}", remote=True)
        return self.run("rev-parse", "FETCH_HEAD")

    def push(self, remote: str, branch: str) -> None:
        """Push HEAD to ``branch`` on ``remote``, never forced."""
        self.run("push", "--porcelain", remote, f"HEAD:refs/heads/{branch}", remote=True)

    def push_with_retry(self, remote: str, branch: str, attempts: int = 5, backoff_s: float = 0.5) -> int:
        """Push HEAD's one commit; when the branch moved meanwhile, fetch it, rebase the commit onto
        it and try again, up to ``attempts`` pushes. Returns the attempts used. A rebase conflict is
        ``GitError`` at once (the rebase aborted); exhausted attempts are ``GitError`` too, the commit
        kept locally."""
        attempts = max(1, attempts)
        last: GitError | None = None
        for attempt in range(1, attempts + 1):
            try:
                self.push(remote, branch)
                return attempt
            except GitError as failed:
                last = failed
            if attempt == attempts:
                break
            self._rebase_onto(remote, branch)
            time.sleep(backoff_s * attempt)
        raise GitError(
            f"push to {remote}/{branch} was rejected {attempts} times (the branch keeps moving); "
            f"the commit is kept locally, run again. Last error: {last}"
        )

    def _rebase_onto(self, remote: str, branch: str) -> None:
        self.fetch(remote, branch)
        try:
            self.run("-c", "commit.gpgsign=false", "rebase", "--quiet", "--autostash", "FETCH_HEAD")
        except GitError as failed:
            self.ok("rebase", "--abort")
            raise GitError(
                f"{remote}/{branch} changed the same files meanwhile; rebase the branch and run again ({failed})"
            ) from failed

    @contextmanager
    def worktree(self, start: str) -> Iterator[Git]:
        """A temporary detached worktree at ``start`` (the checkout is left alone), removed after."""
        with tempfile.TemporaryDirectory(prefix="quantgate-worktree-") as tmp:
            folder = Path(tmp) / "worktree"
            self.run("worktree", "add", "--detach", str(folder), start)
            try:
                yield Git(folder, self.auth)
            finally:
                if not self.ok("worktree", "remove", "--force", str(folder)):
                    self.ok("worktree", "prune")
