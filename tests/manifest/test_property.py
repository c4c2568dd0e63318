"""Whatever the file holds, ``quantgate validate`` answers with exit 0 or 2 and, for 2, a located
first line; never a traceback or an internal error (exit 70)."""

from __future__ import annotations

import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manifest_support import DEMO, make_repo, validate, write

from compiler.manifest.fastyaml import fast_load

LOCATED = re.compile(r"^manifests/m\.yaml(:\d+:\d+)?: \S")
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=20), st.sampled_from(["int8", "int4", "@ml-eng", "1GiB", "5m", "data/stsb/sts-test.tsv", "yes", "0x1F", "~"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)
DEMO_TREE = fast_load(DEMO.read_text(encoding="utf-8"))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


ALL_PATHS = list(_paths(DEMO_TREE))[1:]


@st.composite
def mutated_demos(draw):
    """The demo manifest with a few subtrees replaced or removed: near-valid documents that reach
    the model checks (random documents mostly stop at apiVersion)."""
    import copy

    tree = copy.deepcopy(DEMO_TREE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        node = tree
        try:
            for step in path[:-1]:
                node = node[step]
            if draw(st.booleans()) and isinstance(node, dict):
                node.pop(path[-1], None)
            else:
                node[path[-1]] = draw(values)
        except (KeyError, IndexError, TypeError):
            pass
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)


def _check(repo, capsys, content):
    write(repo, content)
    code, out, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err
    if code == 2:
        assert LOCATED.match(err.splitlines()[0]), err
    else:
        assert "ok: 1 manifest valid" in out


@SETTINGS
@given(document=values)
def test_random_yaml_documents(tmp_path_factory, capsys, document):
    repo = make_repo(tmp_path_factory.mktemp("r"))
    _check(repo, capsys, yaml.safe_dump(document, allow_unicode=True))


@SETTINGS
@given(document=mutated_demos())
def test_mutated_demo_manifests(tmp_path_factory, capsys, document):
    repo = make_repo(tmp_path_factory.mktemp("r"))
    _check(repo, capsys, document)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_random_bytes(tmp_path_factory, capsys, data):
    repo = make_repo(tmp_path_factory.mktemp("r"))
    write(repo, data)
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 2, err
    assert LOCATED.match(err.splitlines()[0]), err
    assert "Traceback" not in err and "internal error" not in err


@SETTINGS
@given(text=st.text(alphabet=st.sampled_from(list("ab: -[]{}&*!|>'\"#\n\t%@`,?<=~0.5")), max_size=120))
def test_random_yaml_like_text(tmp_path_factory, capsys, text):
    repo = make_repo(tmp_path_factory.mktemp("r"))
    write(repo, text)
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 2, err
    assert LOCATED.match(err.splitlines()[0]), err
    assert "Traceback" not in err and "internal error" not in err
