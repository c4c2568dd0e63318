"""Read a manifest: bytes -> text -> ruamel round-trip tree (positions, comments) -> ``Manifest``.

Contract: ``load_manifest(path, root=None) -> LoadedManifest`` or ``InvalidInput`` listing every
problem found, each located as ``path:line:col: key.path: message`` with the offending line. No input,
however broken (binary, non-UTF-8, merge conflict, alias bomb, wrong types), escapes as a traceback.

The stages stop at the first stage that fails, because later stages need what earlier ones produce:
reading (size, UTF-8, binary, conflict markers, tabs) -> YAML parsing (syntax, duplicate keys,
aliases) -> shape (mapping, apiVersion, kind) -> the pydantic model (all field problems at once).
Checks that need the repository (paths exist, names unique, trust allowlist) are
``compiler.manifest.checks``'s.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from compiler.discover import REPO_CONFIG, find_repo_root
from compiler.errors import InvalidInput, Problem
from compiler.manifest.fastyaml import Unsure, fast_load
from compiler.manifest.locate import manifest_problems, model_problems
from compiler.manifest.repo_config import RepoConfig
from compiler.manifest.source import Source

#: Manifests are a page or two of YAML; anything past this is a mistake or an attack.
MAX_BYTES = 1024 * 1024
#: Nodes the document may expand to once aliases are followed (a "billion laughs" stays far away).
MAX_EXPANDED_NODES = 10_000
MAX_ALIASES = 100

#: Characters YAML 1.2 does not allow in a stream (its "printable" set, complemented).
_NOT_YAML_PRINTABLE = re.compile("[^\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CONFLICT_RE = re.compile(r"^(<{7}|={7}|>{7}|\|{7})(?: |$)")


@dataclass(frozen=True)
class LoadedManifest:
    """A manifest as written (``tree``, ``text``) and as understood (``manifest``).

    ``tree`` is the ruamel round-trip ``CommentedMap`` (positions, comments); it is parsed on first
    use, because a valid manifest is read with the much faster libyaml (``compiler.manifest.fastyaml``).
    """

    path: Path
    root: Path
    manifest: Any  # compiler.manifest.model.Manifest (imported lazily: pydantic model building is the cost)
    text: str
    sha256: str
    parsed_tree: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def tree(self) -> Any:
        if self.parsed_tree is not None:
            return self.parsed_tree
        return parse_yaml(Source(self.display_path, self.text))

    @property
    def display_path(self) -> str:
        return display(self.path, self.root)


def display(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when inside it (what users and GitHub annotations expect)."""
    if root is not None:
        path, root = Path(path), Path(root)
        if path.is_absolute() == root.is_absolute():  # the common case needs no file-system calls
            try:
                return path.relative_to(root).as_posix()
            except ValueError:
                pass
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except (ValueError, OSError, RuntimeError):
            pass
    return str(path)


# ---------------------------------------------------------------------------------------- reading


def read_source(path: Path, shown: str, max_bytes: int = MAX_BYTES) -> tuple[bytes, Source]:
    """The file's bytes and decoded text, or ``InvalidInput`` for unreadable, huge, binary or
    non-UTF-8 files."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise InvalidInput(Problem(shown, "not a file"))
        if size > max_bytes:
            raise InvalidInput(Problem(shown, f"file is {size} bytes; manifests are limited to {max_bytes} bytes"))
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInput(Problem(shown, "no such file")) from exc
    except IsADirectoryError as exc:
        raise InvalidInput(Problem(shown, "not a file")) from exc
    except OSError as exc:
        raise InvalidInput(Problem(shown, f"cannot read: {exc.strerror or exc}")) from exc
    return data, decode(data, shown)


def decode(data: bytes, shown: str) -> Source:
    """Strict UTF-8 (a BOM is tolerated), no NUL bytes, no control characters YAML refuses."""
    if len(data) > MAX_BYTES:
        raise InvalidInput(Problem(shown, f"file is {len(data)} bytes; manifests are limited to {MAX_BYTES} bytes"))
    if b"\x00" in data:
        line, col = _line_col(data, data.index(b"\x00"))
        raise InvalidInput(Problem(shown, "binary data (a NUL byte): a manifest is UTF-8 YAML text", line, col))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, col = _line_col(data, exc.start)
        bad = data[exc.start:exc.start + 1].hex()
        raise InvalidInput(Problem(shown, f"not UTF-8 (byte 0x{bad}): save the file as UTF-8", line, col)) from exc
    source = Source(shown, text)
    bad = _NOT_YAML_PRINTABLE.search(text)
    if bad:
        line = text.count("\n", 0, bad.start()) + 1
        col = bad.start() - (text.rfind("\n", 0, bad.start()) + 1) + 1
        raise InvalidInput(source.problem(
            f"control character U+{ord(bad.group()):04X}: binary data or a copy-paste accident", line, col))
    return source


def _line_col(data: bytes, offset: int) -> tuple[int, int]:
    before = data[:offset]
    line = before.count(b"\n") + 1
    return line, offset - (before.rfind(b"\n") + 1) + 1


def text_problems(source: Source) -> list[Problem]:
    """Problems visible in the text before parsing: merge-conflict markers and tab indentation."""
    problems: list[Problem] = []
    if "\t" not in source.text and not any(m in source.text for m in ("<<<<<<<", "=======", ">>>>>>>", "|||||||")):
        return problems
    for number, line in enumerate(source.lines, start=1):
        if _CONFLICT_RE.match(line):
            problems.append(source.problem(
                f"merge-conflict marker '{line[:7]}': resolve the conflict (keep one side) and remove the markers",
                number, 1))
        indent = len(line) - len(line.lstrip(" \t"))
        if "\t" in line[:indent]:
            problems.append(source.problem(
                "tab in indentation: YAML indents with spaces only", number, line.index("\t") + 1))
    return problems


# ---------------------------------------------------------------------------------------- parsing


def parse_yaml(source: Source) -> Any:
    """The ruamel round-trip tree (CommentedMap/Seq with ``.lc`` positions and comments), or
    ``InvalidInput`` for syntax errors, duplicate keys, alias bombs. An empty document is ``None``."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    yaml = YAML(typ="rt", pure=True)
    yaml.allow_duplicate_keys = False
    try:
        tree = yaml.load(source.text)
    except MarkedYAMLError as exc:
        raise InvalidInput(_yaml_problem(source, exc)) from exc
    except YAMLError as exc:
        raise InvalidInput(source.problem(f"YAML error: {_one_line(str(exc))}", 1, 1)) from exc
    except RecursionError as exc:
        raise InvalidInput(source.problem("YAML nested too deeply", 1, 1)) from exc
    except (ValueError, TypeError, OverflowError) as exc:  # constructors of odd scalars (dates, ints)
        raise InvalidInput(source.problem(f"YAML value cannot be read: {_one_line(str(exc))}", 1, 1)) from exc
    check_aliases(source, tree)
    return tree


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _yaml_problem(source: Source, exc: Any) -> Problem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else 1
    col = mark.column + 1 if mark is not None else 1
    problem = (exc.problem or "").strip()
    context = (exc.context or "").strip()
    if type(exc).__name__ == "DuplicateKeyError":
        key = re.search(r'found duplicate key "(.*?)"', problem)
        if not key:
            return source.problem("duplicate key", line, col)
        first = _first_use(source, key.group(1), exc.context_mark.line + 1 if exc.context_mark else 1, line, col)
        where = f" (first at line {first})" if first else ""
        return source.problem(f"duplicate key {key.group(1)!r}{where}: a key may appear once per mapping", line, col)
    if "\t" in problem or "'\\t'" in problem:
        return source.problem("tab character: YAML indents with spaces only", line, col)
    if context and context not in problem:
        start = exc.context_mark
        at = f" started at line {start.line + 1}" if start is not None and start.line + 1 != line else ""
        problem += f" ({context}{at})"
    message = f"YAML syntax error: {problem}"
    return source.problem(_one_line(message), line, col)


def _first_use(source: Source, key: str, start: int, line: int, col: int) -> int | None:
    """The line where a block mapping first used ``key`` at the same indentation (None if unsure)."""
    for number in range(start, line):
        text = source.lines[number - 1]
        if len(text) - len(text.lstrip(" ")) == col - 1 and re.match(rf"""['"]?{re.escape(key)}['"]?\s*:""", text[col - 1:]):
            return number
    return None


def check_aliases(source: Source, tree: Any) -> None:
    """Refuse documents whose aliases expand past ``MAX_EXPANDED_NODES`` nodes, that use more than
    ``MAX_ALIASES`` aliases, or that refer to themselves. Counted without expanding anything."""
    sizes: dict[int, int] = {}
    seen: set[int] = set()
    on_path: set[int] = set()
    aliases = 0

    def size(node: Any) -> int:
        nonlocal aliases
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in on_path:
            raise InvalidInput(source.problem("an alias refers to the node that contains it (recursive YAML)", *_pos(node)))
        if key in seen:
            aliases += 1
            if aliases > MAX_ALIASES:
                raise InvalidInput(source.problem(f"more than {MAX_ALIASES} aliases: refusing to expand", *_pos(node)))
            return sizes[key]
        seen.add(key)
        on_path.add(key)
        children = node.values() if isinstance(node, dict) else node
        total = 1 + sum(size(child) for child in children)
        on_path.discard(key)
        sizes[key] = total
        if total > MAX_EXPANDED_NODES:
            raise InvalidInput(source.problem(
                f"document expands to more than {MAX_EXPANDED_NODES} nodes (an anchor/alias bomb?): refusing to expand",
                *_pos(node)))
        return total

    try:
        size(tree)
    except RecursionError as exc:
        raise InvalidInput(source.problem("YAML nested too deeply", 1, 1)) from exc


def _pos(node: Any) -> tuple[int, int]:
    lc = getattr(node, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line + 1, (lc.col or 0) + 1
    return 1, 1


# -------------------------------------------------------------------------------------- top level


def _parse_mapping(source: Source, allow_empty: bool = False) -> Any:
    """Parse ``source`` with ruamel into a top-level mapping, or ``InvalidInput``. An empty file (or
    one with only comments) is an error unless ``allow_empty``, which yields an empty mapping."""
    from ruamel.yaml.comments import CommentedMap

    tree = parse_yaml(source)
    if tree is None and allow_empty:
        tree = CommentedMap()
    if tree is None:
        raise InvalidInput(source.problem(
            "the file is empty: a manifest starts with 'apiVersion: quantgate/v1' and 'kind: QuantizationManifest'", 1, 1))
    if not isinstance(tree, dict):
        kind = "a list" if isinstance(tree, list) else "a single value"
        line, col = _pos(tree) if isinstance(tree, list) else _first_content(source)
        raise InvalidInput(source.problem(
            f"the top level is {kind}; expected a mapping of keys (apiVersion: ..., kind: ..., metadata: ...)", line, col))
    return tree


def _first_content(source: Source) -> tuple[int, int]:
    for number, line in enumerate(source.lines, start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and stripped not in ("---", "..."):
            return number, len(line) - len(line.lstrip()) + 1
    return 1, 1


def load_manifest(path: Path, root: Path | None = None) -> LoadedManifest:
    """Load and validate one manifest file (checks that need only the file itself).

    ``root`` is the repository root (default: found from ``path``); paths in messages are shown
    relative to it. Raises ``InvalidInput`` with every problem found.
    """

    path = Path(path)
    root = Path(root) if root is not None else find_repo_root(path)
    shown = display(path, root)
    data, source = read_source(path, shown)
    problems = text_problems(source)
    if problems:
        raise InvalidInput(problems)
    sha256 = hashlib.sha256(data).hexdigest()
    manifest = _fast_validate(source, "compiler.manifest.model", "Manifest")
    if manifest is not None:
        return LoadedManifest(path=path, root=root, manifest=manifest, text=source.text, sha256=sha256)
    # The authoritative path: ruamel positions for every problem.
    tree = _parse_mapping(source)
    manifest, problems = manifest_problems(source, tree)
    if problems:
        raise InvalidInput(problems)
    return LoadedManifest(path=path, root=root, manifest=manifest, text=source.text, sha256=sha256, parsed_tree=tree)


def _fast_validate(source: Source, module: str, name: str) -> Any:
    """The validated model when the fast reader is sure of the document and it is valid; else None
    (the caller redoes everything with ruamel, which locates the problems)."""
    import importlib

    from pydantic import ValidationError


    try:
        plain = fast_load(source.text)  # refuses anchors and aliases, so nothing can expand
    except Unsure:
        return None
    if not isinstance(plain, dict):
        return None
    model = getattr(importlib.import_module(module), name)
    try:
        return model.model_validate(plain)
    except ValidationError:
        return None


def load_repo_config(root: Path):
    """``quantgate.yaml`` at ``root`` as a ``RepoConfig`` (all defaults when absent or empty), or
    ``InvalidInput``."""

    path = Path(root) / REPO_CONFIG
    if not path.exists():
        return RepoConfig()
    _, source = read_source(path, display(path, root))
    problems = text_problems(source)
    if problems:
        raise InvalidInput(problems)
    config = _fast_validate(source, "compiler.manifest.repo_config", "RepoConfig")
    if config is not None:
        return config
    tree = _parse_mapping(source, allow_empty=True)
    config, problems = model_problems(source, tree, RepoConfig)
    if problems:
        raise InvalidInput(problems)
    return config
