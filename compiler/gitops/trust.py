"""The publishing job's first check: were these results produced by the workflow the base branch trusts?

A ``pull_request`` run executes the pull request's own copy of its workflow file, so a pull request
can rewrite the untrusted workflow (skip the plays, forge the lock, install another quantgate) and
still upload an artifact the trusted ``workflow_run`` workflow would publish. The publishing job
therefore refuses a run unless, at the run's head commit,

- the workflow file that produced it is byte for byte the base branch's (its ``uses:`` pin of the
  quantgate action included: a changed pin line is named on its own);
- when that workflow installs quantgate through the local action (``uses: ./``, quantgate's own
  repository), ``action.yml`` is the base branch's too.

``check_untrusted_run`` compares the files with ``compiler.clients.git.Git``: the head commit in
``root`` (the pull-request checkout: data only, nothing of it is executed), the base in
``base_root`` (the trusted checkout; default ``root``). It returns the problems, each naming the
file; empty means the run may be published.

``place_results`` then copies exactly quantgate's files for the touched manifests (lock, rules,
serving flag, ``reports/<name>/``, the locked artifact folder) from the downloaded artifact into
the pull-request checkout, refusing symbolic links and paths outside those places, so an artifact
cannot write anywhere else.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path, PurePosixPath

from compiler.clients.git import Git
from compiler.gitops.changed import manifest_name
from compiler.playbook.lockfile import read_lock

#: a full commit sha
_SHA = re.compile(r"^[0-9a-f]{40}$")
#: a ``uses:`` line (the quantgate action's pin is one of them)
_USES = re.compile(r"^\s*(?:-\s*)?uses:\s*(?P<ref>\S+)")
LOCAL_ACTION = "./"
ACTION_FILE = "action.yml"


def _workflow_problem(workflow_path: str) -> str | None:
    path = PurePosixPath(workflow_path)
    if path.is_absolute() or ".." in path.parts or len(path.parts) != 3 or path.parts[:2] != (".github", "workflows") \
            or path.suffix not in (".yml", ".yaml"):
        return f"{workflow_path}: not a workflow file (.github/workflows/<name>.yml)"
    return None


def clean_workflow_path(raw: str) -> str:
    """``github.event.workflow_run.path`` without a ``@ref`` suffix (GitHub adds one for some runs)."""
    return raw.split("@", 1)[0].strip()


def _uses(text: str) -> list[str]:
    return [m["ref"] for m in map(_USES.match, text.splitlines()) if m]


def _compare(path: str, base_text: str | None, head_text: str | None) -> list[str]:
    if base_text is None:
        return [f"{path}: not on the base branch; only the base branch's workflows may produce results to publish"]
    if head_text is None:
        return [f"{path}: not in the pull request's head commit"]
    if base_text == head_text:
        return []
    pins = sorted(set(_uses(head_text)) - set(_uses(base_text)))
    detail = f" (its uses: pins changed: {', '.join(pins)})" if pins else ""
    return [f"{path}: the pull request changed it{detail}; results from a run of a changed workflow are not published "
            "(merge the workflow change first, then push again)"]


def check_untrusted_run(root: Path, base_ref: str, head_sha: str, workflow_path: str,
                        base_root: Path | None = None) -> list[str]:
    """Problems that make the pull-request run at ``head_sha`` untrustworthy, each naming the file:
    ``workflow_path`` (and ``action.yml`` when the workflow uses the local action) differs between
    ``head_sha`` (in ``root``) and ``base_ref`` (in ``base_root``, default ``root``). Empty: publish."""
    workflow_path = clean_workflow_path(workflow_path)
    bad = _workflow_problem(workflow_path)
    if bad:
        return [bad]
    if not _SHA.match(head_sha or ""):
        return [f"{head_sha!r}: not a full commit sha"]
    head_repo, base_repo = Git(Path(root)), Git(Path(base_root) if base_root is not None else Path(root))
    if head_repo.commit_of(head_sha) != head_sha:
        return [f"{workflow_path}: the head commit {head_sha[:12]} is not in {root}; check out the pull request's head first"]
    base = base_repo.commit_of(base_ref)
    if base is None:
        return [f"{workflow_path}: the base {base_ref!r} is not a commit in {base_root or root}"]
    base_text, head_text = base_repo.show(base, workflow_path), head_repo.show(head_sha, workflow_path)
    problems = _compare(workflow_path, base_text, head_text)
    if LOCAL_ACTION in _uses(base_text or "") + _uses(head_text or ""):
        problems += _compare(ACTION_FILE, base_repo.show(base, ACTION_FILE), head_repo.show(head_sha, ACTION_FILE))
    return problems


# --------------------------------------------------------------------- placing the uploaded results


def _inside(root: Path, rel: str) -> Path:
    """``root/rel`` after refusing absolute paths, ``..`` and symbolic links on the way."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise ValueError(f"{rel}: not a relative path inside the repository")
    path = root
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise ValueError(f"{rel}: {path.relative_to(root)} is a symbolic link")
    return path


def _copy_file(source: Path, target: Path, rel: str) -> None:
    if source.is_symlink() or not source.is_file():
        raise ValueError(f"{rel}: not a plain file in the results")
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    shutil.copyfile(source, target)


def _copy_tree(results: Path, root: Path, rel: str) -> list[str]:
    source = _inside(results, rel)
    if not source.is_dir():
        return []
    copied = []
    for item in sorted(source.rglob("*")):
        name = f"{rel}/{item.relative_to(source).as_posix()}"
        if item.is_symlink():
            raise ValueError(f"{name}: a symbolic link in the results")
        if item.is_file():
            _copy_file(item, _inside(root, name), name)
            copied.append(name)
    return copied


def place_results(results: Path, root: Path, manifests: list[str]) -> list[str]:
    """Copy the touched manifests' quantgate files from ``results`` (the downloaded artifact, laid
    out like the repository) into ``root``; the repo-relative paths copied. ``ValueError`` naming
    the path for a symbolic link or a path that leaves its place."""

    results, root = Path(results), Path(root)
    copied: list[str] = []
    for manifest in manifests:
        if not (manifest.endswith(".yaml") and PurePosixPath(manifest).parts[:1] == ("manifests",)):
            raise ValueError(f"{manifest}: not a manifest under manifests/")
        stem = manifest[: -len(".yaml")]
        for kind in ("lock", "rules", "serving"):
            rel = f"{stem}.{kind}.yaml"
            source = _inside(results, rel)
            if source.is_file() or source.is_symlink():
                _copy_file(source, _inside(root, rel), rel)
                copied.append(rel)
        name = manifest_name(_inside(root, manifest))
        if "/" in name or name in ("", ".", ".."):
            raise ValueError(f"{manifest}: metadata.name {name!r} is not a folder name")
        copied += _copy_tree(results, root, f"reports/{name}")
        lock = read_lock(_inside(root, f"{stem}.lock.yaml")) if f"{stem}.lock.yaml" in copied else None
        if lock is not None and lock.final is not None:
            folder = PurePosixPath(lock.final.artifact.path)
            if folder.parts[:1] != ("artifacts",):
                raise ValueError(f"{stem}.lock.yaml: final.artifact.path {folder} is not under artifacts/")
            copied += _copy_tree(results, root, folder.as_posix())
    return copied
