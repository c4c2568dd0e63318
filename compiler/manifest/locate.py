"""pydantic validation errors -> located ``Problem``s, pointing at the exact key or value in the file.

pydantic's error ``loc`` is walked through the ruamel tree: an unknown key points at the key
(``lc.key``), a wrong value at the value (``lc.value`` / ``lc.item``), a missing key at the mapping
that should hold it. Messages say what is allowed and, for misspelt keys and enum values, what the
user probably meant (``difflib``).
"""

from __future__ import annotations

import decimal
import difflib
import re
import typing
from typing import Any

from compiler.errors import FieldErrors, Problem
from compiler.manifest.source import Source, to_plain

_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string (quote it)",
    "dict_type": "must be a mapping (key: value lines)",
    "model_type": "must be a mapping (key: value lines)",
    "model_attributes_type": "must be a mapping (key: value lines)",
    "list_type": "must be a list",
    "finite_number": "must be a finite number",
}


def format_loc(loc: tuple[str | int, ...]) -> str:
    """``('quantization', 'protected_layers', 0)`` -> ``quantization.protected_layers[0]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text


def manifest_problems(source: Source, tree: Any) -> tuple[Any, list[Problem]]:
    """Validate a parsed manifest; ``(Manifest, [])`` or ``(None, problems)``.

    A wrong ``apiVersion`` or ``kind`` stops here: the rest of the file is some other language.
    """
    from compiler.manifest.model import API_VERSION, KIND, Manifest

    shape = []
    for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key not in tree:
            line, col = _first_line(tree)
            shape.append(source.problem(
                f"missing; a quantgate manifest starts with 'apiVersion: {API_VERSION}' and 'kind: {KIND}'",
                line, col, key_path=key))
        elif tree[key] != expected:
            line, col = _value_pos(tree, key)
            shape.append(source.problem(
                f"{str(tree[key])[:80]!r} is not a quantgate manifest; expected {expected!r}",
                line, col, key_path=key))
    if shape:
        return None, shape
    manifest, problems = model_problems(source, tree, Manifest)
    if problems:
        problems = _merge(problems, _cross_section_problems(source, tree))
    return manifest, problems


def _cross_section_problems(source: Source, tree: Any) -> list[Problem]:
    """The cross-section checks pydantic skipped because some section was invalid, run over the
    sections that are valid on their own, so one pass reports everything."""
    from pydantic import BaseModel, ValidationError

    from compiler.manifest.model import Manifest, consistency_problems

    plain = to_plain(tree)
    parts = {}
    for name, field in Manifest.model_fields.items():
        key = field.alias or name
        annotation = field.annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            continue
        if key not in plain:
            if not field.is_required():
                parts[name] = field.get_default(call_default_factory=True)
            continue
        try:
            parts[name] = annotation.model_validate(plain[key])
        except ValidationError:
            continue
    out = []
    for at, message in consistency_problems(parts):
        at_key = bool(at) and at[-1] == FieldErrors.KEY
        at = at[:-1] if at_key else at
        out.append(problem_at(source, tree, at, message, at_key=at_key))
    return out


def problem_at(source: Source, tree: Any, at: tuple, message: str, at_key: bool = False,
               severity: str = "error") -> Problem:
    """A problem about the key path ``at`` of ``tree``, placed on its value (or key)."""
    _, (line, col) = _locate(tree, tuple(at), at_key=at_key)
    return source.problem(message, line, col, key_path=format_loc(tuple(at)) or None, severity=severity)


def _merge(problems: list[Problem], more: list[Problem]) -> list[Problem]:
    seen = {(p.line, p.col, p.key_path) for p in problems}
    merged = problems + [p for p in more if (p.line, p.col, p.key_path) not in seen]
    merged.sort(key=lambda p: (p.line or 0, p.col or 0))
    return merged


def model_problems(source: Source, tree: Any, model: type) -> tuple[Any, list[Problem]]:
    """``model.model_validate`` on the plain form of ``tree``; every error located in ``tree``."""
    from pydantic import ValidationError

    try:
        return model.model_validate(to_plain(tree)), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    problems: list[Problem] = []
    seen: set[tuple] = set()
    errors = _group_missing(errors)
    for error in errors:
        for problem in _problems(source, tree, model, error):
            key = (problem.line, problem.col, problem.key_path)
            if key not in seen:  # union members report the same spot once each
                seen.add(key)
                problems.append(problem)
    problems.sort(key=lambda p: (p.line or 0, p.col or 0))
    return None, problems


def _problems(source: Source, tree: Any, model: type, error: dict) -> list[Problem]:
    loc = tuple(error["loc"])
    kind = error["type"]
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, FieldErrors):
        out = []
        for at, message in cause.items:
            at_key = bool(at) and at[-1] == FieldErrors.KEY
            at = at[:-1] if at_key else at
            _, (line, col) = _locate(tree, loc + at, at_key=at_key)
            out.append(source.problem(message, line, col, key_path=format_loc(loc + at) or None))
        return out
    if kind == "missing":
        path, (line, col) = _locate(tree, loc[:-1], at_key=True)
        if not path:
            line, col = _first_line(tree)
        names = error.get("missing_keys", [loc[-1]])
        message = (f"required key {names[0]!r} is missing" if len(names) == 1
                   else f"required keys {', '.join(repr(n) for n in names)} are missing")
        return [source.problem(message, line, col, key_path=format_loc(loc[:-1]) or None)]
    if kind == "extra_forbidden":
        path, (line, col) = _locate(tree, loc, at_key=True)
        allowed = _allowed_keys(model, loc[:-1])
        message = f"unknown key {loc[-1]!r}"
        hint = _suggest(str(loc[-1]), allowed)
        message += hint if hint else (f"; allowed: {', '.join(allowed)}" if allowed else "")
        return [source.problem(message, line, col, key_path=format_loc(path) or None)]
    path, (line, col) = _locate(tree, loc, at_key=False)
    given = error.get("input")
    if kind == "literal_error":
        choices = _literal_choices(model, loc)
        message = f"{_show(given)} is not one of {', '.join(repr(c) for c in choices)}" if choices else error["msg"]
        message += _suggest(str(given), [str(c) for c in choices])
    elif kind == "float_parsing" and isinstance(given, str) and _PERCENT_RE.match(given):
        message = _percent_hint(tree, loc, given)
    elif kind in _TYPE_MESSAGES:
        message = f"{_TYPE_MESSAGES[kind]}, got {_show(given)}"
    elif kind == "value_error":
        message = str(cause) if cause is not None else error["msg"]
    else:
        message = error["msg"].replace("Input should be", "must be").replace("Value error, ", "")
        if isinstance(given, (str, int, float)) and not isinstance(given, bool):
            message += f", got {_show(given)}"
    return [source.problem(message, line, col, key_path=format_loc(path) or None)]


_PERCENT_RE = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*%\s*$")
#: Metrics on a 0-1 scale: one percentage point is 0.01 of the metric (perplexity is unbounded).
_UNIT_SCALE_METRICS = ("spearman", "pearson", "accuracy", "macro_f1", "exact_match")


def _percent_hint(tree: Any, loc: tuple, given: str) -> str:
    """A percentage where a number goes: the fraction to write. Gate drops follow ``gate.relative``:
    with ``relative: true`` they are fractions of the baseline, so 1% is 0.01; without it they are in
    metric units, where 1% is 0.01 for a metric on a 0-1 scale and needs ``relative: true`` otherwise."""
    percent = decimal.Decimal(_PERCENT_RE.match(given).group(1))
    fraction = format((percent / 100).normalize(), "f")
    message = f"{given.strip()!r} is a percentage: write {fraction} (a fraction of 1"
    if len(loc) == 2 and loc[0] == "gate" and loc[1] in ("max_drop", "hardest_max_drop", "close_margin"):
        gate = tree.get("gate") if isinstance(tree, dict) else None
        evaluation = tree.get("evaluation") if isinstance(tree, dict) else None
        relative = isinstance(gate, dict) and gate.get("relative") is True
        metric = evaluation.get("metric") if isinstance(evaluation, dict) else None
        if relative:
            return message + f"; with relative: true, {fraction} is {given.strip()} of the baseline)"
        if metric in _UNIT_SCALE_METRICS:
            return message + f"; drops are in {metric} units, on a 0-1 scale)"
        return (f"{given.strip()!r} is a percentage, but gate drops are in metric units unless relative: true: "
                f"set 'relative: true' and write {fraction} (a fraction of 1: {given.strip()} of the baseline)")
    return message + ")"


def _group_missing(errors: list[dict]) -> list[dict]:
    """One error per mapping for its missing keys (they all point at the same place)."""
    out: list[dict] = []
    grouped: dict[tuple, dict] = {}
    for error in errors:
        if error["type"] != "missing":
            out.append(error)
            continue
        parent = tuple(error["loc"][:-1])
        if parent in grouped:
            grouped[parent]["missing_keys"].append(error["loc"][-1])
        else:
            grouped[parent] = {**error, "missing_keys": [error["loc"][-1]]}
            out.append(grouped[parent])
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(given: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == given.lower() or c.replace("_", "-") == given.replace("_", "-")][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


# ------------------------------------------------------------------------------ tree positions


def _first_line(tree: Any) -> tuple[int, int]:
    lc = getattr(tree, "lc", None)
    if lc is not None and lc.line is not None:
        return lc.line + 1, (lc.col or 0) + 1
    return 1, 1


def _value_pos(node: Any, key: Any) -> tuple[int, int]:
    try:
        line, col = node.lc.value(key)
        return line + 1, col + 1
    except (AttributeError, KeyError, TypeError):
        return _first_line(node)


def _locate(tree: Any, loc: tuple, at_key: bool) -> tuple[tuple, tuple[int, int]]:
    """Follow ``loc`` through ``tree`` as far as it exists; the path followed and its 1-based
    position: the value's (or, with ``at_key``, the last key's) line and column.

    Stops at a scalar or at a step the tree does not have: pydantic adds steps of its own (union
    member tags like ``int``, ``[key]``) that are not in the file."""
    node = tree
    followed: tuple = ()
    pos = _first_line(tree)
    parent: Any = None
    for step in loc:
        if isinstance(node, dict):
            key = _find_key(node, step)
            if key is _MISSING:
                if parent is not None:  # point at the key whose mapping lacks ``step``
                    pos = _pair_pos(*parent, at_key=True)
                break
            parent = (node, key)
            pos = _pair_pos(node, key, at_key and len(followed) == len(loc) - 1)
            node = node[key]
        elif isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node):
            try:
                line, col = node.lc.item(step)
                pos = (line + 1, col + 1)
            except (AttributeError, KeyError, TypeError):
                pass
            parent = None
            node = node[step]
        else:
            break
        followed += (step,)
    return followed, pos


_MISSING = object()


def _find_key(node: dict, step: Any) -> Any:
    if step in node:
        return step
    for key in node:  # YAML keys that are not strings (1: x) reach pydantic as themselves
        if str(key) == str(step):
            return key
    return _MISSING


def _pair_pos(node: Any, key: Any, at_key: bool) -> tuple[int, int]:
    try:
        line, col = node.lc.key(key) if at_key else node.lc.value(key)
        return line + 1, col + 1
    except (AttributeError, KeyError, TypeError):
        return _first_line(node)


# ------------------------------------------------------------------------------ model walking


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete alternatives inside Optional/Union/Annotated."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or type(annotation).__name__ == "UnionType":
        out = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out.extend(_unwrap(arg))
        return out
    return [annotation]


def _annotation_at(model: type, loc: tuple) -> Any:
    """The type annotation the model declares at ``loc`` (``None`` when unknown)."""
    from pydantic import BaseModel

    current: Any = model
    for step in loc:
        nxt = None
        for alt in _unwrap(current):
            origin = typing.get_origin(alt)
            if isinstance(alt, type) and issubclass(alt, BaseModel):
                for name, field in alt.model_fields.items():
                    if step in (name, field.alias):
                        nxt = field.annotation
                        break
            elif origin in (list, tuple) and isinstance(step, int):
                nxt = typing.get_args(alt)[0]
            elif origin is dict:
                nxt = typing.get_args(alt)[1]
            if nxt is not None:
                break
        if nxt is None:
            return None
        current = nxt
    return current


def _allowed_keys(model: type, loc: tuple) -> list[str]:
    from pydantic import BaseModel

    for alt in _unwrap(_annotation_at(model, loc)):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            return [field.alias or name for name, field in alt.model_fields.items()]
    return []


def _literal_choices(model: type, loc: tuple) -> list[Any]:
    choices: list[Any] = []
    for alt in _unwrap(_annotation_at(model, loc)):
        if typing.get_origin(alt) is typing.Literal:
            choices.extend(typing.get_args(alt))
    return choices
