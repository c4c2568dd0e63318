"""Error classes, their exit codes, and the one formatter for user-facing problems.

Every user-facing failure is a ``QuantgateError``; the CLI prints ``render()`` and exits with
``exit_code``. Anything else escaping to the CLI is an internal error (exit 70) that asks to be
reported; it never prints a traceback unless ``QUANTGATE_DEBUG=1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    REFUSED = 1  # gate, envelope, verification or sign-off said no; monitor rolled back
    INVALID = 2  # invalid input: manifest, data, arguments
    RUNNER = 3  # a runner failed
    CONFLICT = 4  # git or lock conflict
    INTERNAL = 70  # a bug: please report it


@dataclass(frozen=True)
class Problem:
    """One located problem: ``path:line:col: key.path: message`` then the offending line."""

    path: str
    message: str
    line: int | None = None  # 1-based
    col: int | None = None  # 1-based
    key_path: str | None = None
    source_line: str | None = None
    severity: str = "error"  # error | warning (warnings never change the exit code)

    def headline(self) -> str:
        where = self.path
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        key = f" {self.key_path}:" if self.key_path else ""
        level = " warning:" if self.severity == "warning" else ""
        return f"{where}:{level}{key} {self.message}"

    def render(self) -> str:
        text = self.headline()
        if self.source_line is not None and self.line is not None:
            text += f"\n    {self.source_line.rstrip()}"
            if self.col is not None:
                text += "\n    " + " " * (self.col - 1) + "^"
        return text

    def github(self) -> str:
        """The problem as a GitHub Actions workflow command (``::error file=..,line=..,col=..::msg``),
        escaped per the workflow-command rules so manifest text cannot end or forge the command."""
        props = [f"file={_escape_property(self.path)}"]
        if self.line is not None:
            props.append(f"line={self.line}")
            if self.col is not None:
                props.append(f"col={self.col}")
        props.append("title=" + _escape_property(f"quantgate: {self.key_path}" if self.key_path else "quantgate"))
        message = f"{self.key_path}: {self.message}" if self.key_path else self.message
        return f"::{self.severity} {','.join(props)}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    # Order matters: '%' first, or the escapes themselves would be escaped again.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class QuantgateError(Exception):
    exit_code: ExitCode = ExitCode.INTERNAL

    def render(self) -> str:
        return f"error: {self}"


class InvalidInput(QuantgateError):
    """Exit 2. Carries every problem found in one pass."""

    exit_code = ExitCode.INVALID

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(path="<input>", message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        super().__init__(self.problems[0].headline() if self.problems else "invalid input")

    def render(self) -> str:
        return "\n".join(p.render() for p in self.problems)


class Refused(QuantgateError):
    """Exit 1: a valid result that says no (gate, envelope, verify, sign-off, monitor rollback)."""

    exit_code = ExitCode.REFUSED


class RunnerFailed(QuantgateError):
    """Exit 3: a play could not run."""

    exit_code = ExitCode.RUNNER


class Conflict(QuantgateError):
    """Exit 4: git or lock conflict."""

    exit_code = ExitCode.CONFLICT


class FieldErrors(ValueError):
    """Raised inside a pydantic validator to report problems at keys *below* the validated model,
    several at once: ``FieldErrors(("revision", "needs a sha"), (("owners", "on_call"), "needs ..."))``.

    ``compiler.manifest.locate`` appends each ``at`` to pydantic's location, so the message lands on the key
    that is wrong, not on the mapping that holds it: on its value, or on the key itself when ``at``
    ends with ``FieldErrors.KEY`` (an unknown name is the key's fault, not the value's).
    """

    KEY = "<key>"

    def __init__(self, *items: tuple[str | tuple[str | int, ...], str]):
        self.items = [(_at(at), message) for at, message in items]
        super().__init__("; ".join(f"{'.'.join(map(str, at))}: {message}" for at, message in self.items))


def _at(at: str | tuple[str | int, ...]) -> tuple[str | int, ...]:
    if isinstance(at, str):
        return tuple(at.split(".")) if at else ()
    return tuple(at)
