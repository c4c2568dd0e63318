"""Play 8, part 3: evaluate the rollback rules on live metrics and roll back as one git commit.

``evaluate(rules, source)`` reads every rule's value first (so a broken endpoint changes nothing);
``monitor(...)`` then decides: healthy -> nothing; a breach while the quantized artifact serves ->
``active: full-precision`` in the serving file, committed once (locally, or on a branch pushed to
``origin`` with an optional pull request). A serving file that already says full-precision is never
committed again: a second breach report is a no-op.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from compiler.errors import Conflict, InvalidInput, Problem
from compiler.metrics_source import held_query
from compiler.rules import Rule, format_number
from compiler.serving import FULL_PRECISION, QUANTIZED

BOT_NAME = "quantgate"
BOT_EMAIL = "quantgate@users.noreply.github.com"
# The identity GitHub shows for commits made with the workflow's GITHUB_TOKEN.
ACTIONS_BOT_NAME = "github-actions[bot]"
ACTIONS_BOT_EMAIL = "41898282+github-actions[bot]@users.noreply.github.com"


@dataclass(frozen=True)
class Observation:
    rule: Rule
    value: float | None  # None: no data (no series, or NaN)
    labels: dict[str, str] = field(default_factory=dict)  # of the worst series
    series: int = 0

    @property
    def breached(self) -> bool:
        return self.value is not None and self.rule.breached(self.value)

    def line(self) -> str:
        if self.value is None:
            return f"{self.rule.name}: no data (not a breach)"
        verdict = "BREACH" if self.breached else "ok"
        side = self.rule.operator if self.breached else {"<": ">=", ">": "<="}[self.rule.operator]
        return f"{self.rule.name}: {format_number(round(self.value, 6))} {side} {format_number(self.rule.threshold)} ({verdict}, for {self.rule.hold})"

    def record(self) -> dict:
        """What the serving file and the commit keep about a breach."""
        return {"rule": self.rule.name, "observed": round(float(self.value), 6), "operator": self.rule.operator,
                "threshold": self.rule.threshold, "for": self.rule.hold}


def evaluate(rules: list[Rule], source, step: str = "1m") -> list[Observation]:
    """Query every rule (the worst series counts, as each series would fire its own alert).
    Prometheus sources get a subquery so a breach must have held for the rule's ``for:``; snapshot
    values are taken as already held. Raises ``MetricsUnavailable`` before anything is decided."""
    from compiler.metrics_source import PrometheusSource
    from compiler.quantities import parse_duration

    found = []
    for rule in rules:
        query = rule.query
        if isinstance(source, PrometheusSource):
            query = held_query(rule.query, rule.lower_breaches, parse_duration(rule.hold), step)
        samples = source.query(query, rule.name)
        real = [s for s in samples if not math.isnan(s.value)]
        if not real:
            found.append(Observation(rule, None, {}, len(samples)))
            continue
        worst = rule.worst([s.value for s in real])
        labels = next(s.labels for s in real if s.value == worst)
        found.append(Observation(rule, worst, labels, len(samples)))
    return found


def commit_message(name: str, breaches: list[Observation], source: str) -> str:
    first = breaches[0]
    subject = (f"rollback({name}): {first.rule.name} {format_number(round(first.value, 6))} {first.rule.operator} "
               f"{format_number(first.rule.threshold)}, serve full precision")
    body = [f"{b.rule.name}: observed {format_number(round(b.value, 6))} {b.rule.operator} threshold "
            f"{format_number(b.rule.threshold)} (held for {b.rule.hold})" for b in breaches]
    body += ["", f"active: {QUANTIZED} -> {FULL_PRECISION} (both artifacts stay deployed)", f"metrics: {source}",
             "Written by `quantgate monitor`. Revert this commit to serve the quantized model again."]
    return subject + "\n\n" + "\n".join(body) + "\n"


# ------------------------------------------------------------------------------------------ git


def _repo(root: Path):
    import git

    try:
        return git.Repo(root, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as exc:
        raise Conflict(f"{root} is not inside a git repository: a rollback is a commit") from exc


def _identity_env(repo) -> dict[str, str]:
    """A committer identity when git has none configured (CI machines)."""
    reader = repo.config_reader()
    actions = os.environ.get("GITHUB_ACTIONS") == "true"
    name, email = (ACTIONS_BOT_NAME, ACTIONS_BOT_EMAIL) if actions else (BOT_NAME, BOT_EMAIL)
    env = {}
    if not reader.has_option("user", "name") and "GIT_AUTHOR_NAME" not in os.environ:
        env.update(GIT_AUTHOR_NAME=name, GIT_COMMITTER_NAME=name)
    if not reader.has_option("user", "email") and "GIT_AUTHOR_EMAIL" not in os.environ:
        env.update(GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_EMAIL=email)
    return env


def _commit_file(repo, rel: str, message: str) -> str:
    """Commit exactly ``rel`` (other staged changes stay staged, out of this commit); returns the sha."""
    with repo.git.custom_environment(**_identity_env(repo)):
        repo.git.add("--", rel)
        repo.git.commit("--no-verify", "-m", message, "--", rel)
    return repo.head.commit.hexsha


def _push_env() -> dict[str, str]:
    """In GitHub Actions with ``GITHUB_TOKEN``: authenticate the push the way actions/checkout does
    (an http extraheader passed through GIT_CONFIG_* so the token is in no argv and no message)."""
    token, server = os.environ.get("GITHUB_TOKEN"), os.environ.get("GITHUB_SERVER_URL")
    if not token or not server:
        return {}
    import base64

    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": f"http.{server.rstrip('/')}/.extraheader",
            "GIT_CONFIG_VALUE_0": f"AUTHORIZATION: basic {basic}"}


def _git_error(exc) -> str:
    text = (getattr(exc, "stderr", "") or str(exc)).strip()
    token = os.environ.get("GITHUB_TOKEN")
    return text.replace(token, "***") if token else text


@dataclass(frozen=True)
class RollbackCommit:
    sha: str | None  # None: nothing committed (already rolled back there)
    branch: str | None  # None: committed on the current branch
    pull_request: str | None = None


def commit_locally(root: Path, serving: Path, write, message: str) -> RollbackCommit:
    """Run ``write()`` (which changes the serving file) and commit the file on the current branch.
    If the commit fails, the file is restored: no half-done rollback is left behind."""
    import git

    repo = _repo(root)
    rel = Path(serving).resolve().relative_to(Path(repo.working_tree_dir).resolve()).as_posix()
    before = Path(serving).read_bytes() if Path(serving).exists() else None
    if not write():
        return RollbackCommit(None, None)
    try:
        return RollbackCommit(_commit_file(repo, rel, message), None)
    except git.GitCommandError as exc:
        if before is None:
            Path(serving).unlink(missing_ok=True)
        else:
            Path(serving).write_bytes(before)
        raise Conflict(f"could not commit the rollback of {rel}: {_git_error(exc)}") from exc


def commit_on_branch(root: Path, serving: Path, write_at, message: str, branch: str,
                     remote: str = "origin") -> RollbackCommit:
    """Commit the rollback on ``branch`` (from HEAD, in a temporary worktree so the checkout is left
    alone) and push it to ``remote``. If ``branch`` already exists there with the flag at
    full-precision, nothing is committed (the rollback is already proposed). Never force-pushes."""
    import git

    from compiler.serving import read_serving

    repo = _repo(root)
    top = Path(repo.working_tree_dir).resolve()
    rel = Path(serving).resolve().relative_to(top).as_posix()
    try:
        with repo.git.custom_environment(**_push_env()):
            exists = bool(repo.git.ls_remote("--heads", remote, f"refs/heads/{branch}").strip())
            if exists:
                repo.git.fetch(remote, f"refs/heads/{branch}")
    except git.GitCommandError as exc:
        raise Conflict(f"cannot read branch {branch} from {remote}: {_git_error(exc)}") from exc
    if exists and _is_ancestor(repo, "FETCH_HEAD", "HEAD"):
        exists = False  # an old rollback branch, already merged: a new rollback starts from HEAD
    with tempfile.TemporaryDirectory(prefix="quantgate-rollback-") as tmp:
        work = Path(tmp) / "worktree"
        start = "FETCH_HEAD" if exists else "HEAD"
        try:
            repo.git.worktree("add", "--detach", str(work), start)
            target = work / rel
            if exists:
                current = read_serving(target)
                if current is not None and current["active"] == FULL_PRECISION:
                    return RollbackCommit(None, branch)
            if not write_at(target):
                return RollbackCommit(None, branch)
            worktree = git.Repo(work)
            sha = _commit_file(worktree, rel, message)
            with worktree.git.custom_environment(**_push_env()):
                worktree.git.push(remote, f"HEAD:refs/heads/{branch}")
            return RollbackCommit(sha, branch)
        except git.GitCommandError as exc:
            raise Conflict(f"could not commit and push the rollback on {branch}: {_git_error(exc)}") from exc
        finally:
            try:
                repo.git.worktree("remove", "--force", str(work))
            except git.GitCommandError:
                repo.git.worktree("prune")


def _is_ancestor(repo, ancestor: str, descendant: str) -> bool:
    import git

    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
        return True
    except git.GitCommandError:
        return False


def open_pull_request(branch: str, base: str, title: str, body: str) -> str:
    """Open a pull request ``branch`` -> ``base`` with PyGithub, from the standard Actions
    environment (``GITHUB_API_URL``, ``GITHUB_REPOSITORY``, ``GITHUB_TOKEN``); returns its URL.
    An already open pull request for the branch is reused."""
    from github import Auth, Github, GithubException

    missing = [k for k in ("GITHUB_REPOSITORY", "GITHUB_TOKEN") if not os.environ.get(k)]
    if missing:
        raise InvalidInput(Problem(path="<environment>", message=f"--pr needs {', '.join(missing)} (set in GitHub Actions)"))
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com")
    client = Github(base_url=api, auth=Auth.Token(os.environ["GITHUB_TOKEN"]), retry=None)
    try:
        repo = client.get_repo(os.environ["GITHUB_REPOSITORY"])
        owner = os.environ["GITHUB_REPOSITORY"].split("/")[0]
        for pull in repo.get_pulls(state="open", head=f"{owner}:{branch}", base=base):
            return pull.html_url
        return repo.create_pull(title=title, body=body, head=branch, base=base).html_url
    except GithubException as exc:
        detail = exc.data.get("message") if isinstance(exc.data, dict) else exc.data
        raise Conflict(f"pushed {branch} but could not open the pull request: HTTP {exc.status}: {detail}") from exc


# ------------------------------------------------------------------------------------ the decision


@dataclass
class Outcome:
    name: str
    observations: list[Observation]
    state: str  # healthy | rolled-back | already-rolled-back | full-precision | would-roll-back | no-rules
    commit: RollbackCommit | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.state in ("rolled-back", "already-rolled-back", "would-roll-back") else 0


def monitor_manifest(manifest_path: Path, source, *, branch: str | None = None, pull_request: bool = False,
                     base: str | None = None, dry_run: bool = False) -> Outcome:
    """Evaluate one manifest's rollback rules against ``source`` and roll back on a breach.

    Every query runs before any decision, so ``MetricsUnavailable`` leaves everything unchanged.
    ``branch``: commit there and push (``pull_request``: and open one against ``base``); otherwise
    commit on the current branch. ``dry_run``: decide and report, change nothing.
    """
    from compiler.discover import lock_path, serving_path
    from compiler.load import load_manifest, load_repo_config
    from compiler.lockfile import read_lock, write_if_changed
    from compiler.rules import rollback_rules
    from compiler.serving import build_serving, dump_serving, read_serving, rolled_back

    manifest_path = Path(manifest_path)
    loaded = load_manifest(manifest_path)
    manifest, name = loaded.manifest, loaded.manifest.metadata.name
    monitoring = load_repo_config(loaded.root).monitoring
    rules = rollback_rules(manifest, monitoring)
    if not rules:
        return Outcome(name, [], "no-rules", notes=["the manifest sets no rollback rules"])

    target = serving_path(manifest_path)
    current = read_serving(target)
    if current is None:
        lock = read_lock(lock_path(manifest_path))
        if lock is None:
            raise InvalidInput(Problem(path=str(manifest_path), message="no serving file and no lock: nothing is deployed yet (run `quantgate run` first)"))
        rel_lock = lock_path(manifest_path).resolve().relative_to(Path(loaded.root).resolve()).as_posix()
        current = build_serving(manifest, lock, rel_lock, None)

    observations = evaluate(rules, source, monitoring.monitor_step)  # raises before any change
    breaches = [o for o in observations if o.breached]
    notes: list[str] = []

    if current["active"] == FULL_PRECISION:
        if current.get("rollback"):
            why = current["rollback"]
            notes.append(f"already rolled back ({why.get('rule')} {why.get('observed')} {why.get('operator', '')} {_shown(why.get('threshold'))}); "
                         "set active: quantized in a reviewed commit to serve the quantized model again")
            return Outcome(name, observations, "already-rolled-back", notes=notes)
        return Outcome(name, observations, "full-precision", notes=notes + ["no quantized artifact serves: nothing to roll back"])
    if not breaches:
        return Outcome(name, observations, "healthy", notes=notes)
    if dry_run:
        return Outcome(name, observations, "would-roll-back", notes=notes + ["--dry-run: nothing changed"])

    text = dump_serving(rolled_back(current, [b.record() for b in breaches]))
    message = commit_message(name, breaches, source.describe())

    def write(path: Path) -> bool:
        return write_if_changed(path, text)

    if branch is None:
        commit = commit_locally(loaded.root, target, lambda: write(target), message)
    else:
        commit = commit_on_branch(loaded.root, target, write, message, branch)
        if commit.sha is None:
            notes.append(f"branch {branch} already rolls back: no second commit")
        elif pull_request:
            url = open_pull_request(branch, base or _default_base(loaded.root), message.splitlines()[0],
                                    message.split("\n", 2)[2])
            commit = RollbackCommit(commit.sha, branch, url)
    state = "rolled-back" if commit.sha else "already-rolled-back"
    return Outcome(name, observations, state, commit, notes)


def _shown(value) -> str:
    return format_number(value) if isinstance(value, (int, float)) else str(value)


def _default_base(root: Path) -> str:
    """The branch the pull request targets: the Actions ref name, else the checked-out branch."""
    ref = os.environ.get("GITHUB_REF_NAME")
    if ref:
        return ref
    repo = _repo(root)
    if repo.head.is_detached:
        raise InvalidInput(Problem(path="--base", message="HEAD is detached: pass --base BRANCH for the pull request"))
    return repo.active_branch.name
