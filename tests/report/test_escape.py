"""Escaping is exactly as much as the context needs: any text renders back as itself, inert (no
HTML, link, emphasis, mention, heading or table), and ordinary text is left alone in the raw file."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_support import blocks, inline_tokens, plain

from compiler.report.escape import code, md, mention, prose

INERT = {"text", "code_inline", "softbreak", "paragraph_open", "paragraph_close", "inline"}
LIVE_MENTION = re.compile(r"(?<![A-Za-z0-9`_])@[A-Za-z0-9]")
ALPHABET = st.text(alphabet=st.sampled_from(list("ab1 _*`~[]()!<>&#;|\\@-+=.:/\"'\n\t") + ["é", "·"]), max_size=40)


def normalised(text: str) -> str:
    return re.sub(r"\s*[\r\n]+\s*", " ", text).strip()


def rendered(markdown: str) -> tuple[set[str], str, list[str]]:
    tokens = inline_tokens(markdown)
    texts = [t.content for t in tokens if t.type == "text"]
    return {t.type for t in tokens}, plain(next(t for t in tokens if t.type == "inline").children or []), texts


@settings(max_examples=400, deadline=None)
@given(ALPHABET)
def test_any_text_renders_as_itself_and_inert_in_a_paragraph(text):
    if not normalised(text):
        return
    for escape in (md, prose):
        kinds, seen, texts = rendered("see: " + escape(text))
        assert kinds <= INERT, (text, escape(text), kinds)
        assert seen == "see: " + normalised(text), (text, escape(text))
        assert not any(LIVE_MENTION.search(t) for t in texts), (text, escape(text))


@settings(max_examples=200, deadline=None)
@given(ALPHABET)
def test_any_text_is_one_cell_in_a_table(text):
    table = blocks(f"| a | b |\n|---|---|\n| {md(text)} | x |\n")[0]
    assert table.kind == "table" and table.rows[1] == [normalised(text).strip(), "x"], (text, md(text))


@settings(max_examples=200, deadline=None)
@given(ALPHABET)
def test_text_at_the_start_of_a_line_starts_no_block(text):
    if not normalised(text):
        return
    found = blocks(md(text) + "\n")
    assert [b.kind for b in found] == ["paragraph"], (text, md(text), found)


@pytest.mark.parametrize("text", ["dynamic-int8", "(weights int8, activations none)", "max_drop 0.01", "R&D", "a > b",
                                  "v1.2.3 (see docs/playbook.md)", "hardest_max_drop", "3 + 4 = 7", "50 ms; 1.5×"])
def test_ordinary_text_is_left_alone(text):
    assert md(text) == prose(text) == text


def test_pipes_are_escaped_only_in_cells():
    assert md("a | b") == "a \\| b" and prose("a | b") == "a | b"


def test_mentions_of_owners_are_live_and_untouched():
    assert mention("@ml-eng") == "@ml-eng" and mention("@acme/ml-oncall") == "@acme/ml-oncall"
    assert "\u200b" not in md("@everyone") and md("@everyone") == "`@everyone`"
    assert mention("@everyone <b>") == "`@everyone` &lt;b>"
    assert md("mail a@b.com") == "mail a@b.com"


def test_code_spans_show_the_text_exactly():
    for text in ("a`b", "`x", "a|b", "<img>", "&lt;"):
        span = code(text)
        tokens = [t for t in inline_tokens(span) if t.type == "code_inline"]
        assert [t.content for t in tokens] == [text], (text, span)
    assert blocks(f"| a |\n|---|\n| {code('a|b', cell=True)} |\n")[0].rows[1] == ["a|b"]
