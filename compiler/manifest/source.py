"""One file's text and how to point into it, and the plain form of its ruamel tree.

The leaf of the manifest language: ``load`` (reading, parsing) and ``locate`` (pydantic errors ->
line and column) both build on it, and neither imports the other's internals.
"""

from __future__ import annotations

from typing import Any

from compiler.errors import Problem


class Source:
    """The text of one file and how to point into it."""

    def __init__(self, shown: str, text: str):
        self.shown = shown
        self.text = text
        self.lines = text.splitlines()

    def problem(self, message: str, line: int | None = None, col: int | None = None,
                key_path: str | None = None, severity: str = "error") -> Problem:
        """A problem at 1-based ``line``/``col``, with the offending line attached."""
        source_line = None
        if line is not None and 1 <= line <= len(self.lines):
            source_line = _printable(self.lines[line - 1])
        return Problem(path=self.shown, message=message, line=line, col=col, key_path=key_path,
                       source_line=source_line, severity=severity)


def _printable(line: str) -> str:
    # A shown line must not carry control characters into a terminal or a log.
    return "".join(ch if ch.isprintable() or ch == "\t" else "?" for ch in line)[:300]


def to_plain(node: Any) -> Any:
    """The tree as plain dicts, lists and scalars (what pydantic validates). Keys stay as written."""
    if isinstance(node, dict):
        return {k if isinstance(k, (str, int, float, bool)) or k is None else str(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    from ruamel.yaml.scalarstring import ScalarString

    if isinstance(node, ScalarString):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node
