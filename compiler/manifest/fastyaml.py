"""A fast first read of a manifest with libyaml (PyYAML's C parser), resolving plain scalars exactly
as ruamel.yaml's YAML 1.2 round-trip loader does.

ruamel's round-trip parser keeps positions and comments but is pure Python (tens of milliseconds
per manifest); libyaml reads the same file in about a millisecond. ``compiler.manifest.load`` reads every
manifest here first and parses it with ruamel only when it needs positions (a problem to locate) or
comments (``LoadedManifest.tree``). Both readers must agree on what a document means, so anything
this module is not sure it reads the way ruamel does raises ``Unsure`` and the caller falls back to
ruamel: non-decimal ints, special floats, timestamps, merge keys, duplicate keys, tags, tabs,
anchors and aliases, block scalars.
"""

from __future__ import annotations

import re
from typing import Any


class Unsure(Exception):
    """This document needs the authoritative (ruamel) reader."""


_DECIMAL_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_PLAIN_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
#: Tokens outside plain block/flow YAML: anchors and aliases, tags, block-scalar headers, complex
#: keys, directives. Loose on purpose (a comment can trip it): a false alarm only costs speed.
_RARE_SYNTAX = re.compile(
    r"(?:^|[\s\[\]{},:?-])(?:[&*]\S|!)"  # &anchor, *alias, !tag
    r"|(?:^|[\s:-])[|>][-+0-9]*[ ]*(?:#.*)?$"  # | or > starting a block scalar
    r"|(?:^|\s)\?(?:\s|$)"  # ? complex key
    r"|^%",  # %YAML directive
    re.M,
)
_INDICATOR = re.compile(r"[&*!|>?%]")
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")
_STR = "tag:yaml.org,2002:str"

# ruamel.yaml's YAML 1.2 implicit resolvers (ruamel/yaml/resolver.py, VersionedResolver for (1, 2)):
# first character -> tags tried in order. Copied rather than imported because importing ruamel.yaml
# costs more than reading a manifest; tests/manifest/test_fastyaml.py checks them against ruamel's.
_X = re.X
_RX = {
    "bool": re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$", _X),
    "float": re.compile(r"""^(?:
         [-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""", _X),
    "int": re.compile(r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0o?[0-7_]+
        |[-+]?[0-9_]+
        |[-+]?0x[0-9a-fA-F_]+)$""", _X),
    "timestamp": re.compile(r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
        |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
        (?:[Tt]|[ \t]+)[0-9][0-9]?
        :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
        (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""", _X),
    "merge": re.compile(r"^(?:<<)$", _X),
    "null": re.compile(r"""^(?: ~
        |null|Null|NULL
        | )$""", _X),
    "value": re.compile(r"^(?:=)$", _X),
    "yaml": re.compile(r"^(?:!|&|\*)$", _X),
}
_FIRST: dict[str, tuple[str, ...]] = {
    **{c: ("bool",) for c in "tTfF"},
    **{c: ("float", "int") for c in "-+"},
    **{c: ("float", "int", "timestamp") for c in "0123456789"},
    ".": ("float",), "<": ("merge",), "~": ("null",), "n": ("null",), "N": ("null",), "": ("null",),
    "=": ("value",), "!": ("yaml",), "&": ("yaml",), "*": ("yaml",),
}


def resolve_plain_scalar(value: str) -> str:
    """The tag ruamel.yaml (YAML 1.2) gives a plain (unquoted) scalar."""
    for name in _FIRST.get(value[:1], ()):
        if _RX[name].match(value):
            return f"tag:yaml.org,2002:{name}"
    return _STR


def _build_loader() -> Any:
    try:
        import yaml
        from yaml.cyaml import CParser
    except ImportError:  # no PyYAML or no libyaml: everything goes through ruamel
        return None
    memo: dict[str, str] = {}

    class Loader(CParser, yaml.resolver.BaseResolver):
        """libyaml parses and composes nodes in C, calling ``resolve`` for each scalar's tag."""

        def __init__(self, stream: str):
            CParser.__init__(self, stream)
            yaml.resolver.BaseResolver.__init__(self)

        def resolve(self, kind, value, implicit):  # noqa: ANN001 - PyYAML's signature
            if kind is yaml.ScalarNode:
                if implicit[0]:
                    tag = memo.get(value)
                    if tag is None:
                        tag = resolve_plain_scalar(value)
                        if len(memo) < 10_000:
                            memo[value] = tag
                    return tag
                if implicit[1]:
                    return _STR  # quoted: always a string
                raise Unsure("the non-specific tag '!'")
            return super().resolve(kind, value, implicit)

    return Loader


def _build(node: Any, scalar_type: type, sequence_type: type) -> Any:
    """Plain values from composed nodes (no anchors or tags reach here: see ``_RARE_SYNTAX``)."""
    kind = type(node)
    if kind is scalar_type:
        tag, value = node.tag, node.value
        if tag == _STR:
            return value
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool" and value in _TRUE + _FALSE:
            return value in _TRUE
        if tag == "tag:yaml.org,2002:int" and _DECIMAL_INT.match(value):
            return int(value)
        if tag == "tag:yaml.org,2002:float" and _PLAIN_FLOAT.match(value):
            return float(value)
        raise Unsure(f"{tag} {value!r}")
    if kind is sequence_type:
        return [_build(child, scalar_type, sequence_type) for child in node.value]
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = _build(key_node, scalar_type, sequence_type)
        try:
            if key in mapping:
                raise Unsure("duplicate key")
        except TypeError as exc:  # an unhashable key (a list as key)
            raise Unsure("unhashable key") from exc
        mapping[key] = _build(value_node, scalar_type, sequence_type)
    return mapping


class LineCol:
    """Where a node and its children start (0-based), with the methods of ruamel's ``LineCol`` that
    ``compiler.manifest.locate`` uses: ``line``, ``col``, ``key(k)``, ``value(k)``, ``item(i)``."""

    __slots__ = ("line", "col", "data")

    def __init__(self, line: int, col: int):
        self.line, self.col, self.data = line, col, {}

    def key(self, key: Any) -> tuple[int, int]:
        return self.data[key][0], self.data[key][1]

    def value(self, key: Any) -> tuple[int, int]:
        return self.data[key][2], self.data[key][3]

    def item(self, index: int) -> tuple[int, int]:
        return self.data[index]


class PosDict(dict):
    """A mapping with ruamel-style positions (``.lc``), from the fast reader. Children are built when
    first looked up (locating a problem walks one path), keys are the scalars as written, and scalar
    values are their text: enough to find a position, not to read values (``plain`` does that)."""

    __slots__ = ("lc",)

    def __getitem__(self, key: Any) -> Any:
        value = dict.__getitem__(self, key)
        if isinstance(value, _Node):
            value = _build_positions(value.node)
            dict.__setitem__(self, key, value)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default

    def values(self) -> Any:  # type: ignore[override]
        return [self[key] for key in self]

    def items(self) -> Any:  # type: ignore[override]
        return [(key, self[key]) for key in self]


class PosList(list):
    """A sequence with ruamel-style positions (``.lc``), from the fast reader; children built lazily."""

    __slots__ = ("lc",)

    def __getitem__(self, index: Any) -> Any:
        value = list.__getitem__(self, index)
        if isinstance(index, int) and isinstance(value, _Node):
            value = _build_positions(value.node)
            list.__setitem__(self, index, value)
        return value

    def __iter__(self) -> Any:
        return (self[i] for i in range(len(self)))


class _Node:
    """A child container not built yet."""

    __slots__ = ("node",)

    def __init__(self, node: Any):
        self.node = node


def _child(node: Any) -> Any:
    import yaml

    return node.value if isinstance(node, yaml.ScalarNode) else _Node(node)


def _build_positions(node: Any) -> Any:
    """One level of ``PosDict``/``PosList`` with the start marks ruamel's ``RoundTripConstructor``
    records (libyaml's are the same on every document the fast reader accepts)."""
    import yaml

    if isinstance(node, yaml.ScalarNode):
        return node.value
    mark = node.start_mark
    lc = LineCol(mark.line, mark.column)
    if isinstance(node, yaml.SequenceNode):
        out: Any = PosList(_child(child) for child in node.value)
        lc.data = {index: (child.start_mark.line, child.start_mark.column) for index, child in enumerate(node.value)}
    else:
        out = PosDict()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else repr(key_node.value)
            dict.__setitem__(out, key, _child(value_node))
            lc.data[key] = (key_node.start_mark.line, key_node.start_mark.column,
                            value_node.start_mark.line, value_node.start_mark.column)
    out.lc = lc
    return out


def _rare(text: str) -> bool:
    """``_RARE_SYNTAX.search(text)``, tried only around indicator characters (much faster)."""
    for hit in _INDICATOR.finditer(text):
        i = hit.start()
        if (i and _RARE_SYNTAX.match(text, i - 1)) or _RARE_SYNTAX.match(text, i):
            return True
    return False


_LOADER: Any = False


def fast_load(text: str) -> Any:
    """The document as plain dicts, lists and scalars, or ``Unsure``."""
    return plain(compose(text))


def fast_positions(text: str) -> Any:
    """The document as ``PosDict``/``PosList`` (plain values with ruamel-style ``.lc`` positions), or
    ``Unsure``: enough to locate a problem without the pure-Python ruamel parse (a millisecond, not
    tens). Comments are not kept; ``LoadedManifest.tree`` is the reader for those."""
    return positions(compose(text))


def plain(node: Any) -> Any:
    """The plain value of a node from ``compose`` (``Unsure`` for values ruamel may read otherwise)."""
    return _convert(node, _build)


def positions(node: Any) -> Any:
    """``PosDict``/``PosList`` of a node from ``compose`` (built as far as it is walked)."""
    return None if node is None else _build_positions(node)


def _convert(node: Any, build: Any) -> Any:
    if node is None:
        return None
    import yaml

    try:
        return build(node, yaml.ScalarNode, yaml.SequenceNode)
    except RecursionError as exc:
        raise Unsure("deep") from exc



def compose(text: str) -> Any:
    """libyaml's node graph of ``text`` (None for an empty document), or ``Unsure``. Keep it to build
    both the plain value and, only when a problem needs locating, the positions, parsing once."""
    global _LOADER
    if _LOADER is False:
        _LOADER = _build_loader()
    if _LOADER is None:
        raise Unsure("libyaml is not available")
    # Only plain documents take the fast path: libyaml and ruamel disagree at the edges of the
    # syntax (tabs next to scalars, anchor names, block-scalar headers, tags, directives), all rare
    # in manifests, so any sign of them goes to ruamel.
    if "\t" in text or _rare(text):
        raise Unsure("rare syntax")
    if "\x85" in text or "\u2028" in text or "\u2029" in text:  # line breaks to libyaml, not to ruamel (YAML 1.2)
        raise Unsure("unicode line break")
    loader = _LOADER(text)
    try:
        return loader.get_single_node()
    except Unsure:
        raise
    except RecursionError as exc:
        raise Unsure("deep") from exc
    except Exception as exc:  # noqa: BLE001 - any libyaml complaint: let ruamel say it, located
        raise Unsure(str(exc)) from exc
    finally:
        loader.dispose()
