"""Each class of bad input exits 2 with a located first line (``path:line:col: ...``) and never a
traceback. The first lines are golden: they are the product."""

from __future__ import annotations

import pytest
from manifest_support import validate, write

from compiler.manifest.load import MAX_BYTES


def _replace(old: str, new: str):
    def make(demo: str) -> str:
        assert old in demo, old
        return demo.replace(old, new, 1)

    return make


BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['x'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d"], ["a", "b", "c", "d", "e"], strict=True)
)

#: case -> (make the file from the demo text, exact first line of stderr)
CASES = {
    "yaml-syntax": (
        _replace("  task: sentence-similarity\n", "  task: [sentence-similarity\n"),
        "manifests/m.yaml:18:9: this '[' is never closed: add ']' at the end (or a ',' between items)",
    ),
    "unclosed-brace": (
        _replace("qat: {enabled: false}", "qat: {enabled: false"),
        "manifests/m.yaml:50:6: this '{' is never closed: add '}' at the end (or a ',' between items)",
    ),
    "unclosed-quote": (
        _replace("  task: sentence-similarity\n", "  task: 'sentence-similarity\n"),
        "manifests/m.yaml:18:9: this quote (') is never closed: end the value with '",
    ),
    "indent-deeper": (
        _replace("  task: sentence-similarity\n", "    task: sentence-similarity\n"),
        "manifests/m.yaml:18:5: indentation: 'task' is indented deeper than 'source' on line 17, which already has a value; "
        "indent it like its sibling keys",
    ),
    "indent-between": (
        _replace("    format: tsv\n", "   format: tsv\n"),
        "manifests/m.yaml:23:4: indentation: 'format' is indented 3 spaces, which lines up with no key above it "
        "(those are indented 4, 2 or 0); indent it like its sibling keys",
    ),
    "missing-colon": (
        _replace("  task: sentence-similarity\n", "  task sentence-similarity\n"),
        "manifests/m.yaml:18:3: missing ':' after 'task': a key is written 'task: value'",
    ),
    "missing-space-after-colon": (
        _replace("  task: sentence-similarity\n", "  task:sentence-similarity\n"),
        "manifests/m.yaml:18:3: missing space after ':' in 'task:sentence-similarity': write 'task: sentence-similarity'",
    ),
    "colon-in-value": (
        _replace("description: Sentence encoder for semantic search (all-MiniLM-L6-v2), int8 for CPU serving",
                 "description: Encoder: semantic search"),
        "manifests/m.yaml:8:23: ': ' inside an unquoted value: quote the whole value (description: \"Encoder: semantic search\")",
    ),
    "list-item-among-keys": (
        _replace("  metric: spearman\n", "  - metric: spearman\n"),
        "manifests/m.yaml:25:3: a list item ('- ') where a 'key: value' line belongs: put the list under a key of its own, or remove the '- '",
    ),
    "text-after-value": (
        _replace("qat: {enabled: false}", "qat: {enabled: false} extra"),
        "manifests/m.yaml:50:23: unexpected text after a complete value: quote the whole value, or put the next key on a line of its own",
    ),
    "unquoted-at": (
        _replace('  ml_engineer: ["@ml-eng"]', "  ml_engineer: @ml-eng"),
        'manifests/m.yaml:10:16: a value cannot start with \'@\' unless quoted: write "@ml-eng"',
    ),
    "tab-after-colon": (
        _replace("  task: sentence-similarity\n", "  task:\tsentence-similarity\n"),
        "manifests/m.yaml:18:8: tab character: YAML indents and separates with spaces only (replace the tab with spaces)",
    ),
    "undefined-alias": (
        _replace("  task: sentence-similarity\n", "  task: *task\n"),
        "manifests/m.yaml:18:9: '*task' refers to an anchor '&task' that is not defined above it (quote the value if '*' is meant literally)",
    ),
    "duplicate-key": (
        _replace("  task: sentence-similarity\n", "  task: sentence-similarity\n  task: causal-lm\n"),
        "manifests/m.yaml:19:3: duplicate key 'task' (first at line 18): a key may appear once per mapping",
    ),
    "tab-indent": (
        _replace("  task: sentence-similarity\n", "\ttask: sentence-similarity\n"),
        "manifests/m.yaml:18:1: tab in indentation: YAML indents with spaces only",
    ),
    "merge-conflict": (
        _replace("  task: sentence-similarity\n", "<<<<<<< HEAD\n  task: sentence-similarity\n=======\n  task: causal-lm\n>>>>>>> pr\n"),
        "manifests/m.yaml:18:1: merge-conflict marker '<<<<<<<': resolve the conflict (keep one side) and remove the markers",
    ),
    "empty": (
        lambda demo: "",
        "manifests/m.yaml:1:1: the file is empty: a manifest starts with 'apiVersion: quantgate/v1' and 'kind: QuantizationManifest'",
    ),
    "only-comments": (
        lambda demo: "# TODO\n\n",
        "manifests/m.yaml:1:1: the file is empty: a manifest starts with 'apiVersion: quantgate/v1' and 'kind: QuantizationManifest'",
    ),
    "top-level-list": (
        lambda demo: "- apiVersion: quantgate/v1\n",
        "manifests/m.yaml:1:1: the top level is a list; expected a mapping of keys (apiVersion: ..., kind: ..., metadata: ...)",
    ),
    "top-level-scalar": (
        lambda demo: "# a comment\nquantgate\n",
        "manifests/m.yaml:2:1: the top level is a single value; expected a mapping of keys (apiVersion: ..., kind: ..., metadata: ...)",
    ),
    "wrong-apiversion": (
        _replace("apiVersion: quantgate/v1", "apiVersion: quantgate/v2"),
        "manifests/m.yaml:4:13: apiVersion: 'quantgate/v2' is not a quantgate manifest; expected 'quantgate/v1'",
    ),
    "wrong-kind": (
        _replace("kind: QuantizationManifest", "kind: Deployment"),
        "manifests/m.yaml:5:7: kind: 'Deployment' is not a quantgate manifest; expected 'QuantizationManifest'",
    ),
    "missing-apiversion": (
        lambda demo: demo.replace("apiVersion: quantgate/v1\n", ""),
        "manifests/m.yaml:4:1: apiVersion: missing; a quantgate manifest starts with 'apiVersion: quantgate/v1' and 'kind: QuantizationManifest'",
    ),
    "binary": (
        lambda demo: bytes(range(256)),
        "manifests/m.yaml:1:1: binary data (a NUL byte): a manifest is UTF-8 YAML text",
    ),
    "non-utf8": (
        lambda demo: demo.replace("Sentence encoder", "Sentence encodér").encode("latin-1"),
        "manifests/m.yaml:8:30: not UTF-8 (byte 0xe9): save the file as UTF-8",
    ),
    "control-char": (
        _replace("description: Sentence", "description: \x1bSentence"),
        "manifests/m.yaml:8:16: control character U+001B: binary data or a copy-paste accident",
    ),
    "too-big": (
        lambda demo: "#" * (MAX_BYTES + 1),
        f"manifests/m.yaml: file is {MAX_BYTES + 1} bytes; manifests are limited to {MAX_BYTES} bytes",
    ),
    "alias-bomb": (
        lambda demo: BOMB,
        "manifests/m.yaml:5:4: document expands to more than 10000 nodes (an anchor/alias bomb?): refusing to expand",
    ),
    "many-aliases": (
        lambda demo: "a: &a [1]\nb: [" + "*a, " * 150 + "]\n",
        "manifests/m.yaml:1:4: more than 100 aliases: refusing to expand",
    ),
    "misspelt-key": (
        _replace("  max_drop: 0.01", "  max_dorp: 0.01"),
        "manifests/m.yaml:45:1: gate: required key 'max_drop' is missing",
    ),
    "misspelt-enum": (
        _replace("weights: int8", "weights: int3"),
        "manifests/m.yaml:35:12: quantization.weights: 'int3' is not one of 'int8', 'int4', 'fp8' (did you mean 'int8'?)",
    ),
    "wrong-type": (
        _replace("batch_size: 8", "batch_size: eight"),
        "manifests/m.yaml:31:15: envelope.batch_size: must be an integer, got 'eight'",
    ),
    "percent-drop": (
        _replace("  max_drop: 0.01", '  max_drop: "1%"'),
        "manifests/m.yaml:46:13: gate.max_drop: '1%' is a percentage: write 0.01 (a fraction of 1; drops are in spearman units, on a 0-1 scale)",
    ),
    "percent-drop-relative": (
        _replace("  max_drop: 0.01", "  relative: true\n  max_drop: 1%"),
        "manifests/m.yaml:47:13: gate.max_drop: '1%' is a percentage: write 0.01 (a fraction of 1; with relative: true, 0.01 is 1% of the baseline)",
    ),
    "percent-fraction": (
        _replace("hardest_fraction: 0.10", "hardest_fraction: 12.5%"),
        "manifests/m.yaml:26:21: evaluation.hardest_fraction: '12.5%' is a percentage: write 0.125 (a fraction of 1)",
    ),
    "kubernetes-size": (
        _replace("memory_per_device: 1GiB", "memory_per_device: 2Gi"),
        "manifests/m.yaml:29:22: envelope.memory_per_device: '2Gi' is a Kubernetes quantity: write '2GiB' (Gi is GiB, powers of 2)",
    ),
    "kubernetes-decimal-size": (
        _replace("memory_per_device: 1GiB", "memory_per_device: 500M"),
        "manifests/m.yaml:29:22: envelope.memory_per_device: '500M' is a Kubernetes quantity: write '500MB' (powers of 10) or '500MiB' (powers of 2)",
    ),
    "size-case": (
        _replace("memory_per_device: 1GiB", "memory_per_device: 2gb"),
        "manifests/m.yaml:29:22: envelope.memory_per_device: '2gb': units are case-sensitive: write '2GB' (powers of 10) or '2GiB' (powers of 2)",
    ),
    "bad-size": (
        _replace("memory_per_device: 1GiB", "memory_per_device: 1 gig"),
        "manifests/m.yaml:29:22: envelope.memory_per_device: '1 gig' is not a size like '1GiB' or '512MB' (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_located(case, repo, demo_text, capsys):
    make, first_line = CASES[case]
    write(repo, make(demo_text))
    code, out, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 2, err
    assert err.splitlines()[0] == first_line
    assert "Traceback" not in err and "internal error" not in err
    assert err.rstrip().endswith("of 1 file")


def test_offending_line_and_caret(repo, demo_text, capsys):
    write(repo, demo_text.replace("weights: int8", "weights: int3"))
    _, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    lines = err.splitlines()
    assert lines[1] == "      weights: int3"
    assert lines[2] == "               ^"  # under the 'i' of int3: column 12, shown after 4 spaces


def test_every_problem_in_one_pass(repo, demo_text, capsys):
    text = (demo_text.replace("weights: int8", "weights: int3").replace("  max_drop: 0.01", "  max_dorp: 0.01")
            .replace("batch_size: 8", "batch_size: eight").replace("metric: spearman", "metric: accuracy")
            .replace('  on_call: ["@acme/ml-oncall"]\n', ""))
    write(repo, text)
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 2
    heads = [line for line in err.splitlines() if line.startswith("manifests/m.yaml:")]
    assert heads == [
        "manifests/m.yaml:9:1: owners.on_call: needs at least one owner: on_call signs monitor (rollback has rules)",
        "manifests/m.yaml:24:11: evaluation.metric: 'accuracy' does not apply to task 'sentence-similarity'; use one of spearman, pearson",
        "manifests/m.yaml:30:15: envelope.batch_size: must be an integer, got 'eight'",
        "manifests/m.yaml:34:12: quantization.weights: 'int3' is not one of 'int8', 'int4', 'fp8' (did you mean 'int8'?)",
        "manifests/m.yaml:44:1: gate: required key 'max_drop' is missing",
        "manifests/m.yaml:45:3: gate.max_dorp: unknown key 'max_dorp' (did you mean 'max_drop'?)",
    ]
    assert err.rstrip().endswith("6 errors in 1 of 1 file")


def test_bad_files_do_not_hide_good_ones(repo, demo_text, capsys):
    write(repo, demo_text, "good.yaml")
    write(repo, "", "empty.yaml")
    write(repo, "kind: x\n", "other.yaml")
    code, _, err = validate(capsys, "--root", str(repo))
    assert code == 2
    assert "manifests/empty.yaml:1:1: the file is empty" in err
    assert "manifests/other.yaml:1:1: apiVersion: missing" in err
    assert "good.yaml" not in err
    assert err.rstrip().endswith("in 2 of 3 files")


def test_missing_file(repo, capsys):
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "nope.yaml"))
    assert code == 2
    assert err.splitlines()[0] == "manifests/nope.yaml: no such file"


def test_console_script_exit_code(repo, demo_text):
    """The installed entry point, in its own process: exit 2, located first line, nothing on stdout."""
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("quantgate")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "compiler.cli"]
    write(repo, demo_text.replace("kind: QuantizationManifest", "kind: Deployment"))
    done = subprocess.run([*command, "validate"], cwd=repo, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(repo)})
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[0] == "manifests/m.yaml:5:7: kind: 'Deployment' is not a quantgate manifest; expected 'QuantizationManifest'"
    assert done.stdout == ""
