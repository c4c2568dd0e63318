"""Which manifests a change touches, read from git (gitpython): directly, or through a data file or
model directory a manifest references, or through ``quantgate.yaml`` (which every manifest reads).

A change is ``base...head`` as a pull request shows it: the diff from the merge base. Manifests are
read as they are at ``head`` (the working tree when no head is given). A manifest is parsed only as
far as finding its references: an invalid manifest still counts as touched, and its run job reports
the problems (``quantgate validate``). The result feeds a GitHub Actions ``strategy.matrix``.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from compiler.clients import actions
from compiler.clients.git import Git, GitError
from compiler.discover import MANIFEST_DIR, REPO_CONFIG, TOOL_SUFFIXES, manifest_paths
from compiler.errors import InvalidInput, Problem

REPORTS_DIR = "reports"


def is_quantgate_file(relpath: str) -> bool:
    """quantgate's own outputs, the only files commit-back commits and the only files a commit may
    change without making earlier approvals stale: ``*.lock.yaml``, ``*.rules.yaml``,
    ``*.serving.yaml``, and anything under ``reports/``."""
    path = posixpath.normpath(relpath.replace("\\", "/"))
    return path.endswith(TOOL_SUFFIXES) or path.startswith(REPORTS_DIR + "/")


def is_manifest_path(relpath: str) -> bool:
    path = posixpath.normpath(relpath)
    return (
        path.startswith(MANIFEST_DIR + "/")
        and path.endswith((".yaml", ".yml"))
        and not path.endswith(TOOL_SUFFIXES)
    )


@dataclass(frozen=True)
class Touched:
    manifest: str  # repo-relative posix path
    name: str
    device: str
    reasons: tuple[str, ...]  # repo-relative paths that changed, or "manifest"


@dataclass(frozen=True)
class Change:
    touched: tuple[Touched, ...]
    deleted: tuple[str, ...]  # manifests present at the merge base, gone at head


def _git(root: Path) -> Git:
    try:
        return Git.open(Path(root), search_parents=False)
    except GitError as exc:
        raise InvalidInput(Problem(path=str(root), message="not a git repository")) from exc


def _rev(repo: Git, ref: str, what: str) -> str:
    sha = repo.commit_of(ref)
    if sha is None:
        raise InvalidInput(
            Problem(path=f"--{what}", message=f"{ref!r} is not a commit here (fetch it: actions/checkout with fetch-depth: 0)")
        )
    return sha


def diff_names(root: Path, base: str, head: str | None = None) -> list[tuple[str, str]]:
    """(status letter, path) for ``base...head`` (head None: the working tree against the merge base,
    untracked files excluded). Renames show as a delete plus an add."""
    repo = _git(root)
    base_sha = _rev(repo, base, "base")
    return repo.changed_names(base_sha, None if head is None else _rev(repo, head, "head"))


def touches_only_quantgate_files(root: Path, commit: str, head: str) -> bool:
    """True when every file that differs between ``commit`` and ``head`` is quantgate's own. False
    when the commit is unknown here (a force-push dropped it): a stale approval is never counted."""
    paths = _git(root).diff_paths(commit, head)
    return paths is not None and all(is_quantgate_file(p) for p in paths)


def _load_yaml(text: str) -> Any:
    try:
        return YAML(typ="safe").load(text)
    except YAMLError:
        return None


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def references(tree: Any) -> tuple[list[str], str | None]:
    """(data files, model directory) a manifest tree names, repo-relative and normalised."""
    files = []
    for keys in (("evaluation", "dataset", "path"), ("quantization", "calibration", "dataset", "path")):
        value = _get(tree, *keys)
        if isinstance(value, str) and value.strip():
            files.append(posixpath.normpath(value.strip()))
    source = _get(tree, "model", "source")
    model_dir = posixpath.normpath(source) if isinstance(source, str) and source.startswith("./") else None
    return files, model_dir


def manifest_name(manifest: Path) -> str:
    """``metadata.name`` of a manifest file, read leniently (the file stem when it has none, or is
    not valid YAML): names the comment marker and commit messages even for a broken manifest."""
    try:
        name = _get(_load_yaml(Path(manifest).read_text(encoding="utf-8")), "metadata", "name")
    except (OSError, UnicodeDecodeError):
        name = None
    return name if isinstance(name, str) and name else Path(manifest).name.rsplit(".", 1)[0]


def _manifests_at(root: Path, head: str | None) -> dict[str, str]:
    """path -> text of every manifest at ``head`` (or in the working tree)."""
    if head is None:
        return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8", errors="replace") for p in manifest_paths(root)}
    repo = _git(root)
    return {path: repo.show(head, path) or "" for path in repo.tree_files(head, MANIFEST_DIR) if is_manifest_path(path)}


def changed(root: Path, base: str, head: str | None = None) -> Change:
    """The manifests ``base...head`` touches, in path order, and the manifests it deleted."""
    names = diff_names(root, base, head)
    changed_paths = {path for status, path in names if status != "D" or not is_manifest_path(path)}
    deleted = tuple(sorted(path for status, path in names if status == "D" and is_manifest_path(path)))
    config_changed = REPO_CONFIG in {path for _, path in names}
    touched = []
    for path, text in sorted(_manifests_at(root, head).items()):
        tree = _load_yaml(text)
        data_files, model_dir = references(tree)
        reasons = []
        if path in changed_paths:
            reasons.append("manifest")
        # A lock edited in the pull request is untrusted input: CI re-plans it (and, with a store,
        # re-runs every play whose result the store does not vouch for). Before, a lock-only commit
        # gave an empty matrix, so a hand-edited lock was never re-checked.
        lock = path[: -len(".yaml")] + ".lock.yaml"
        if lock in changed_paths:
            reasons.append(lock)
        reasons += sorted(p for p in changed_paths if p in data_files)
        if model_dir:
            reasons += sorted(p for p in changed_paths if p.startswith(model_dir + "/"))
        if config_changed:
            reasons.append(REPO_CONFIG)
        if not reasons:
            continue
        name = _get(tree, "metadata", "name")
        device = _get(tree, "envelope", "device")
        touched.append(
            Touched(
                manifest=path,
                name=name if isinstance(name, str) and name else Path(path).stem,
                device=device if device in ("cpu", "cuda") else "cpu",
                reasons=tuple(dict.fromkeys(reasons)),
            )
        )
    return Change(touched=tuple(touched), deleted=deleted)


def matrix(change: Change, runner_labels) -> dict:
    """``{"include": [{"manifest", "name", "runs_on"}]}`` for ``strategy.matrix``; ``runs_on`` from
    the repository's ``runner_labels`` (compiler.manifest.repo_config.RunnerLabels) by envelope device."""
    return {
        "include": [
            {"manifest": t.manifest, "name": t.name, "runs_on": list(getattr(runner_labels, t.device))}
            for t in change.touched
        ]
    }


@dataclass(frozen=True)
class ChangedManifests:
    """What ``quantgate changed`` reports: the change, and its ``strategy.matrix``."""

    change: Change
    matrix: dict


def changed_manifests(root: Path, base: str, head: str | None = None, publish: bool = True, runner_labels=None) -> ChangedManifests:
    """The manifests ``base...head`` touches and their matrix (``runs_on`` from ``runner_labels``, the
    caller's repository policy: ``api.changed`` reads it at ``base``, so a pull request cannot route
    its jobs to runners of its choosing).
    ``publish``: inside Actions also write ``matrix=`` and ``count=`` to ``$GITHUB_OUTPUT`` (a job
    skips an empty matrix on ``count``: GitHub rejects an empty ``include``)."""
    root = Path(root).resolve()
    change = changed(root, base, head)
    result = matrix(change, runner_labels)
    if publish:
        actions.set_outputs(matrix=json.dumps(result, separators=(",", ":")), count=len(result["include"]))
    return ChangedManifests(change, result)
