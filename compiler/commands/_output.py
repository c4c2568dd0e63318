"""What every command shares, handed to it by ``compiler.cli`` as ``args.out`` (so the thin commands
import nothing but ``api``): the global ``-q``/``-v`` levels, ``--format json`` output, and the one
way to choose manifests (positional paths, ``--changed BASE``, else every manifest).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from pathlib import Path
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: ``to_dict()`` when the object has one, dataclass fields (those
    shown in its repr), pydantic models, paths and enums as strings, errors rendered."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, dict):
        return {str(jsonable(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return jsonable(value.to_dict())
    if hasattr(value, "model_dump") and callable(value.model_dump):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, BaseException):
        render = getattr(value, "render", None)
        return {"error": type(value).__name__, "message": render() if callable(render) else str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value) if f.repr}
    return str(value)


class Output:
    """Where a command's words go. ``quiet`` (-q): only results and errors; ``verbose`` (-v, -vv):
    notes, library warnings and debug logging too."""

    def __init__(self, quiet: bool = False, verbose: int = 0, stdout=None, stderr=None):
        self.quiet = quiet
        self.verbose = 0 if quiet else verbose
        self._stdout = stdout
        self._stderr = stderr

    @property
    def stdout(self):
        return self._stdout or sys.stdout

    @property
    def stderr(self):
        return self._stderr or sys.stderr

    def result(self, text: str) -> None:
        """What the command was asked for: always printed (stdout)."""
        print(text, file=self.stdout)

    def info(self, text: str) -> None:
        """A progress or status line: stdout, dropped by -q."""
        if not self.quiet:
            print(text, file=self.stdout)

    def note(self, text: str) -> None:
        """A side remark: stderr, dropped by -q."""
        if not self.quiet:
            print(text, file=self.stderr)

    def error(self, text: str) -> None:
        """A problem: stderr, always."""
        print(text, file=self.stderr)

    def debug(self, text: str) -> None:
        if self.verbose:
            print(text, file=self.stderr)

    def json(self, value: Any) -> None:
        print(json.dumps(jsonable(value), indent=2, ensure_ascii=False), file=self.stdout)

    # ---------------------------------------------------------------------- choosing manifests

    @staticmethod
    def manifests(paths: list[Path] | None, changed: str | None = None, root: Path | None = None) -> list[Path] | None:
        """The manifests a command works on: ``paths`` as given; with ``changed`` the manifests
        ``BASE...HEAD`` touches (``quantgate changed``); else ``None``, which every api function reads
        as "every manifest under manifests/"."""
        if paths and changed:
            from compiler.errors import InvalidInput, Problem

            raise InvalidInput(Problem(path="--changed", message="give manifests or --changed BASE, not both"))
        if paths:
            return list(paths)
        if changed:
            from compiler import api
            from compiler.discover import find_repo_root

            base_root = Path(root) if root is not None else find_repo_root(Path.cwd())
            result = api.changed(base_root, changed, None, publish=False)
            return [base_root / touched.manifest for touched in result.change.touched]
        return None


def add_selection(parser, help_text: str = "manifests (default: every manifest under manifests/)") -> None:
    """``MANIFEST...`` and ``--changed BASE``, the same on every command that takes manifests."""
    parser.add_argument("manifests", nargs="*", type=Path, metavar="MANIFEST", help=help_text)
    parser.add_argument("--changed", metavar="BASE", default=None,
                        help="the manifests the change BASE...HEAD touches (as `quantgate changed` lists them)")
