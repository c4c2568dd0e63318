"""``quantgate init``: the files a repository needs for GitOps with quantgate.

- ``.github/workflows/<name>.yml`` for every ``*.yml`` in ``compiler/gitops/scaffold_templates/`` (the
  pull-request workflow, the sign-off workflow, and whatever other plays ship a template, e.g. the
  scheduled monitor), with ``__QUANTGATE_VERSION__`` filled in and the quantgate action
  (``action.yml`` at the root of quantgate's repository) pinned: ``uses: OWNER/REPO@<commit>``, the
  exact commit of the quantgate that wrote them (``action_ref``), or ``uses: ./`` in quantgate's own
  repository. Nothing is installed from a package index. Otherwise the files are GitHub Actions YAML
  exactly as checked by actionlint and zizmor.
- a managed block in ``.github/CODEOWNERS``: each manifest (and the files quantgate writes beside
  it) owned by the people its manifest names, ``quantgate.yaml``, the schema and the workflows by the
  admins (default: the manifests' platform leads). Text outside the block is kept byte for byte.
- ``.github/quantgate-branch-protection.md``: the settings to make in the repository by hand.
- when the repository has none yet: ``quantgate.yaml`` (every default, commented) and a starter
  manifest ``manifests/example.yaml``; and ``schemas/manifest.schema.json``, so the manifests'
  ``# yaml-language-server: $schema=../schemas/manifest.schema.json`` modeline resolves.

Idempotent: a second run changes nothing. A file that exists with other content is refused unless
``force`` (the user may have edited it).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from compiler import __version__
from compiler.clients.git import Git, GitError
from compiler.discover import MANIFEST_DIR, REPO_CONFIG, manifest_paths
from compiler.errors import InvalidInput, Problem, Refused
from compiler.files import write_if_changed
from compiler.manifest.load import load_manifest
from compiler.manifest.model import OWNER_RE
from compiler.manifest.schemas import is_quantgate_repository, render_schema
from compiler.vocabulary import REVIEW_ROLES, Role  # on_call is alerted, it does not review

WORKFLOW_DIR = Path(".github/workflows")
CODEOWNERS = Path(".github/CODEOWNERS")
CHECKLIST = Path(".github/quantgate-branch-protection.md")
BLOCK_BEGIN = "# BEGIN quantgate (managed by `quantgate init`; edit the manifests' owners instead)"
BLOCK_END = "# END quantgate"
VERSION_TOKEN = "__QUANTGATE_VERSION__"
#: What the templates say in ``uses:`` for the quantgate action: a well-formed, pinned, non-existent
#: reference (so the raw templates lint too), replaced by ``action_ref()`` when written.
ACTION_PLACEHOLDER = "quantgate-placeholder/quantgate@0000000000000000000000000000000000000000"
LOCAL_ACTION = "./"
SCHEMA_COPY = Path("schemas/manifest.schema.json")
STARTER_MANIFEST = Path(MANIFEST_DIR) / "example.yaml"
#: Where a pin can come from, first hit wins; see ``action_ref``.
ACTION_ENV = "QUANTGATE_ACTION"
RECORDED = "_source.txt"  # compiler/_source.txt: "OWNER/REPO@SHA", written by action.yml before installing
_PIN = re.compile(r"^(?P<repo>[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+)@(?P<sha>[0-9a-f]{40})$")
_GITHUB_URL = re.compile(r"github\.com[:/](?P<repo>[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+?)(?:\.git)?/?$")


@dataclass(frozen=True)
class Planned:
    path: Path  # relative to the repository root
    content: str
    managed_block: bool = False  # CODEOWNERS: only our block is ours
    only_if_missing: bool = False  # a starter file: written once, the user's from then on


def _templates():
    return resources.files("compiler.gitops") / "scaffold_templates"


# ------------------------------------------------------------------------- which quantgate wrote this


def _pin(text: str | None) -> str | None:
    text = (text or "").strip()
    return text if _PIN.match(text) else None


def _from_direct_url() -> tuple[str | None, Path | None]:
    """PEP 610: how pip installed quantgate. A git URL gives the pin; a local folder, where it was."""
    try:
        raw = metadata.distribution("quantgate").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None, None
    if not raw:
        return None, None
    try:
        info = json.loads(raw)
    except ValueError:
        return None, None
    url = str(info.get("url", ""))
    vcs = info.get("vcs_info") or {}
    if vcs.get("vcs") == "git" and vcs.get("commit_id"):
        found = _GITHUB_URL.search(url)
        return (_pin(f"{found['repo']}@{vcs['commit_id']}") if found else None), None
    if url.startswith("file://"):
        return None, Path(url[len("file://"):])
    return None, None


def _from_checkout(source: Path) -> str | None:
    """``OWNER/REPO@HEAD`` of a git checkout of quantgate (origin on github.com)."""
    if not (source / ".git").exists():
        return None
    try:
        repo = Git(source)
        sha = repo.head()
        found = _GITHUB_URL.search(repo.run("remote", "get-url", "origin"))
    except GitError:
        return None
    return _pin(f"{found['repo']}@{sha}") if found else None


def action_ref(explicit: str | None = None) -> str:
    """``OWNER/REPO@SHA`` of the quantgate that is running, for the workflows' ``uses:``. In order:
    ``explicit`` (``init --action``), ``$QUANTGATE_ACTION``, ``compiler/_source.txt`` (recorded by
    ``action.yml`` when it installed quantgate), pip's PEP 610 record of a ``git+https://github.com/...``
    install, then ``git rev-parse HEAD`` + ``origin`` of the checkout quantgate runs from (an editable
    or a local-folder install). ``InvalidInput`` when none answers: a workflow pinned to a guess would
    run someone else's code."""
    if explicit is not None:
        if _pin(explicit) is None:
            raise InvalidInput(Problem(path="--action", message=f"{explicit!r} is not OWNER/REPO@<40-hex commit sha>"))
        return explicit
    found = _pin(os.environ.get(ACTION_ENV))
    if found:
        return found
    try:
        found = _pin((resources.files("compiler") / RECORDED).read_text(encoding="utf-8"))
    except (FileNotFoundError, OSError):
        found = None
    if found:
        return found
    found, folder = _from_direct_url()
    if found:
        return found
    for source in filter(None, (Path(__file__).resolve().parents[2], folder)):
        found = _from_checkout(source)
        if found:
            return found
    raise InvalidInput(Problem(
        path="--action",
        message="cannot tell which quantgate commit is running, so the workflows cannot pin the quantgate action; "
                "pass --action OWNER/REPO@<commit sha> (the repository and commit you install quantgate from), "
                f"or set ${ACTION_ENV}",
    ))


def workflow_files(action: str = ACTION_PLACEHOLDER) -> dict[str, str]:
    """file name -> rendered content of every workflow template, sorted by name; ``action`` is what
    ``uses:`` names for the quantgate action (``OWNER/REPO@SHA``, or ``./`` in quantgate's own repository)."""
    found = {}
    for entry in sorted(_templates().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yml") and entry.is_file():
            text = entry.read_text(encoding="utf-8").replace(VERSION_TOKEN, __version__)
            found[entry.name] = text.replace(ACTION_PLACEHOLDER, action)
    return found


def checklist() -> str:
    return (_templates() / "branch-protection.md").read_text(encoding="utf-8").replace(VERSION_TOKEN, __version__)


def manifest_owner_lines(root: Path, extra: dict[Path, str] | None = None) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """(repo-relative manifest -> its CODEOWNERS lines, the platform leads named anywhere, notes).
    ``extra``: manifests about to be written (relative path -> text), read as if they were there."""
    owned: dict[str, list[str]] = {}
    leads: list[str] = []
    notes: list[str] = []
    paths = {p.relative_to(root).as_posix(): p for p in manifest_paths(root)}
    for rel_path in extra or {}:
        paths.setdefault(Path(rel_path).as_posix(), root / rel_path)
    for rel in sorted(paths):
        path = paths[rel]
        try:
            if path.is_file():
                manifest = load_manifest(path, root).manifest
            else:
                scratch = _scratch_manifest(root, rel, (extra or {})[Path(rel)])
                manifest = scratch.manifest
        except InvalidInput:
            notes.append(f"{rel}: not valid yet, left out of CODEOWNERS (run quantgate validate)")
            continue
        people: list[str] = []
        for role in REVIEW_ROLES:
            people += [o for o in manifest.owners.of(role) if o not in people]
        leads += [o for o in manifest.owners.of(Role.PLATFORM_LEAD) if o not in leads]
        if not people:
            continue
        stem = rel.rsplit(".", 1)[0]
        # the manifest and the lock/rules/serving files beside it share the stem
        owned[rel] = [f"/{stem}.* {' '.join(people)}", f"/reports/{manifest.metadata.name}/ {' '.join(people)}"]
    return owned, leads, notes


def _scratch_manifest(root: Path, rel: str, text: str):
    """Load a manifest that is not written yet (the starter) from a temporary copy."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return load_manifest(path, Path(tmp))


def codeowners_block(root: Path, admins: list[str], extra: dict[Path, str] | None = None) -> tuple[str, list[str]]:
    """The managed CODEOWNERS block and notes about manifests it could not read. Without ``admins``,
    the platform leads the manifests name own quantgate.yaml, the schema and the workflows."""
    lines = [BLOCK_BEGIN]
    owned, leads, notes = manifest_owner_lines(root, extra)
    admin_text = " ".join(admins or leads)
    if admin_text:
        lines += [
            f"/{REPO_CONFIG} {admin_text}",
            f"/{SCHEMA_COPY.as_posix()} {admin_text}",
            f"/.github/workflows/quantgate-*.yml {admin_text}",
            f"/.github/CODEOWNERS {admin_text}",
        ]
    elif not owned:
        notes.append("CODEOWNERS: no manifest names owners and no --admin was given; the block owns nothing yet")
    for rel in sorted(owned):
        lines += owned[rel]
    lines.append(BLOCK_END)
    return "\n".join(lines) + "\n", notes


CODEOWNERS_LOCATIONS = (Path(".github/CODEOWNERS"), Path("CODEOWNERS"), Path("docs/CODEOWNERS"))


def codeowners_gaps(root: Path) -> list[str]:
    """What the repository's CODEOWNERS no longer says about its manifests (for ``verify``): a
    manifest its quantgate block does not cover, or covers with other owners than the manifest now
    names. Empty when it matches, or when there is no quantgate block at all (not adopted)."""
    root = Path(root)
    text = next((((root / p).read_text(encoding="utf-8"), p) for p in CODEOWNERS_LOCATIONS if (root / p).is_file()), None)
    if text is None or BLOCK_BEGIN not in text[0]:
        return []
    content, where = text
    block = content.split(BLOCK_BEGIN, 1)[1].split(BLOCK_END, 1)[0]
    present = {line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")}
    owned, _, _ = manifest_owner_lines(root)
    gaps = []
    for rel, lines in sorted(owned.items()):
        missing = [line for line in lines if line not in present]
        if missing:
            gaps.append(f"{where.as_posix()}: {rel} is not owned as its manifest says "
                        f"(expected {'; '.join(missing)}); run quantgate init")
    return gaps


def merge_block(existing: str, block: str) -> str:
    """``existing`` with the managed block replaced (or appended), everything else untouched."""
    if BLOCK_BEGIN in existing and BLOCK_END in existing:
        head, rest = existing.split(BLOCK_BEGIN, 1)
        _, tail = rest.split(BLOCK_END, 1)
        return head + block.rstrip("\n") + tail
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return existing + ("\n" if existing else "") + block


def starter_manifest() -> str:
    return (_templates() / "starter-manifest.yaml").read_text(encoding="utf-8").replace(VERSION_TOKEN, __version__)


def starter_config() -> str:
    return (_templates() / "quantgate.yaml").read_text(encoding="utf-8").replace(VERSION_TOKEN, __version__)


def plan(root: Path, admins: list[str], action: str | None = None) -> tuple[list[Planned], list[str]]:
    own = is_quantgate_repository(root)
    uses = LOCAL_ACTION if own else action_ref(action)
    files = [Planned(WORKFLOW_DIR / name, text) for name, text in workflow_files(uses).items()]
    extra: dict[Path, str] = {}
    if not own and not manifest_paths(root):
        extra[STARTER_MANIFEST] = starter_manifest()
        files.append(Planned(STARTER_MANIFEST, extra[STARTER_MANIFEST], only_if_missing=True))
    if not own:
        files.append(Planned(Path(REPO_CONFIG), starter_config(), only_if_missing=True))
        files.append(Planned(SCHEMA_COPY, render_schema("compiler.manifest.model:Manifest")))
    block, notes = codeowners_block(root, admins, extra)
    files.append(Planned(CODEOWNERS, block, managed_block=True))
    files.append(Planned(CHECKLIST, checklist()))
    return files, notes


def apply(root: Path, files: list[Planned], force: bool = False) -> tuple[list[tuple[str, Path]], list[Path]]:
    """Write the planned files. Returns ([(written|unchanged, path)], [refused paths]); refused
    files are left alone and nothing is written when any file is refused (all or nothing)."""
    outcomes: list[tuple[str, Path, str]] = []
    refused = []
    for item in files:
        target = root / item.path
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if item.only_if_missing and current is not None:
            outcomes.append(("kept", item.path, current))
            continue
        content = merge_block(current or "", item.content) if item.managed_block else item.content
        if current is not None and current != content and not item.managed_block and not force:
            refused.append(item.path)
        outcomes.append(("written" if current != content else "unchanged", item.path, content))
    if refused:
        return [], refused
    done = []
    for state, path, content in outcomes:
        if state == "written":
            write_if_changed(root / path, content)
        done.append((state, path))
    return done, []


@dataclass(frozen=True)
class Scaffolded:
    done: list[tuple[str, Path]]  # (written | unchanged | kept, path relative to the root)
    notes: list[str]
    action: str = LOCAL_ACTION  # what the workflows' `uses:` names


def init(root: Path, admins: list[str], force: bool = False, action: str | None = None) -> Scaffolded:
    """``quantgate init``: plan and write the workflows, the CODEOWNERS block and the checklist.
    ``InvalidInput`` for an admin that is no GitHub owner; ``Refused`` (nothing written) when a file
    exists with other content and not ``force``."""
    bad = [a for a in admins if not OWNER_RE.match(a)]
    if bad:
        raise InvalidInput([Problem(path="--admin", message=f"{a!r} is not a GitHub login ('@alice') or team ('@org/team')") for a in bad])
    root = Path(root).resolve()
    files, notes = plan(root, admins, action)
    uses = LOCAL_ACTION if is_quantgate_repository(root) else action_ref(action)
    done, refused = apply(root, files, force=force)
    if refused:
        raise Refused(
            "".join(f"note: {note}\n" for note in notes)
            + "these files exist with other content; nothing was written (rerun with --force to overwrite):\n"
            + "\n".join(f"  {p}" for p in refused)
        )
    return Scaffolded(done, notes, uses)
