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
from compiler.manifest import fastyaml
from compiler.manifest.fastyaml import Unsure
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
    fast_node: Any = field(default=None, repr=False, compare=False)  # libyaml's nodes, for ``positions``

    @cached_property
    def tree(self) -> Any:
        if self.parsed_tree is not None:
            return self.parsed_tree
        return parse_yaml(Source(self.display_path, self.text))

    @cached_property
    def positions(self) -> Any:
        """Something to locate problems in: the ruamel tree when it is parsed already, else the fast
        reader's positions (``fastyaml.fast_positions``: a millisecond, where the ruamel parse takes
        tens), so a warning on a valid manifest does not cost the slow parse."""
        if self.parsed_tree is not None:
            return self.parsed_tree
        if "tree" in self.__dict__:
            return self.__dict__["tree"]
        try:
            if self.fast_node is not None:
                return fastyaml.positions(self.fast_node)
            return fastyaml.fast_positions(self.text)
        except Unsure:
            return self.tree

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
        return source.problem("tab character: YAML indents and separates with spaces only (replace the tab with spaces)", line, col)
    human = _human_yaml_problem(source, problem, context, exc.problem_mark, exc.context_mark)
    if human is not None:
        message, line, col = human
        return source.problem(message, line, col)
    if context and context not in problem:
        start = exc.context_mark
        at = f" started at line {start.line + 1}" if start is not None and start.line + 1 != line else ""
        problem += f" ({context}{at})"
    message = f"YAML syntax error: {problem}"
    return source.problem(_one_line(message), line, col)


def _human_yaml_problem(source: Source, problem: str, context: str, problem_mark: Any,
                        context_mark: Any) -> tuple[str, int, int] | None:
    """The common YAML mistakes (indentation, a missing ':', an unclosed bracket or quote, a value
    starting with '@') said in the manifest's terms and placed where the fix goes: ``(message, line,
    col)``, 1-based. None: no better words than the parser's."""
    if problem_mark is None:
        return None
    line, col = problem_mark.line + 1, problem_mark.column + 1
    start = (context_mark.line + 1, context_mark.column + 1) if context_mark is not None else None
    text = source.lines[line - 1] if line <= len(source.lines) else ""
    if problem == "mapping values are not allowed here":
        first = text.find(": ")
        if 0 <= first < col - 1:
            value = text[first + 2:].split(" #", 1)[0].strip()
            example = f" ({_key_of(text)}: \"{value}\")" if len(value) <= 40 else ""
            return f"': ' inside an unquoted value: quote the whole value{example}", line, col
        indent = _indent(text)
        above = _content_above(source, line)
        if above is not None and _indent(source.lines[above - 1]) < indent:
            return (f"indentation: {_key_of(text)!r} is indented deeper than {_key_of(source.lines[above - 1])!r} on line "
                    f"{above}, which already has a value; indent it like its sibling keys", line, indent + 1)
        return None
    if problem.startswith("expected <block end>, but found"):
        found = problem.split("but found", 1)[1].strip()
        if found == "'<block mapping start>'":
            indent = _indent(text)
            levels = _enclosing_indents(source, line)
            shown = ", ".join(str(n) for n in levels[:-1]) + (" or " if len(levels) > 1 else "") + str(levels[-1]) if levels else "0"
            return (f"indentation: {_key_of(text)!r} is indented {indent} space{'s' if indent != 1 else ''}, which lines up with "
                    f"no key above it (those are indented {shown}); indent it like its sibling keys", line, indent + 1)
        if found == "'-'":
            return ("a list item ('- ') where a 'key: value' line belongs: put the list under a key of its own, "
                    "or remove the '- '", line, col)
        return ("unexpected text after a complete value: quote the whole value, or put the next key on a line of its own",
                line, col)
    if problem == "could not find expected ':'" and start is not None:
        key_text = source.lines[start[0] - 1] if start[0] <= len(source.lines) else ""
        word = key_text[start[1] - 1:].split("#", 1)[0].strip()
        glued = re.match(r"([^\s:]+):(\S.*)$", word)
        if glued:
            return (f"missing space after ':' in {word!r}: write '{glued.group(1)}: {glued.group(2)}'", *start)
        name = word.split()[0] if word else "key"
        return (f"missing ':' after {name!r}: a key is written '{name}: value'", *start)
    flow = re.match(r"expected ',' or '([\]}])', but got", problem)
    if flow and start is not None:
        opener = "[" if flow.group(1) == "]" else "{"
        return (f"this '{opener}' is never closed: add '{flow.group(1)}' at the end (or a ',' between items)", *start)
    if problem == "found unexpected end of stream" and "quoted scalar" in context and start is not None:
        quote = source.lines[start[0] - 1][start[1] - 1:start[1]] if start[0] <= len(source.lines) else "'"
        return (f"this quote ({quote}) is never closed: end the value with {quote}", *start)
    starts = re.match(r"found character '(.)' that cannot start any token", problem)
    if starts:
        token = re.match(r"[^\s,\]}]*", text[col - 1:]).group()
        return (f"a value cannot start with '{starts.group(1)}' unless quoted: write \"{token}\"", line, col)
    alias = re.match(r"found undefined alias '(.*)'", problem)
    if alias:
        name = alias.group(1)
        return (f"'*{name}' refers to an anchor '&{name}' that is not defined above it (quote the value if '*' is meant literally)",
                line, col)
    return None


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))


def _key_of(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("- "):
        stripped = stripped[2:].lstrip()
    return stripped.split(":", 1)[0].strip() or stripped


def _content_above(source: Source, line: int) -> int | None:
    """The nearest line above ``line`` with content (not blank, not only a comment)."""
    for number in range(line - 1, 0, -1):
        stripped = source.lines[number - 1].strip()
        if stripped and not stripped.startswith("#"):
            return number
    return None


def _enclosing_indents(source: Source, line: int) -> list[int]:
    """The indentations of the keys above ``line`` that it could line up with: each shallower than
    the one below it, deepest first."""
    levels: list[int] = []
    number = line
    while (above := _content_above(source, number)) is not None:
        indent = _indent(source.lines[above - 1])
        if not levels or indent < levels[-1]:
            levels.append(indent)
        if indent == 0:
            break
        number = above
    return levels


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
    manifest, node = _fast_validate(source, "compiler.manifest.model", "Manifest")
    if manifest is not None:
        return LoadedManifest(path=path, root=root, manifest=manifest, text=source.text, sha256=sha256, fast_node=node)
    # The authoritative path: ruamel positions for every problem.
    tree = _parse_mapping(source)
    manifest, problems = manifest_problems(source, tree)
    if problems:
        raise InvalidInput(problems)
    return LoadedManifest(path=path, root=root, manifest=manifest, text=source.text, sha256=sha256, parsed_tree=tree)


def _fast_validate(source: Source, module: str, name: str) -> tuple[Any, Any]:
    """The validated model and libyaml's nodes when the fast reader is sure of the document and it is
    valid; else ``(None, None)`` (the caller redoes everything with ruamel, which locates the problems)."""
    import importlib

    from pydantic import ValidationError


    try:
        node = fastyaml.compose(source.text)  # refuses anchors and aliases, so nothing can expand
        plain = fastyaml.plain(node)
    except Unsure:
        return None, None
    if not isinstance(plain, dict):
        return None, None
    model = getattr(importlib.import_module(module), name)
    try:
        return model.model_validate(plain), node
    except ValidationError:
        return None, None


def load_repo_config(root: Path):
    """``quantgate.yaml`` at ``root`` as a ``RepoConfig`` (all defaults when absent or empty), or
    ``InvalidInput``."""

    path = Path(root) / REPO_CONFIG
    if not path.exists():
        return RepoConfig()
    _, source = read_source(path, display(path, root))
    return parse_repo_config(source)


def parse_repo_config(source: Source) -> RepoConfig:
    """``quantgate.yaml`` from its text (the working tree's, or a base commit's): every bad-input
    class reported and located as for manifests; all defaults when empty."""
    problems = text_problems(source)
    if problems:
        raise InvalidInput(problems)
    config, _ = _fast_validate(source, "compiler.manifest.repo_config", "RepoConfig")
    if config is not None:
        return config
    tree = _parse_mapping(source, allow_empty=True)
    config, problems = model_problems(source, tree, RepoConfig)
    if problems:
        raise InvalidInput(problems)
    return config
