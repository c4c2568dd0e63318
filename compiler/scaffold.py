"""``quantgate init``: the files a repository needs for GitOps with quantgate.

- ``.github/workflows/<name>.yml`` for every ``*.yml`` in ``compiler/templates/scaffold/`` (the
  pull-request workflow, the sign-off workflow, and whatever other plays ship a template, e.g. the
  scheduled monitor), with ``__QUANTGATE_VERSION__`` filled in. Nothing else is templated: the
  files are GitHub Actions YAML exactly as checked by actionlint and zizmor.
- a managed block in ``.github/CODEOWNERS``: each manifest (and the files quantgate writes beside
  it) owned by the people its manifest names, ``quantgate.yaml`` and the workflows by the admins.
  Text outside the block is kept byte for byte.
- ``.github/quantgate-branch-protection.md``: the settings to make in the repository by hand.

Idempotent: a second run changes nothing. A file that exists with other content is refused unless
``force`` (the user may have edited it).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from compiler import __version__

WORKFLOW_DIR = Path(".github/workflows")
CODEOWNERS = Path(".github/CODEOWNERS")
CHECKLIST = Path(".github/quantgate-branch-protection.md")
BLOCK_BEGIN = "# BEGIN quantgate (managed by `quantgate init`; edit the manifests' owners instead)"
BLOCK_END = "# END quantgate"
VERSION_TOKEN = "__QUANTGATE_VERSION__"
#: Roles whose people review a manifest's pull requests (on_call is alerted, it does not review).
REVIEW_ROLES = ("ml_engineer", "platform_lead", "product_owner", "engineering_manager")


@dataclass(frozen=True)
class Planned:
    path: Path  # relative to the repository root
    content: str
    managed_block: bool = False  # CODEOWNERS: only our block is ours


def _templates():
    return resources.files("compiler") / "templates" / "scaffold"


def workflow_files() -> dict[str, str]:
    """file name -> rendered content of every workflow template, sorted by name."""
    found = {}
    for entry in sorted(_templates().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yml") and entry.is_file():
            found[entry.name] = entry.read_text(encoding="utf-8").replace(VERSION_TOKEN, __version__)
    return found


def checklist() -> str:
    return (_templates() / "branch-protection.md").read_text(encoding="utf-8").replace(VERSION_TOKEN, __version__)


def codeowners_block(root: Path, admins: list[str]) -> tuple[str, list[str]]:
    """The managed CODEOWNERS block and notes about manifests it could not read."""
    from compiler.discover import manifest_paths
    from compiler.errors import InvalidInput
    from compiler.load import load_manifest

    lines = [BLOCK_BEGIN]
    notes = []
    admin_text = " ".join(admins)
    if admin_text:
        lines += [
            f"/quantgate.yaml {admin_text}",
            f"/.github/workflows/quantgate-*.yml {admin_text}",
            f"/.github/CODEOWNERS {admin_text}",
        ]
    for path in manifest_paths(root):
        rel = path.relative_to(root).as_posix()
        try:
            manifest = load_manifest(path, root).manifest
        except InvalidInput:
            notes.append(f"{rel}: not valid yet, left out of CODEOWNERS (run quantgate validate)")
            continue
        people: list[str] = []
        for role in REVIEW_ROLES:
            people += [o for o in manifest.owners.of(role) if o not in people]
        if not people:
            continue
        stem = rel.rsplit(".", 1)[0]
        # the manifest and the lock/rules/serving files beside it share the stem
        lines.append(f"/{stem}.* {' '.join(people)}")
        lines.append(f"/reports/{manifest.metadata.name}/ {' '.join(people)}")
    lines.append(BLOCK_END)
    return "\n".join(lines) + "\n", notes


def merge_block(existing: str, block: str) -> str:
    """``existing`` with the managed block replaced (or appended), everything else untouched."""
    if BLOCK_BEGIN in existing and BLOCK_END in existing:
        head, rest = existing.split(BLOCK_BEGIN, 1)
        _, tail = rest.split(BLOCK_END, 1)
        return head + block.rstrip("\n") + tail
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return existing + ("\n" if existing else "") + block


def plan(root: Path, admins: list[str]) -> tuple[list[Planned], list[str]]:
    files = [Planned(WORKFLOW_DIR / name, text) for name, text in workflow_files().items()]
    block, notes = codeowners_block(root, admins)
    files.append(Planned(CODEOWNERS, block, managed_block=True))
    files.append(Planned(CHECKLIST, checklist()))
    return files, notes


def apply(root: Path, files: list[Planned], force: bool = False) -> tuple[list[tuple[str, Path]], list[Path]]:
    """Write the planned files. Returns ([(written|unchanged, path)], [refused paths]); refused
    files are left alone and nothing is written when any file is refused (all or nothing)."""
    from compiler.lockfile import write_if_changed

    outcomes: list[tuple[str, Path, str]] = []
    refused = []
    for item in files:
        target = root / item.path
        current = target.read_text(encoding="utf-8") if target.is_file() else None
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
