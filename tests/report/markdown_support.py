"""Read rendered Markdown the way GitHub does (CommonMark + GFM tables, raw HTML on) and answer
structural questions about it: blocks in order, tables, details sections, fenced code.
(A unique module name: several test folders have a conftest.py.)"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from markdown_it import MarkdownIt

#: The only raw HTML quantgate itself writes: its marker and the folded sections.
OWN_HTML = re.compile(r"^(<!-- quantgate:[a-z0-9-]+ -->|<details( open)?>|</details>|<summary>[^<>&]*</summary>)$")


def parser() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


@dataclass
class Block:
    kind: str  # heading | paragraph | table | html | fence | list
    text: str = ""  # inline text (paragraph, heading), html source, fence content
    info: str = ""  # fence info string
    rows: list[list[str]] = field(default_factory=list)  # table: header first
    inline: list = field(default_factory=list)  # the inline children (paragraph, heading)


def blocks(markdown: str) -> list[Block]:
    """Top-level blocks in document order (list items are folded into one ``list`` block)."""
    tokens = parser().parse(markdown)
    out: list[Block] = []
    depth = 0
    i = 0
    while i < len(tokens):
        t = tokens[i]
        if t.type in ("bullet_list_open", "ordered_list_open"):
            if depth == 0:
                out.append(Block("list"))
            depth += 1
        elif t.type in ("bullet_list_close", "ordered_list_close"):
            depth -= 1
        elif depth:
            if t.type == "inline":
                out[-1].text += t.content + "\n"
        elif t.type == "heading_open":
            out.append(Block("heading", tokens[i + 1].content, inline=tokens[i + 1].children or []))
        elif t.type == "paragraph_open":
            out.append(Block("paragraph", tokens[i + 1].content, inline=tokens[i + 1].children or []))
        elif t.type == "html_block":
            out.append(Block("html", t.content))
        elif t.type == "fence":
            out.append(Block("fence", t.content, info=t.info.strip()))
        elif t.type == "table_open":
            table = Block("table")
            row: list[str] | None = None
            while tokens[i].type != "table_close":
                if tokens[i].type == "tr_open":
                    row = []
                elif tokens[i].type in ("th_open", "td_open"):
                    row.append(plain(tokens[i + 1].children or []).strip())
                elif tokens[i].type == "tr_close":
                    table.rows.append(row)
                i += 1
            out.append(table)
        i += 1
    return out


def plain(children: list) -> str:
    """What a reader sees of inline tokens: text and code, entities and escapes resolved."""
    return "".join(" " if t.type in ("softbreak", "hardbreak") else t.content
                   for t in children if t.type in ("text", "code_inline", "softbreak", "hardbreak"))


def inline_tokens(markdown: str) -> list:
    flat = []
    for token in parser().parse(markdown):
        flat.append(token)
        flat.extend(token.children or [])
    return flat


def html_lines(markdown: str) -> list[str]:
    lines = []
    for t in inline_tokens(markdown):
        if t.type in ("html_block", "html_inline"):
            lines += [line.strip() for line in t.content.strip().splitlines() if line.strip()]
    return lines


def details(markdown: str) -> list[str]:
    """The summary text of every ``<details>`` section, in order."""
    return re.findall(r"<summary>([^<]*)</summary>", "\n".join(html_lines(markdown)))


def assert_inert(markdown: str) -> None:
    """No raw HTML but quantgate's own, no live ``@everyone``, no table cell that reads 'approved'."""
    foreign = [line for line in html_lines(markdown) if not OWN_HTML.match(line)]
    assert not foreign, foreign
    text = " ".join(t.content for t in inline_tokens(markdown) if t.type == "text")
    assert "@everyone" not in text, "a live @everyone mention"
    for b in blocks(markdown):
        if b.kind == "table":
            assert "approved" not in [c for row in b.rows for c in row], "a table cell that reads 'approved'"
    kinds = {t.type for t in inline_tokens(markdown)}
    assert not kinds & {"link_open", "image"} or all(
        t.attrGet("src") in (None, "tradeoff.png", "mixed_precision.png", "sensitivity.png") and not str(t.attrGet("href") or "").startswith("javascript")
        for t in inline_tokens(markdown) if t.type in ("link_open", "image")), "a link or image from manifest text"


def lines_before_details(markdown: str) -> int:
    lines = markdown.splitlines()
    return next((n for n, line in enumerate(lines) if line.startswith("<details")), len(lines))
