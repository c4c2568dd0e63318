"""Make text taken from manifests, reviews, metrics or datasets inert in GitHub Markdown, with no
more escaping than the context needs (people read the raw ``report.md`` in file diffs).

A manifest description like ``<img src=x onerror=...>``, ``@everyone``, ``[x](javascript:1)`` or a
fake table must render as the literal characters, never as markup, a link, a mention or a table.
What is escaped, and why (CommonMark + GFM as GitHub renders them):

- ``<`` always (``&lt;``): raw HTML and autolinks start with it; ``&`` only where it would start an
  entity (``&copy;``, ``&#64;``); ``>`` never inline (a blockquote only at the start of a line).
- ``[`` always: links, images and footnotes start with it (``!``, ``]``, ``(`` are then inert).
- ``` ` ``, ``*``, ``~`` always; ``_`` unless it sits between two letters or digits (``max_drop``
  cannot emphasise in GFM); ``\\`` before punctuation or at the end.
- ``|`` in table cells only (``md``); paragraph text (``prose``) keeps it.
- ``@login`` outside a word becomes an inline code span: visible, searchable, never a mention.
  People quantgate *means* to notify are rendered by ``mention`` (a validated login, untouched).
- line breaks become spaces, and a block marker at the start of the text (``#``, ``>``, ``-``,
  ``+``, ``=``, ``1.``) is escaped, so one value never starts a heading, list, quote or table.
"""

from __future__ import annotations

import re

from compiler.vocabulary import GITHUB_LOGIN

#: A GitHub login or ``org/team`` with its ``@`` (``compiler.manifest.model.OWNER_RE`` unanchored).
_OWNER = re.compile(rf"@{GITHUB_LOGIN}(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)?")
_MENTION = re.compile(rf"(?<![A-Za-z0-9`_]){_OWNER.pattern}")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_ALWAYS = re.compile(r"([`*~\[])")
_BACKSLASH = re.compile(r"\\(?=[!-/:-@\[-`{-~]|$)")
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_LEADING = re.compile(r"^(#{1,6}(?=\s|$)|>|[-+=](?=\s|$)|-(?=(?:[ \t]*-){2,}[ \t]*$)|\d{1,9}(?=[.)](?:\s|$)))")


def _escape(value: str, pipe: bool) -> str:
    value = _BACKSLASH.sub(r"\\\\", value)
    value = _ENTITY.sub("&amp;", value)
    value = value.replace("<", "&lt;")
    value = _ALWAYS.sub(r"\\\1", value)
    value = _UNDERSCORE.sub(r"\\_", value)
    return value.replace("|", "\\|") if pipe else value


def _inline(text: object, pipe: bool) -> str:
    value = re.sub(r"\s*[\r\n]+\s*", " ", str(text)).strip()
    out, at = [], 0
    for found in _MENTION.finditer(value):
        out += [_escape(value[at:found.start()], pipe), f"`{found.group(0)}`"]
        at = found.end()
    out.append(_escape(value[at:], pipe))
    return _LEADING.sub(lambda m: m.group(1) + "\\" if m.group(1)[0].isdigit() else "\\" + m.group(1), "".join(out))


def md(text: object) -> str:
    """One inline value, inert anywhere on a line, table cells included (``|`` escaped)."""
    return _inline(text, pipe=True)


def prose(text: object) -> str:
    """One inline value in a paragraph (not a table cell): ``|`` needs no escape there."""
    return _inline(text, pipe=False)


def code(text: object, cell: bool = False) -> str:
    """An inline code span that cannot be broken out of, showing ``text`` exactly (backticks inside
    get a longer fence; ``cell``: ``|`` escaped, which GFM requires even inside code in a table)."""
    value = re.sub(r"[\r\n]+", " ", str(text))
    runs = [len(r) for r in re.findall(r"`+", value)]
    fence = "`" * (max(runs, default=0) + 1)
    if value.startswith("`") or value.endswith("`") or (value.startswith(" ") and value.endswith(" ") and value.strip()):
        value = f" {value} "
    if cell:
        value = value.replace("|", "\\|")
    return f"{fence}{value}{fence}"


def is_owner(text: object) -> bool:
    """A GitHub ``@login`` or ``@org/team`` exactly (what the manifest validates owners against)."""
    return isinstance(text, str) and _OWNER.fullmatch(text) is not None


def mention(login: object) -> str:
    """An owner quantgate means to notify: a validated ``@login`` is left as it is (a live mention,
    no zero-width characters, searchable); anything else is escaped like any other text."""
    return str(login) if is_owner(login) else md(login)
