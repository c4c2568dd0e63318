"""Play 8, part 3: evaluate the rollback rules on live metrics and roll back as one git commit.

``evaluate(rules, source)`` reads every rule's value first (so a broken endpoint changes nothing);
``monitor(...)`` then decides: healthy -> nothing; a breach while the quantized artifact serves ->
``active: full-precision`` in the serving file, committed once (locally, or on a branch pushed to
``origin`` with an optional pull request). A serving file that already says full-precision is never
committed again: a second breach report is a no-op. Git goes through ``compiler.clients.git`` (the
commit is the bot's, the push never forced) and the pull request through ``compiler.clients.github``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from compiler.clients import actions
from compiler.clients.git import BOT_EMAIL, BOT_NAME, Git, GitAuth, GitError
from compiler.clients.github import GitHub, GitHubError, context_from_env
from compiler.discover import find_repo_root, lock_path, manifest_paths, serving_path
from compiler.errors import Conflict, ExitCode, InvalidInput, Problem, QuantgateError
from compiler.files import write_if_changed
from compiler.manifest.load import load_manifest, load_repo_config
from compiler.manifest.quantities import parse_duration
from compiler.monitoring.metrics_source import MetricsUnavailable, PrometheusSource, SnapshotSource, held_query
from compiler.monitoring.rules import RULES, Rule, format_number, rollback_rules
from compiler.monitoring.serving import (
    FULL_PRECISION,
    QUANTIZED,
    build_serving,
    dump_serving,
    read_serving,
    rolled_back,
)
from compiler.playbook.lockfile import read_lock

__all__ = ["BOT_EMAIL", "BOT_NAME", "Outcome", "evaluate", "monitor_manifest", "monitor_manifests"]


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


@dataclass(frozen=True)
class RollbackCommit:
    sha: str | None  # None: nothing committed (already rolled back there)
    branch: str | None  # None: committed on the current branch
    pull_request: str | None = None


def commit_locally(repo: Git, serving: Path, write, message: str) -> RollbackCommit:
    """Run ``write()`` (which changes the serving file) and commit the file on the current branch.
    If the commit fails, the file is restored: no half-done rollback is left behind."""
    rel = repo.relpath(serving)
    before = Path(serving).read_bytes() if Path(serving).exists() else None
    if not write():
        return RollbackCommit(None, None)
    try:
        return RollbackCommit(repo.commit_paths([rel], message), None)
    except GitError as exc:
        if before is None:
            Path(serving).unlink(missing_ok=True)
        else:
            Path(serving).write_bytes(before)
        raise Conflict(f"could not commit the rollback of {rel}: {exc}") from exc


def commit_on_branch(repo: Git, serving: Path, write_at, message: str, branch: str,
                     remote: str = "origin") -> RollbackCommit:
    """Commit the rollback on ``branch`` (from HEAD, in a temporary worktree so the checkout is left
    alone) and push it to ``remote``. If ``branch`` already exists there with the flag at
    full-precision, nothing is committed (the rollback is already proposed). Never force-pushes."""
    rel = repo.relpath(serving)
    try:
        tip = repo.fetch(remote, branch) if repo.remote_has_branch(remote, branch) else None
    except GitError as exc:
        raise Conflict(f"cannot read branch {branch} from {remote}: {exc}") from exc
    if tip is not None and repo.is_ancestor(tip, "HEAD"):
        tip = None  # an old rollback branch, already merged: a new rollback starts from HEAD
    try:
        with repo.worktree(tip or "HEAD") as work:
            target = work.root / rel
            if tip is not None:
                current = read_serving(target)
                if current is not None and current["active"] == FULL_PRECISION:
                    return RollbackCommit(None, branch)
            if not write_at(target):
                return RollbackCommit(None, branch)
            sha = work.commit_paths([rel], message)
            work.push(remote, branch)
            return RollbackCommit(sha, branch)
    except GitError as exc:
        raise Conflict(f"could not commit and push the rollback on {branch}: {exc}") from exc


def open_pull_request(github: GitHub, branch: str, base: str, title: str, body: str) -> str:
    """Open (or reuse) the rollback pull request ``branch`` -> ``base``; its URL. A failure is a
    ``Conflict``: the branch is pushed, the pull request is missing."""
    try:
        return github.open_pull_request(branch, base, title, body)
    except GitHubError as exc:
        raise Conflict(f"pushed {branch} but could not open the pull request: {exc.reason()}") from exc


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

    @property
    def missing_data(self) -> list[str]:
        return [o.rule.name for o in self.observations if o.value is None]


def _lock_data(lock) -> dict:
    return lock.data() if hasattr(lock, "data") else dict(lock)


def monitor_manifest(manifest_path: Path, source, *, branch: str | None = None, pull_request: bool = False,
                     base: str | None = None, dry_run: bool = False, auth: GitAuth | None = None,
                     github: GitHub | None = None) -> Outcome:
    """Evaluate one manifest's rollback rules against ``source`` and roll back on a breach.

    Every query runs before any decision, so ``MetricsUnavailable`` leaves everything unchanged.
    ``branch``: commit there and push (``pull_request``: and open one against ``base``, through
    ``github``, default from the Actions environment); otherwise commit on the current branch.
    ``auth``: the token for the push (default ``$GITHUB_TOKEN``). ``dry_run``: decide and report,
    change nothing.
    """
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
        current = build_serving(manifest, _lock_data(lock), rel_lock, None)

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
    repo = Git.open(loaded.root, auth or GitAuth.from_env())

    def write(path: Path) -> bool:
        return write_if_changed(path, text)

    if branch is None:
        commit = commit_locally(repo, target, lambda: write(target), message)
    else:
        commit = commit_on_branch(repo, target, write, message, branch)
        if commit.sha is None:
            notes.append(f"branch {branch} already rolls back: no second commit")
        elif pull_request:
            url = open_pull_request(github or GitHub(context_from_env()), branch, base or _default_base(repo),
                                    message.splitlines()[0], message.split("\n", 2)[2])
            commit = RollbackCommit(commit.sha, branch, url)
    state = "rolled-back" if commit.sha else "already-rolled-back"
    return Outcome(name, observations, state, commit, notes)


def _shown(value) -> str:
    return format_number(value) if isinstance(value, (int, float)) else str(value)


def _default_base(repo: Git) -> str:
    """The branch the pull request targets: the Actions ref name, else the checked-out branch."""
    base = actions.ref_name() or repo.current_branch()
    if base is None:
        raise InvalidInput(Problem(path="--base", message="HEAD is detached: pass --base BRANCH for the pull request"))
    return base


# ------------------------------------------------------------------------------ every manifest


@dataclass(frozen=True)
class Monitored:
    """One manifest's result: its outcome, or the error that stopped it (the others still ran)."""

    manifest: Path
    outcome: Outcome | None = None
    error: QuantgateError | None = None

    @property
    def exit_code(self) -> int:
        return int(self.error.exit_code) if self.error is not None else self.outcome.exit_code


@dataclass(frozen=True)
class MonitorRun:
    results: tuple[Monitored, ...]

    @property
    def exit_code(self) -> int:
        """Unreadable metrics and errors outrank a rollback: someone must look at the monitor itself."""
        codes = [r.exit_code for r in self.results]
        errors = [c for c in codes if c not in (ExitCode.OK, ExitCode.REFUSED)]
        return max(errors) if errors else max(codes, default=0)


def deployed_manifests(root: Path | None = None) -> list[Path]:
    """Every manifest under ``manifests/`` with a serving file or a lock, relative to the current
    directory where it lies below it."""
    root = root or find_repo_root(Path.cwd())
    found = [p for p in manifest_paths(root) if serving_path(p).is_file() or lock_path(p).is_file()]
    cwd = Path.cwd().resolve()
    return [p.resolve().relative_to(cwd) if p.resolve().is_relative_to(cwd) else p for p in found]


def metrics_source(prometheus: str | None = None, snapshot: Path | None = None, timeout: float = 10.0,
                   token: str | None = None):
    """A ``PrometheusSource`` (bearer ``token``) or a ``SnapshotSource``; exactly one of the two."""
    if prometheus:
        return PrometheusSource(prometheus, timeout, token)
    if snapshot is None:
        raise InvalidInput(Problem(path="--prometheus", message="name a Prometheus URL or a snapshot file"))
    return SnapshotSource(snapshot, RULES)


def monitor_manifests(manifests: list[Path], source, *, branch: bool = False, branch_name: str | None = None,
                      pull_request: bool = False, base: str | None = None, dry_run: bool = False,
                      require_data: bool = False) -> MonitorRun:
    """``monitor_manifest`` for each manifest (default: every deployed one). One broken manifest or
    endpoint does not hide the others' results. ``pull_request`` implies a branch, by default
    ``quantgate/rollback-<name>``; ``require_data``: a rule without data is unreadable metrics."""
    results = []
    for manifest_path in manifests or deployed_manifests():
        manifest_path = Path(manifest_path)
        try:
            target = None
            if branch or pull_request or branch_name:
                target = branch_name or f"quantgate/rollback-{load_manifest(manifest_path).manifest.metadata.name}"
            outcome = monitor_manifest(manifest_path, source, branch=target, pull_request=pull_request,
                                       base=base, dry_run=dry_run)
            if require_data and outcome.missing_data:
                raise MetricsUnavailable(f"{manifest_path}: no data for {', '.join(outcome.missing_data)} (--require-data)")
        except QuantgateError as exc:
            results.append(Monitored(manifest_path, error=exc))
            continue
        results.append(Monitored(manifest_path, outcome))
    return MonitorRun(tuple(results))
