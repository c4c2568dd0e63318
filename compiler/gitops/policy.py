"""Who the repository trusts, read from the pull request's base commit, never from the pull request.

A pull request can change every file it contains, ``quantgate.yaml`` and the manifest's ``owners:``
included, so sign-off reads its policy from the base commit (``Git.show``):

- ``policy_at(repo, base)``: ``quantgate.yaml`` as the base branch has it (defaults when absent);
- ``manifest_policy_at(repo, base, rel)``: the owners (and ``signoff.distinct_signers``) a manifest
  has on the base branch, or None for a manifest the pull request adds;
- ``owner_refusals(owners, allow_list, team_members)``: a new manifest's owners that the base
  branch's ``owners:`` allow-list does not vouch for;
- ``pushers(...)``: who authored or committed a commit of the pull request that changes the
  manifest, its data, its model or ``quantgate.yaml`` (they cannot sign it, unless
  ``signoff.pusher_can_sign``);
- ``allow_list_from(root)``: a starting ``owners:`` allow-list from the repository's manifests and
  CODEOWNERS (what ``quantgate init`` proposes).
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.clients.git import Git
from compiler.clients.github import PullCommit, parse_team
from compiler.discover import MANIFEST_DIR, REPO_CONFIG, manifest_paths
from compiler.errors import InvalidInput, Problem
from compiler.gitops.changed import references
from compiler.manifest import load
from compiler.manifest.load import load_manifest
from compiler.manifest.model import Owners
from compiler.manifest.repo_config import RepoConfig
from compiler.manifest.source import Source
from compiler.vocabulary import Role

#: The policy key named in refusals.
ALLOW_LIST_KEY = f"{REPO_CONFIG} owners:"


def _known(repo: Git, commit: str) -> str:
    sha = repo.commit_of(commit)
    if sha is None:
        # never fall back to the pull request's own files: that is the attack this module stops
        raise InvalidInput(Problem(path="--pr", message=(
            f"the base commit {commit[:12]} is not in this checkout, so the repository's policy cannot be read "
            "from it (check out with fetch-depth: 0)")))
    return sha


def parse_repo_config(text: str, shown: str) -> RepoConfig:
    """``quantgate.yaml`` from its text (``compiler.manifest.load.parse_repo_config``, the same rules
    as the working tree's); ``InvalidInput`` locating each problem."""
    return load.parse_repo_config(Source(shown, text))


def policy_at(repo: Git, commit: str) -> RepoConfig:
    """``quantgate.yaml`` at ``commit`` (all defaults when that commit has none)."""
    sha = _known(repo, commit)
    text = repo.show(sha, REPO_CONFIG)
    return RepoConfig() if text is None else parse_repo_config(text, f"{sha[:12]}:{REPO_CONFIG}")


@dataclass(frozen=True)
class BaseManifest:
    """What the base branch's version of a manifest says about who signs it."""

    owners: dict[str, list[str]]
    distinct_signers: bool
    references: tuple[str, ...]  # data files and the model directory it names


def _lenient_tree(text: str) -> Any:
    from ruamel.yaml import YAML, YAMLError

    try:
        return YAML(typ="safe").load(text)
    except YAMLError:
        return None


def manifest_policy_at(repo: Git, commit: str, relpath: str) -> BaseManifest | None:
    """The manifest at ``relpath`` as ``commit`` has it; None when it is not there (a new manifest).
    Its ``owners:`` must validate: owners that cannot be read there are a refusal, never a fallback
    to the pull request's."""
    sha = _known(repo, commit)
    text = repo.show(sha, relpath)
    if text is None:
        return None
    tree = _lenient_tree(text)
    tree = tree if isinstance(tree, dict) else {}
    try:
        owners = Owners.model_validate(tree.get("owners") or {})
    except Exception as exc:  # noqa: BLE001 - pydantic's error, reported as invalid input
        raise InvalidInput(Problem(path=f"{sha[:12]}:{relpath}", key_path="owners",
                                   message=f"the base branch's owners cannot be read: {exc}")) from exc
    signoff = tree.get("signoff") if isinstance(tree.get("signoff"), dict) else {}
    files, model_dir = references(tree)
    return BaseManifest(
        owners={role: owners.of(role) for role in Role.values()},
        distinct_signers=signoff.get("distinct_signers") is not False,
        references=tuple(files + ([model_dir] if model_dir else [])),
    )


def owners_differ(base: Mapping[str, Iterable[str]], head: Mapping[str, Iterable[str]]) -> list[str]:
    """Roles whose owners the pull request changes (case-insensitive, order ignored)."""
    def norm(owners: Iterable[str]) -> frozenset[str]:
        return frozenset(o.lower() for o in owners)

    return [role for role in Role.values() if norm(base.get(role, ())) != norm(head.get(role, ()))]


def owner_refusals(owners: Mapping[str, Iterable[str]], allow_list: Mapping[str, Iterable[str]],
                   team_members: Callable[[str, str], frozenset[str]]) -> tuple[list[str], list[str]]:
    """(refusals, notes) for a new manifest's owners under the base branch's allow-list: each owner
    must be listed for its role (same login or team), or be a login that is a member of a team
    listed for it. A role the allow-list does not mention allows nobody."""
    refusals: list[str] = []
    notes: list[str] = []
    for role, listed in owners.items():
        allowed = list(allow_list.get(role) or [])
        allowed_lower = {a.lower() for a in allowed}
        for owner in listed:
            if owner.lower() in allowed_lower:
                continue
            member_of = None
            if parse_team(owner) is None:
                login = owner.lstrip("@").lower()
                for team in (t for t in allowed if parse_team(t) is not None):
                    try:
                        if login in team_members(*parse_team(team)):
                            member_of = team
                            break
                    except Exception as exc:  # noqa: BLE001 - reported; the team then vouches for nobody
                        notes.append(f"could not resolve {team} of {ALLOW_LIST_KEY} {role}: {exc}")
            if member_of is None:
                where = ", ".join(allowed) if allowed else "nobody: the role is not in the allow-list"
                refusals.append(f"owners.{role}: {owner} is not allowed by {ALLOW_LIST_KEY} {role} on the base branch "
                                f"(allowed: {where})")
    return refusals, notes


def watched_paths(manifest_relpath: str, *references_: Iterable[str]) -> tuple[str, ...]:
    """The paths whose change is a change of what the owners sign: the manifest, ``quantgate.yaml``,
    and the paths in ``references_`` (the data files and model directory it names at head and at
    base, its lock)."""
    paths = {manifest_relpath, REPO_CONFIG}
    for group in references_:
        paths.update(posixpath.normpath(p) for p in group)
    return tuple(sorted(paths))


def _touches(changed: Iterable[str], watched: Iterable[str]) -> bool:
    watched = list(watched)
    return any(path == w or path.startswith(w.rstrip("/") + "/") for path in changed for w in watched)


def pushers(repo: Git, commits: Iterable[PullCommit], watched: Iterable[str]) -> dict[str, str]:
    """login -> the first commit (short sha) it authored or committed that changes a ``watched``
    path. A commit that is not in this checkout counts as changing them (it cannot be shown not to).
    Commits touching only other files (a README, another manifest's lock) make nobody a pusher; the
    bot's lock commits name only the bot, which owns no role."""
    watched = list(watched)
    found: dict[str, str] = {}
    for commit in commits:
        changed = repo.diff_paths(f"{commit.sha}^", commit.sha)
        if changed is not None and not _touches(changed, watched):
            continue
        for login in (commit.author, commit.committer):
            if login:
                found.setdefault(login.lower(), commit.sha[:12])
    return found


# ----------------------------------------------------------------------------- quantgate init


#: Where GitHub looks for CODEOWNERS (the same list as ``compiler.gitops.scaffold``, which may import
#: this module, so it is not imported from there).
CODEOWNERS_LOCATIONS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")


def _codeowners_manifest_owners(root: Path) -> list[str]:
    """Owners that CODEOWNERS, outside quantgate's managed block (which is derived from the
    manifests), gives the manifests folder."""
    path = next((root / p for p in CODEOWNERS_LOCATIONS if (root / p).is_file()), None)
    if path is None:
        return []
    probe = f"{MANIFEST_DIR}/x.yaml"
    found: list[str] = []
    managed = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("# BEGIN quantgate"):
            managed = True
        elif line.startswith("# END quantgate"):
            managed = False
        parts = line.split("#", 1)[0].split()
        if managed or len(parts) < 2:
            continue
        pattern = parts[0].lstrip("/").rstrip("/")
        pattern = pattern[: -len("/**")] if pattern.endswith("/**") else pattern
        if pattern in ("*", "**", MANIFEST_DIR) or fnmatch.fnmatch(probe, pattern) or fnmatch.fnmatch(probe, pattern + "/*"):
            found += [o for o in parts[1:] if o.startswith("@") and o.lower() not in {f.lower() for f in found}]
    return found


def allow_list_from(root: Path) -> dict[str, list[str]]:
    """A starting ``owners:`` allow-list for ``quantgate.yaml``: per role, every owner the
    repository's valid manifests name for it, plus the owners CODEOWNERS gives the manifests folder
    (outside quantgate's own block), which may own any role. Roles with nobody are left out (they
    allow nobody). Deterministic: role order, then first appearance in path order."""
    root = Path(root)
    allow: dict[str, list[str]] = {role: [] for role in Role.values()}

    def add(role: str, owner: str) -> None:
        if owner.lower() not in {o.lower() for o in allow[role]}:
            allow[role].append(owner)

    for path in manifest_paths(root):
        try:
            manifest = load_manifest(path, root).manifest
        except InvalidInput:
            continue
        for role in Role.values():
            for owner in manifest.owners.of(role):
                add(role, owner)
    for owner in _codeowners_manifest_owners(root):
        for role in Role.values():
            add(role, owner)
    return {role: owners for role, owners in allow.items() if owners}
