"""The fast reader (libyaml) and the authoritative one (ruamel round-trip) agree on every document
the fast one accepts; otherwise the fast one says ``Unsure``."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from manifest_support import REPO_ROOT
from ruamel.yaml.nodes import ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from compiler.discover import manifest_paths
from compiler.manifest.fastyaml import _FIRST, _RX, Unsure, fast_load, fast_positions, resolve_plain_scalar
from compiler.manifest.load import parse_yaml
from compiler.manifest.source import Source, to_plain

RUAMEL = VersionedResolver(version=(1, 2))


def _ruamel_plain(text: str):
    return to_plain(parse_yaml(Source("t.yaml", text)))


def test_resolver_table_is_ruamels():
    table = RUAMEL.versioned_resolver
    ours = {key: [(f"tag:yaml.org,2002:{name}", _RX[name].pattern) for name in names] for key, names in _FIRST.items()}
    theirs = {key: [(str(tag), regexp.pattern) for tag, regexp in entries] for key, entries in table.items() if key is not None}
    assert ours == theirs
    assert not table.get(None)


@pytest.mark.parametrize("value", ["true", "yes", "on", "010", "0o17", "1_000", "0x1f", "1e3", "1.5", ".inf", ".NaN", "2024-01-01",
                                   "~", "null", "", "0b11", "1:30", "+1", "-0.5", "-.5e3", "<<", "=", "256MiB", "0.10", "*"])
def test_scalar_tags_match_ruamel(value):
    assert resolve_plain_scalar(value) == str(RUAMEL.resolve(ScalarNode, value, (True, False)))


@pytest.mark.parametrize("path", manifest_paths(REPO_ROOT), ids=lambda p: p.name)
def test_examples_read_the_same(path):
    text = path.read_text(encoding="utf-8")
    assert fast_load(text) == _ruamel_plain(text)


@pytest.mark.parametrize("text", ["a: 010", "a: 2024-01-01", "a: {<<: {b: 1}}", "a: .inf", "a: 1_000", "a: 1\na: 2", "? [a]\n: 1", "a: !custom x"])
def test_ambiguous_documents_are_unsure(text):
    with pytest.raises(Unsure):
        fast_load(text)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=15))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=10)


def _agree(text: str) -> None:
    try:
        fast = fast_load(text)
    except Unsure:
        return
    try:
        slow = _ruamel_plain(text)
    except Exception:  # noqa: BLE001 - the property: ruamel must accept what the fast path accepts
        pytest.fail(f"fast reader accepted what ruamel rejects: {text!r}")
    assert fast == slow, text


@settings(max_examples=100, deadline=None)
@given(values)
def test_random_documents_read_the_same(value):
    _agree(yaml.safe_dump(value, allow_unicode=True))
    _agree(yaml.safe_dump(value, default_flow_style=True, allow_unicode=True))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab: -[]{}&*!|>'\"#\n%,?<=~0.5eE+_xTtrufalsn")), max_size=60))
def test_random_text_reads_the_same(text):
    _agree(text)


def _same_positions(fast, slow, path=()):
    if isinstance(slow, dict):
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), path
        assert len(fast) == len(slow), path
        for key in slow:
            as_written = key if key in fast else str(key)  # the fast positions keep keys as written
            assert tuple(fast.lc.key(as_written)) == tuple(slow.lc.key(key)), path + (key,)
            assert tuple(fast.lc.value(as_written)) == tuple(slow.lc.value(key)), path + (key,)
            _same_positions(fast[as_written], slow[key], path + (key,))
    elif isinstance(slow, list):
        for i, item in enumerate(slow):
            assert tuple(fast.lc.item(i)) == tuple(slow.lc.item(i)), path + (i,)
            _same_positions(fast[i], item, path + (i,))


@pytest.mark.parametrize("path", manifest_paths(REPO_ROOT), ids=lambda p: p.name)
def test_example_positions_are_ruamels(path):
    """Warnings on valid manifests are located with the fast reader's positions: they must be ruamel's."""
    text = path.read_text(encoding="utf-8")
    _same_positions(fast_positions(text), parse_yaml(Source("t.yaml", text)))


@settings(max_examples=100, deadline=None)
@given(values)
def test_random_document_positions_are_ruamels(value):
    for text in (yaml.safe_dump(value, allow_unicode=True), yaml.safe_dump(value, default_flow_style=True, allow_unicode=True)):
        try:
            fast = fast_positions(text)
        except Unsure:
            continue
        _same_positions(fast, parse_yaml(Source("t.yaml", text)))
