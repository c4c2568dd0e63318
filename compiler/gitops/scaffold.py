"""``quantgate init``: the files a repository needs for GitOps with quantgate.

- ``.github/workflows/<name>.yml`` for every ``*.yml`` in ``compiler/gitops/scaffold_templates/`` (the
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
from compiler.discover import manifest_paths
from compiler.errors import InvalidInput, Problem, Refused
from compiler.files import write_if_changed
from compiler.manifest.load import load_manifest
from compiler.manifest.model import OWNER_RE
from compiler.vocabulary import REVIEW_ROLES  # on_call is alerted, it does not review

WORKFLOW_DIR = Path(".github/workflows")
CODEOWNERS = Path(".github/CODEOWNERS")
CHECKLIST = Path(".github/quantgate-branch-protection.md")
BLOCK_BEGIN = "# BEGIN quantgate (managed by `quantgate init`; edit the manifests' owners instead)"
BLOCK_END = "# END quantgate"
VERSION_TOKEN = "__QUANTGATE_VERSION__"


@dataclass(frozen=True)
class Planned:
    path: Path  # relative to the repository root
    content: str
    managed_block: bool = False  # CODEOWNERS: only our block is ours


def _templates():
    return resources.files("compiler.gitops") / "scaffold_templates"


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


@dataclass(frozen=True)
class Scaffolded:
    done: list[tuple[str, Path]]  # (written | unchanged, path relative to the root)
    notes: list[str]


def init(root: Path, admins: list[str], force: bool = False) -> Scaffolded:
    """``quantgate init``: plan and write the workflows, the CODEOWNERS block and the checklist.
    ``InvalidInput`` for an admin that is no GitHub owner; ``Refused`` (nothing written) when a file
    exists with other content and not ``force``."""
    bad = [a for a in admins if not OWNER_RE.match(a)]
    if bad:
        raise InvalidInput([Problem(path="--admin", message=f"{a!r} is not a GitHub login ('@alice') or team ('@org/team')") for a in bad])
    root = Path(root).resolve()
    files, notes = plan(root, admins)
    done, refused = apply(root, files, force=force)
    if refused:
        raise Refused(
            "".join(f"note: {note}\n" for note in notes)
            + "these files exist with other content; nothing was written (rerun with --force to overwrite):\n"
            + "\n".join(f"  {p}" for p in refused)
        )
    return Scaffolded(done, notes)
