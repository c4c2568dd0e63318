"""A small evaluator for the GitHub Actions ``${{ }}`` expressions quantgate's workflows and action use,
and nothing more: contexts ``github``, ``env``, ``vars``, ``secrets``, ``steps``, ``needs``, ``matrix``,
``inputs``, ``runner`` (property access ``a.b``, ``a['b']``, ``a[0]``), ``==``, ``!=``, ``&&``, ``||``,
``!``, parentheses, ``fromJSON(...)``, the status functions ``success()``, ``failure()``,
``cancelled()``, ``always()``, string literals (``'it''s'``) and ``true``/``false``/``null``.
Anything else (another function, a number literal, ``<``, ``contains``, ``format``, an unknown context)
is an ``ExpressionError``: a template that starts using more must extend this file knowingly.

Semantics follow GitHub's documentation: ``&&``/``||`` return an operand, not a boolean; a missing
property is ``null``; ``==`` compares strings case-insensitively and, between different types,
compares them as numbers (``null`` -> 0, ``''`` -> 0, ``true`` -> 1, a non-numeric string -> NaN), so
``vars.UNSET == ''`` is true, as on GitHub.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any

CONTEXTS = ("github", "env", "vars", "secrets", "steps", "needs", "matrix", "inputs", "runner")
STATUS = ("success", "failure", "cancelled", "always")
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||[!().\[\],])|(?P<ident>[A-Za-z_][A-Za-z0-9_-]*)|(?P<bad>\S))")
_EXPR = re.compile(r"\$\{\{(.*?)\}\}", re.S)


class ExpressionError(Exception):
    """An expression outside the supported subset, or malformed."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        kind = m.lastgroup
        if kind == "bad":
            raise ExpressionError(f"unsupported character {m['bad']!r} in ${{{{ {text} }}}}")
        out.append((kind, m[kind]))
    if text[pos:].strip():
        raise ExpressionError(f"cannot read {text[pos:]!r} in ${{{{ {text} }}}}")
    return out


def _number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        if value.strip() == "":
            return 0.0
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def equal(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.casefold() == b.casefold()
    if type(a) is type(b) and not isinstance(a, (dict, list)):
        return a == b
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return a is b
    return _number(a) == _number(b)


def truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def to_string(value: Any) -> str:
    """How GitHub writes an expression's value into a string (``env:``, ``with:``, ``name:``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class _Parser:
    def __init__(self, text: str, context: dict[str, Any], status: Callable[[str], bool] | None):
        self.text, self.tokens, self.i = text, _tokens(text), 0
        self.context, self.status = context, status

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            raise ExpressionError(f"expected {value or 'more'} in ${{{{ {self.text} }}}}")
        self.i += 1
        return token

    def parse(self) -> Any:
        value = self.or_()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.peek()[1]!r} in ${{{{ {self.text} }}}}")
        return value

    def or_(self) -> Any:
        value = self.and_()
        while self.peek() == ("op", "||"):
            self.take()
            right = self.and_()
            value = value if truthy(value) else right
        return value

    def and_(self) -> Any:
        value = self.unary()
        while self.peek() == ("op", "&&"):
            self.take()
            right = self.unary()
            value = right if truthy(value) else value
        return value

    def unary(self) -> Any:
        if self.peek() == ("op", "!"):
            self.take()
            return not truthy(self.unary())
        left = self.primary()
        if self.peek() in (("op", "=="), ("op", "!=")):
            op = self.take()[1]
            right = self.primary()
            return equal(left, right) if op == "==" else not equal(left, right)
        return left

    def primary(self) -> Any:
        kind, value = self.take()
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if (kind, value) == ("op", "("):
            inner = self.or_()
            self.take(")")
            return inner
        if kind != "ident":
            raise ExpressionError(f"unexpected {value!r} in ${{{{ {self.text} }}}}")
        if value in ("true", "false"):
            return value == "true"
        if value == "null":
            return None
        if self.peek() == ("op", "("):
            return self.call(value)
        if value not in CONTEXTS:
            raise ExpressionError(f"unsupported context {value!r} in ${{{{ {self.text} }}}} (supported: {', '.join(CONTEXTS)})")
        current = self.context.get(value, {})
        while self.peek() in (("op", "."), ("op", "[")):
            if self.take()[1] == ".":
                key = self.take()
                if key[0] != "ident":
                    raise ExpressionError(f"expected a property name in ${{{{ {self.text} }}}}")
                current = current.get(key[1]) if isinstance(current, dict) else None
            else:
                index = self.or_()
                self.take("]")
                if isinstance(current, list) and isinstance(index, (int, float)) and not isinstance(index, bool):
                    current = current[int(index)] if 0 <= int(index) < len(current) else None
                elif isinstance(current, dict) and isinstance(index, str):
                    current = current.get(index)
                else:
                    current = None
        return current

    def call(self, name: str) -> Any:
        self.take("(")
        args = []
        if self.peek() != ("op", ")"):
            args.append(self.or_())
            while self.peek() == ("op", ","):
                self.take()
                args.append(self.or_())
        self.take(")")
        if name.lower() == "fromjson":
            if len(args) != 1 or not isinstance(args[0], str):
                raise ExpressionError(f"fromJSON takes one string in ${{{{ {self.text} }}}}")
            return json.loads(args[0])
        if name in STATUS and not args:
            if self.status is None:
                raise ExpressionError(f"{name}() is only allowed in if: (${{{{ {self.text} }}}})")
            return self.status(name)
        raise ExpressionError(f"unsupported function {name}() in ${{{{ {self.text} }}}}")


def evaluate(text: str, context: dict[str, Any], status: Callable[[str], bool] | None = None) -> Any:
    """The value of one expression (the part inside ``${{ }}``, or an ``if:`` without it)."""
    text = text.strip()
    if text.startswith("${{") and text.endswith("}}") and text.count("${{") == 1:
        text = text[3:-2]
    return _Parser(text, context, status).parse()


def interpolate(value: Any, context: dict[str, Any]) -> Any:
    """A YAML value with every ``${{ }}`` replaced: a string that is exactly one expression keeps the
    expression's type (``matrix: ${{ fromJSON(...) }}``); otherwise the result is a string."""
    if isinstance(value, dict):
        return {k: interpolate(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, context) for v in value]
    if not isinstance(value, str) or "${{" not in value:
        return value
    whole = _EXPR.fullmatch(value.strip())
    if whole:
        return evaluate(whole[1], context)
    return _EXPR.sub(lambda m: to_string(evaluate(m[1], context)), value)


def condition(text: Any, context: dict[str, Any], status: Callable[[str], bool]) -> bool:
    """An ``if:``: with or without ``${{ }}``; with no status function in it, ``success() &&`` is implied."""
    if text is None:
        return status("success")
    if isinstance(text, bool):
        return text
    source = str(text).strip()
    if source.startswith("${{") and source.endswith("}}"):
        source = source[3:-2]
    if not any(re.search(rf"\b{name}\(\)", source) for name in STATUS):
        if not status("success"):
            return False
    return truthy(evaluate(source, context, status))
