"""The pipeline, stage by stage, in a few dozen lines: load -> validate -> plan -> run -> lock -> render.

Each function here wires modules together and has no logic of its own; the CLI commands call these.
Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from compiler.discover import find_repo_root, manifest_paths
from compiler.errors import InvalidInput, Problem
from compiler.manifest.load import LoadedManifest, load_manifest, load_repo_config
from compiler.store import open_store


@dataclass
class Validation:
    """What ``validate`` found: the manifests that loaded and every problem (errors and warnings)."""

    loaded: list[LoadedManifest] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    checked: list[Path] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def load(path: Path, root: Path | None = None) -> LoadedManifest:
    """Parse and validate one manifest on its own (no repository checks); ``InvalidInput`` if bad."""
    return load_manifest(Path(path), root)


#: The commit ``quantgate.yaml`` (repository policy) is read from when set: in CI, the pull
#: request's base, so a PR cannot change the policy that judges it (its own copy is ignored).
POLICY_REF_ENV = "QUANTGATE_POLICY_REF"


def repo_policy(root: Path, policy_ref: str | None = None):
    """``quantgate.yaml`` as repository policy: at ``policy_ref`` (default ``$QUANTGATE_POLICY_REF``)
    when one is given, else the working tree's."""
    import os

    from compiler.clients.git import Git
    from compiler.gitops.policy import policy_at

    ref = policy_ref or os.environ.get(POLICY_REF_ENV) or None
    return policy_at(Git.open(Path(root)), ref) if ref else load_repo_config(Path(root))


def validate(paths: list[Path] | None = None, root: Path | None = None, policy_ref: str | None = None) -> Validation:
    """Validate ``paths`` (default: every manifest under ``root/manifests``), file and repository
    checks, collecting every problem of every file instead of stopping at the first bad file.
    Repository policy comes from ``policy_ref`` (see ``repo_policy``)."""
    from compiler.manifest.checks import forget_paths, manifest_names, repo_problems

    forget_paths()
    root = Path(root) if root is not None else find_repo_root(Path(paths[0]) if paths else Path.cwd())
    paths = [Path(p) for p in paths] if paths else manifest_paths(root)
    result = Validation(checked=paths)
    try:
        config = repo_policy(root, policy_ref)
    except InvalidInput as exc:
        result.problems.extend(exc.problems)
        config = None
    for path in paths:
        try:
            result.loaded.append(load_manifest(path, root))
        except InvalidInput as exc:
            result.problems.extend(exc.problems)
    if config is not None and result.loaded:
        known = {m.path: m.manifest.metadata.name for m in result.loaded}
        names = manifest_names(sorted(set(manifest_paths(root)) | set(known)), known)
        for loaded in result.loaded:
            result.problems.extend(repo_problems(loaded, config, names))
    return result


def load_checked(path: Path, root: Path | None = None) -> LoadedManifest:
    """One manifest that passed every check (file and repository); ``InvalidInput`` otherwise.
    Warnings (a model directory not materialised yet) do not stop it: the runner reports those."""
    path = Path(path)
    root = Path(root) if root is not None else find_repo_root(path)
    result = validate([path], root)
    if result.errors:
        raise InvalidInput(result.errors)
    return result.loaded[0]


def write_schemas(root: Path, check: bool = False, output: Path | None = None) -> list[Path]:
    """Regenerate the JSON Schemas under ``root/schemas`` and the manifest reference
    (``docs/manifest.md``); the files that changed (or, with ``check``, the stale ones: nothing is
    written). ``output``: only the JSON Schemas, into that folder."""
    from compiler.manifest.schemas import write_schemas as _write

    return _write(Path(root), check=check, output=output)


# ------------------------------------------------------------- plan, run, verify, report (plays 1-8)


def plan(path: Path, root: Path | None = None):
    """The plan for one manifest (``compiler.playbook.plan.Plan``): which plays run, why, their cache keys.
    Loads no model; refuses a plan no registered backend can execute (declared capabilities, not what is installed)."""
    from compiler.discover import lock_path
    from compiler.playbook.journal import Journal
    from compiler.playbook.lockfile import read_lock
    from compiler.playbook.plan import make_plan

    loaded = load_checked(path, root)
    lock = read_lock(lock_path(loaded.path))
    return make_plan(loaded, lock, Journal(loaded.root, loaded.manifest.metadata.name), trusted_by_store(loaded.root, lock))


@dataclass
class RunResult:
    """What ``run`` did: the plan, the funnel's outcome, the lock (as written) and what changed."""

    plan: object
    outcome: object
    lock: dict
    lock_path: Path
    lock_written: bool
    report_written: list[Path]


def run(path: Path, runner=None, events=None, root: Path | None = None, wait_s: float = 5.0,
        force: str | None = None) -> RunResult:
    """Plan, execute through ``runner`` (default: ``runners.local.LocalRunner``), lock, report.

    One run per manifest at a time (``Conflict`` after ``wait_s``); resumable from the journal.
    ``force``: a play; it and every play after it run even when a result for their key is recorded."""
    from compiler.discover import lock_path, report_dir
    from compiler.playbook.execute import execute
    from compiler.playbook.journal import Journal, run_guard
    from compiler.playbook.lockfile import build_lock, read_lock, write_lock
    from compiler.playbook.plan import make_plan, manifest_sections

    loaded = load_checked(path, root)
    name = loaded.manifest.metadata.name
    with run_guard(loaded.root, name, wait_s=wait_s):
        target = lock_path(loaded.path)
        previous = read_lock(target)
        journal = Journal(loaded.root, name)
        known_lock, known_journal = (previous, journal) if force is None else _forgetting(previous, journal, forced_plays(force))
        policy = repo_policy(loaded.root)  # at $QUANTGATE_POLICY_REF in CI: the base branch's
        the_plan = make_plan(loaded, known_lock, known_journal, trusted_by_store(loaded.root, known_lock, policy))
        if runner is None:
            from runners.local import LocalRunner

            runner = LocalRunner()
        outcome = execute(the_plan, loaded.root, runner, known_journal, known_lock, events, tuple(policy.pickle_allowed))
        written = write_lock(target, build_lock(the_plan, outcome, previous, manifest_sections(loaded)))
        lock = read_lock(target).data()
        # The report is a pure function of the lock: an unchanged lock with its report in place
        # needs no re-render (matplotlib is the slow part of a no-op run); `quantgate report` forces it.
        report_file = report_dir(loaded.root, name) / "report.md"
        reports = write_report(loaded.root, lock) if written or not report_file.is_file() else []
        if outcome.verdict == "locked":
            from compiler.monitoring.rules import write_rules
            from compiler.monitoring.serving import write_serving

            write_rules(loaded.path, loaded.root)
            write_serving(loaded.path, lock)
    return RunResult(the_plan, outcome, lock, target, written, reports)


def write_report(root: Path, lock: dict) -> list[Path]:
    """Render ``reports/<name>/report.md`` (+ PNG plots) from a lock; the files that changed."""
    from compiler.discover import report_dir
    from compiler.playbook.lockfile import write_if_changed
    from compiler.report.plots import write_plots
    from compiler.report.render import render_report_markdown

    folder = report_dir(Path(root), lock["name"])
    plots, changed = write_plots(folder, lock, Path(root))
    report = folder / "report.md"
    if write_if_changed(report, render_report_markdown(lock, plots, root=Path(root))):
        changed.append(report)
    return changed


def report(path: Path, root: Path | None = None) -> list[Path]:
    """Re-render the report of a locked manifest (``InvalidInput`` when it has no lock yet)."""
    from compiler.discover import lock_path
    from compiler.playbook.lockfile import read_lock

    loaded = load_checked(path, root)
    lock = read_lock(lock_path(loaded.path))
    if lock is None:
        raise InvalidInput(Problem(path=loaded.display_path, message="no lock yet: run `quantgate run` first"))
    return write_report(loaded.root, lock.data())


def verify(paths: list[Path] | None = None, root: Path | None = None, remote: bool = False, deep: bool = False,
           provenance: bool = False) -> list:
    """Check each manifest's lock: hashes, gate, artifact. A ``compiler.playbook.verify.Verdict`` per manifest.
    ``remote``: also that every locked artifact is in the store named by quantgate.yaml (``deep``:
    streamed and hashed); with ``artifacts.required`` a missing one fails, else it is a note.
    ``provenance``: also that every locked result is the one CI recorded in the store."""
    from compiler.playbook.verify import verify_manifest

    root = Path(root) if root is not None else find_repo_root(Path(paths[0]) if paths else Path.cwd())
    paths = [Path(p) for p in paths] if paths else manifest_paths(root)
    store, required, by_ci = None, False, None
    config = load_repo_config(root)
    if remote or deep:
        store, required = open_store(config.artifacts.store, root), config.artifacts.required
    if provenance:
        if not config.artifacts.store:
            raise InvalidInput(Problem(path="quantgate.yaml", key_path="artifacts.store",
                                       message="--provenance needs a store: results are unverified without one (set artifacts.store)"))
        by_ci = open_store(config.artifacts.store, root)
    verdicts = [verify_manifest(load_checked(p, root), store, required, deep, by_ci) for p in paths]
    # CODEOWNERS must still route each manifest to the owners it names (sign-offs are reviews).
    for gap in _scaffold.codeowners_gaps(root):
        for verdict in verdicts:
            if f" {verdict.manifest} " in f" {gap} ":
                verdict.problems.append(gap)
    return verdicts


# ----------------------------------------------------------------- the artifact store (play 7 beyond this machine)


def trusted_by_store(root: Path, lock, policy=None) -> dict[str, bool] | None:
    """With a store configured: play -> whether the lock's result is the one CI recorded there (a
    play is cached only then). Without one: None (the lock is taken as written, unverified).
    The store is repository policy (``repo_policy``, the base branch's in CI): a pull request that
    named a store of its own would have it vouch for forged results."""
    from compiler.playbook.provenance import trusted_results

    config = policy if policy is not None else repo_policy(Path(root))
    if not config.artifacts.store:
        return None
    return trusted_results(lock, open_store(config.artifacts.store, Path(root)))


def artifact_store(root: Path):
    """The store ``quantgate.yaml`` names (``artifacts.store``; default: the local artifacts/ folder)."""
    return open_store(load_repo_config(Path(root)).artifacts.store, Path(root))


def push(paths: list[Path] | None = None, root: Path | None = None, where: dict[str, str] | None = None) -> list:
    """Upload each locked manifest's artifact and full-precision fallback to the store; record where
    in its lock. A ``compiler.playbook.publish.Published`` per manifest."""
    from compiler.discover import lock_path
    from compiler.playbook.publish import push_lock

    root = Path(root) if root is not None else find_repo_root(Path(paths[0]) if paths else Path.cwd())
    paths = [Path(p) for p in paths] if paths else manifest_paths(root)
    store = artifact_store(root)
    out = []
    for path in paths:
        loaded = load_checked(path, root)
        out.append(push_lock(loaded, lock_path(loaded.path), store, where))
    return out


def pull(target: Path, dest: Path, root: Path | None = None) -> dict:
    """Fetch a manifest's (or serving file's) active and fallback artifacts into ``dest``, verified
    against its lock: {"quantized": Path, "full-precision": Path or "source@revision"}."""
    from compiler.discover import lock_path
    from compiler.playbook.lockfile import read_lock
    from compiler.playbook.publish import pull_lock

    target = Path(target)
    if target.name.endswith(".serving.yaml"):
        target = target.with_name(target.name[: -len(".serving.yaml")] + ".yaml")
    loaded = load_checked(target, root)
    lock = read_lock(lock_path(loaded.path))
    if lock is None:
        raise InvalidInput(Problem(path=loaded.display_path, message="no lock yet: nothing to pull"))
    return pull_lock(lock, artifact_store(loaded.root), Path(dest))


# ------------------------------------------------- GitOps and monitoring: one function per command
# (imports kept with the section they serve; quantgate's own modules, all light: git and PyGithub
# load only when a client is used)

import os  # noqa: E402

from compiler.clients import actions as _actions  # noqa: E402
from compiler.clients.git import GitAuth as _GitAuth  # noqa: E402
from compiler.discover import lock_path as _lock_path  # noqa: E402
from compiler.gitops import changed as _changed  # noqa: E402
from compiler.gitops import comment as _comment  # noqa: E402
from compiler.gitops import commitback as _commitback  # noqa: E402
from compiler.gitops import scaffold as _scaffold  # noqa: E402
from compiler.gitops import signoff as _signoff  # noqa: E402
from compiler.monitoring import compile as _compile_rules  # noqa: E402
from compiler.monitoring import monitor as _monitor  # noqa: E402
from compiler.playbook.lockfile import read_lock as _read_lock  # noqa: E402
from compiler.report.render import render_comment_markdown as _render_comment  # noqa: E402


def changed(root: Path, base: str, head: str | None = None, publish: bool = True) -> _changed.ChangedManifests:
    """The manifests ``base...head`` touches, as a ``strategy.matrix`` (``publish``: also written to
    ``$GITHUB_OUTPUT`` inside Actions)."""
    labels = repo_policy(Path(root), base).runner_labels  # the base branch's policy, never the PR's
    return _changed.changed_manifests(Path(root), base, head, publish=publish, runner_labels=labels)


def comment(manifest: Path, pull_request: int | None, *, body_file: str | None = None, bot_login: str | None = None,
            summary_only: bool = False, root: Path | None = None, dry_run: bool = False) -> _comment.Posted | str:
    """Post or update the manifest's one comment on the pull request (and the job summary). The body
    is ``body_file`` (``-``: stdin) or the plan with the lock's results. ``dry_run``: post nothing,
    append nothing; return the exact comment text that would be posted."""
    if body_file:
        body = _comment.read_body(body_file)
    else:
        lock = _read_lock(_lock_path(Path(manifest)))
        the_plan = plan(manifest, root)
        body = _render_comment(lock.data() if lock is not None else None, the_plan, marker="",
                               root=Path(root) if root is not None else find_repo_root(Path(manifest)))
    if dry_run:
        return _comment.compose(_changed.manifest_name(Path(manifest)), body)
    return _comment.post_comment(_changed.manifest_name(Path(manifest)), body, pull_request,
                                 bot_login=bot_login, summary_only=summary_only)


def sign_off(manifest: Path, pull_request: int, *, sha: str | None = None, record: bool = True,
             set_status: bool = True, root: Path | None = None) -> _signoff.SignoffResult:
    """Decide from the pull request's reviews whether the owners the base branch trusts signed (policy,
    owners and the results approvals are bound to: ``compiler.gitops.signoff``); record it in the
    lock and set ``quantgate/signoff`` (GitHub context from the Actions environment)."""
    return _signoff.sign_off(Path(manifest), pull_request, sha=sha, record=record, set_status=set_status, root=root)


def commit_back(root: Path, manifests: list[Path] | None = None, paths: list[str] | None = None, *,
                message: str | None = None, what: str = "results", remote: str = "origin",
                branch: str | None = None, attempts: int = 5) -> _commitback.Pushed:
    """Commit quantgate's own files as the bot and push (never forced, retried over a moving branch).
    ``branch`` defaults to ``$GITHUB_HEAD_REF``, then the current branch; the push authenticates
    with ``$GITHUB_TOKEN`` when set."""
    return _commitback.commit_back(Path(root), manifests or [], paths or [], message=message, what=what, remote=remote,
                                   branch=branch or _actions.head_ref(), attempts=attempts, auth=_GitAuth.from_env())


def init(root: Path, admins: list[str], force: bool = False, action: str | None = None) -> _scaffold.Scaffolded:
    """Scaffold the workflows (the quantgate action pinned to ``action``, default: the running
    quantgate's commit), the CODEOWNERS block, the checklist, and a starter manifest,
    ``quantgate.yaml`` and the manifest schema where the repository has none."""
    return _scaffold.init(Path(root), admins, force=force, action=action)


def rules(manifests: list[Path] | None = None, check: bool = False) -> list[_compile_rules.CompiledRules]:
    """Compile each manifest's ``rollback:`` into its Prometheus rule file; ``check``: promtool too."""
    return _compile_rules.compile_rules(manifests, check=check)


def monitor(manifests: list[Path] | None = None, *, prometheus: str | None = None, snapshot: Path | None = None,
            timeout: float = 10.0, branch: bool = False, branch_name: str | None = None, pull_request: bool = False,
            base: str | None = None, dry_run: bool = False, require_data: bool = False) -> _monitor.MonitorRun:
    """Evaluate the rollback rules of each manifest (default: every deployed one) on live metrics
    (Prometheus, bearer token ``$PROMETHEUS_TOKEN``, or a snapshot file) and roll back on a breach."""
    source = _monitor.metrics_source(prometheus, snapshot, timeout, os.environ.get("PROMETHEUS_TOKEN") or None)
    return _monitor.monitor_manifests(list(manifests or []), source, branch=branch, branch_name=branch_name,
                                      pull_request=pull_request, base=base, dry_run=dry_run, require_data=require_data)


# ------------------------------------------------------- several manifests, forced re-runs (CLI)


def manifest_list(paths: list[Path] | None = None, root: Path | None = None) -> list[Path]:
    """``paths`` as given, or (``None``) every manifest under ``root/manifests``: how every command
    that takes manifests reads "none named"."""
    if paths is not None:
        return [Path(p) for p in paths]
    return manifest_paths(Path(root) if root is not None else find_repo_root(Path.cwd()))


def plans(paths: list[Path] | None = None, root: Path | None = None) -> list:
    """The plan of each manifest (default: every manifest), in order."""
    return [plan(p, root) for p in manifest_list(paths, root)]


def forced_plays(first: str) -> frozenset[str]:
    """``first`` and every cacheable play after it in playbook order (``run --force PLAY``)."""
    from compiler.vocabulary import Play

    order = [Play.BASELINE, Play.ENVELOPE, Play.PTQ, Play.MIXED_PRECISION, Play.QAT]
    names = [p.value for p in order]
    if first not in names:
        raise InvalidInput(Problem(path="--force", message=f"{first!r} is not a play that caches ({', '.join(names)})"))
    return frozenset(names[names.index(first):])


class _ForgetfulJournal:
    """A journal that does not know the results of ``plays`` recorded before this run (those the
    run writes are read back as usual)."""

    def __init__(self, journal, plays: frozenset[str]):
        self._journal, self._plays = journal, plays
        self._fresh: set[tuple[str, str]] = set()

    def get(self, play: str, key: str):
        if play in self._plays and (play, key) not in self._fresh:
            return None
        return self._journal.get(play, key)

    def put(self, play: str, key: str, result: dict) -> None:
        self._journal.put(play, key, result)
        self._fresh.add((play, key))

    def __getattr__(self, attr):
        return getattr(self._journal, attr)


class _ForgetfulLock:
    """A lock whose records of ``plays`` match no cache key (the rest reads through)."""

    def __init__(self, lock, plays: frozenset[str]):
        self._lock, self._plays = lock, plays

    def play(self, name: str):
        record = self._lock.play(name)
        return record.model_copy(update={"cache_key": ""}) if name in self._plays else record

    def __getattr__(self, attr):
        return getattr(self._lock, attr)


def _forgetting(lock, journal, plays: frozenset[str]):
    """(lock, journal) that treat ``plays`` as never run, for the plan and the funnel; the real lock
    is still what the new one is built on. (A stand-in until make_plan/execute take the set.)"""
    return (None if lock is None else _ForgetfulLock(lock, plays)), _ForgetfulJournal(journal, plays)


def report_path(path: Path, root: Path | None = None) -> Path:
    """Where ``quantgate report`` writes a manifest's report (``reports/<name>/report.md``)."""
    from compiler.discover import report_dir

    loaded = load(path, root)
    return report_dir(loaded.root, loaded.manifest.metadata.name) / "report.md"


# ------------------------------------------------ the publishing job: trust the run, then its results


def check_run(root: Path, base_ref: str, head_sha: str, workflow_path: str, base_root: Path | None = None) -> list[str]:
    """Problems that make the pull-request run at ``head_sha`` unfit to publish (its workflow file, or
    the local ``action.yml`` it installs quantgate from, differs from ``base_ref``'s), each naming
    the file; empty when the run may be published (``compiler.gitops.trust``)."""
    from compiler.gitops import trust

    return trust.check_untrusted_run(Path(root), base_ref, head_sha, workflow_path, base_root)


def pull_request_at(number: int, head_sha: str):
    """Pull request ``number`` as the GitHub API has it (Actions environment), ``Refused`` unless its
    head is ``head_sha``: the number comes from the untrusted run's artifact, the facts from the API."""
    from compiler.clients.github import GitHub, context_from_env
    from compiler.errors import Refused

    pr = GitHub(context_from_env()).pull_request(int(number))
    if pr.head_sha != head_sha:
        raise Refused(f"pull request #{number} is at {pr.head_sha[:12]}, not at the run's head {head_sha[:12]}: "
                      "the results belong to another commit")
    return pr


def place_results(results: Path, root: Path, base: str, head: str) -> list[str]:
    """Copy the quantgate files of the manifests ``base...head`` touches from the downloaded results
    into ``root`` (``compiler.gitops.trust.place_results``); the paths copied."""
    from compiler.gitops import trust

    touched = [t.manifest for t in changed(Path(root), base, head, publish=False).change.touched]
    try:
        return trust.place_results(Path(results), Path(root), touched)
    except ValueError as exc:
        raise InvalidInput(Problem(path=str(results), message=str(exc))) from None
