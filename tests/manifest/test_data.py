"""Data files are checked the way the runner will read them, without a model: every column the
manifest maps exists in every row (the first offending row as ``path:line``), header names and jsonl
keys exist ("did you mean"), values parse, and there are enough examples for the calibration samples
and the hardest slice. The rules are ``runners/datasets.py``'s; the last tests hold the two to the same
answers on the same files."""

from __future__ import annotations

import pytest
from manifest_support import ROWS, STS_ROW, validate, write

from compiler.manifest import checks

EVAL = "    path: data/stsb/sts-test.tsv\n    format: tsv\n    columns: {score: 4, text_a: 5, text_b: 6}\n"


def _eval(path: str, fmt: str, columns: str, extra: str = "") -> callable:
    def make(demo: str) -> str:
        assert EVAL in demo
        return demo.replace(EVAL, f"    path: {path}\n    format: {fmt}\n    columns: {columns}\n{extra}", 1)

    return make


def _rows(n: int, start: int = 0) -> str:
    return "".join(STS_ROW.format(n=k, s=k % 5) for k in range(start, start + n))


TSV_SHORT = _rows(2) + "main-captions\tMSRvid\t2012test\t0002\t1.0\tA man is playing a flute.\n" + _rows(20, 3)
CSV = "id,score,sentence1,sentence2\n" + "".join(f"{k},{k % 5},A man plays,A man plays {k}\n" for k in range(30))
JSONL = "".join(f'{{"id": "{k}", "label": "pos", "text": "good {k}"}}\n' for k in range(30))
CLASSIFY = lambda demo: demo.replace("task: sentence-similarity", "task: text-classification").replace(  # noqa: E731
    "metric: spearman", "metric: accuracy").replace("columns: {score: 4, text_a: 5, text_b: 6}\n    samples", "columns: {text: 5}\n    samples")

#: case -> (data files to write, make the manifest from the demo, exact first line of stderr)
CASES = {
    "column-past-row": (
        {"data/e.tsv": TSV_SHORT},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6}"),
        "manifests/m.yaml:24:44: evaluation.dataset.columns.text_b: column 6 does not exist at data/e.tsv:3: the row has 6 columns (0-5)",
    ),
    "column-past-rows-counted": (
        {"data/e.tsv": TSV_SHORT + "a\tb\tc\n" * 2},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6}"),
        "manifests/m.yaml:24:44: evaluation.dataset.columns.text_b: column 6 does not exist at data/e.tsv:3: the row has 6 columns (0-5); "
        "2 more rows like it",
    ),
    "spaces-not-tabs": (
        {"data/e.tsv": _rows(20).replace("\t", "    ")},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6}"),
        "manifests/m.yaml:24:22: evaluation.dataset.columns.score: column 4 does not exist at data/e.tsv:1: the row has 1 column (0) "
        "(spaces instead of tabs?); 19 more rows like it",
    ),
    "header-name-misspelt": (
        {"data/e.csv": CSV},
        _eval("data/e.csv", "csv", "{score: score, text_a: sentence1, text_b: sentense2}", "    header: true\n"),
        "manifests/m.yaml:24:56: evaluation.dataset.columns.text_b: no column 'sentense2' in the header of data/e.csv:1 "
        "(did you mean 'sentence2'?); it has: id, score, sentence1, sentence2",
    ),
    "jsonl-key-missing": (
        {"data/e.jsonl": JSONL},
        lambda demo: _eval("data/e.jsonl", "jsonl", "{label: label, text: txt}")(CLASSIFY(demo)),
        "manifests/m.yaml:24:35: evaluation.dataset.columns.text: key 'txt' missing at data/e.jsonl:1 (did you mean 'text'?); "
        "the line has: id, label, text; 29 more rows like it",
    ),
    "jsonl-invalid": (
        {"data/e.jsonl": JSONL + '{"label": "pos", "text": "x",}\n'},
        lambda demo: _eval("data/e.jsonl", "jsonl", "{label: label, text: text}")(CLASSIFY(demo)),
        "manifests/m.yaml:22:11: evaluation.dataset.path: data/e.jsonl:31: invalid JSON: Expecting property name enclosed in double quotes (column 30)",
    ),
    "jsonl-not-object": (
        {"data/e.jsonl": '["pos", "good"]\n' + JSONL},
        lambda demo: _eval("data/e.jsonl", "jsonl", "{label: label, text: text}")(CLASSIFY(demo)),
        'manifests/m.yaml:22:11: evaluation.dataset.path: data/e.jsonl:1: each line must be a JSON object ({"key": value, ...}), not a list',
    ),
    "jsonl-text-not-text": (
        {"data/e.jsonl": JSONL.replace('"text": "good 7"', '"text": 7')},
        lambda demo: _eval("data/e.jsonl", "jsonl", "{label: label, text: text}")(CLASSIFY(demo)),
        "manifests/m.yaml:24:35: evaluation.dataset.columns.text: expected text at data/e.jsonl:8, got 7",
    ),
    "label-empty": (
        {"data/e.jsonl": JSONL.replace('"label": "pos", "text": "good 3"', '"label": " ", "text": "good 3"')},
        lambda demo: _eval("data/e.jsonl", "jsonl", "{label: label, text: text}")(CLASSIFY(demo)),
        "manifests/m.yaml:24:22: evaluation.dataset.columns.label: empty label at data/e.jsonl:4",
    ),
    "score-not-a-number": (
        {"data/e.tsv": _rows(5) + STS_ROW.replace("{s:.3f}", "n/a").format(n=5) + _rows(20, 6)},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6}"),
        "manifests/m.yaml:24:22: evaluation.dataset.columns.score: score 'n/a' at data/e.tsv:6 is not a number",
    ),
    "score-not-finite": (
        {"data/e.tsv": _rows(5) + STS_ROW.replace("{s:.3f}", "nan").format(n=5) + _rows(20, 6)},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6}"),
        "manifests/m.yaml:24:22: evaluation.dataset.columns.score: score 'nan' at data/e.tsv:6 is not a finite number",
    ),
    "duplicate-id": (
        {"data/e.tsv": _rows(20) + _rows(1, 7)},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6, id: 3}"),
        "manifests/m.yaml:24:51: evaluation.dataset.columns.id: id '0007' at data/e.tsv:21 repeats the id of line 8",
    ),
    "not-utf8": (
        {"data/e.tsv": (_rows(3) + "caf\xe9\t1\t2\t3\t4\t5\t6\n").encode("latin-1")},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6}"),
        "manifests/m.yaml:22:11: evaluation.dataset.path: data/e.tsv:4: not UTF-8 (byte 0xe9): save the file as UTF-8",
    ),
    "no-examples": (
        {"data/e.tsv": "\n\n"},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6}"),
        "manifests/m.yaml:22:11: evaluation.dataset.path: 'data/e.tsv' has no examples",
    ),
    "only-a-header": (
        {"data/e.csv": "id,score,sentence1,sentence2\n"},
        _eval("data/e.csv", "csv", "{score: score, text_a: sentence1, text_b: sentence2}", "    header: true\n"),
        "manifests/m.yaml:22:11: evaluation.dataset.path: 'data/e.csv' has no examples (only a header)",
    ),
    "too-few-for-hardest-slice": (
        {"data/e.tsv": _rows(9)},
        _eval("data/e.tsv", "tsv", "{score: 4, text_a: 5, text_b: 6}"),
        "manifests/m.yaml:22:11: evaluation.dataset.path: 'data/e.tsv' has 9 examples; hardest_fraction 0.1 needs at least 10 "
        "(at least one example in the hardest fraction, and a hardest slice, never under 3, that leaves some out)",
    ),
    "limit-too-small-for-hardest-slice": (
        {},
        lambda demo: demo.replace("columns: {score: 4, text_a: 5, text_b: 6}\n  metric", "columns: {score: 4, text_a: 5, text_b: 6}\n"
                                  "    limit: 3\n  metric").replace("hardest_fraction: 0.10", "hardest_fraction: 0.5"),
        "manifests/m.yaml:25:12: evaluation.dataset.limit: limit: 3 keeps 3 examples of 'data/stsb/sts-test.tsv'; hardest_fraction 0.5 "
        "needs at least 4 (at least one example in the hardest fraction, and a hardest slice, never under 3, that leaves some out)",
    ),
    "calibration-samples": (
        {},
        lambda demo: demo.replace("    samples: 256", f"    samples: {ROWS + 1}"),
        f"manifests/m.yaml:43:14: quantization.calibration.samples: {ROWS + 1} samples requested, but 'data/stsb/sts-train.tsv' "
        f"has {ROWS} examples: lower samples to {ROWS} or add data",
    ),
    "calibration-column": (
        {"data/c.tsv": TSV_SHORT * 20},
        lambda demo: demo.replace("path: data/stsb/sts-train.tsv", "path: data/c.tsv"),
        "manifests/m.yaml:42:46: quantization.calibration.dataset.columns.text_b: column 6 does not exist at data/c.tsv:3: "
        "the row has 6 columns (0-5); 19 more rows like it",
    ),
}


def _setup(repo, files: dict) -> None:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("case", sorted(CASES))
def test_data_problem_is_located(case, repo, demo_text, capsys):
    files, make, first_line = CASES[case]
    _setup(repo, files)
    write(repo, make(demo_text))
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 2, err
    assert err.splitlines()[0] == first_line
    assert "Traceback" not in err and "internal error" not in err


def test_rows_past_the_limit_are_not_read(repo, demo_text, capsys):
    """Like the runner, a limit stops reading: a broken row after it is no problem."""
    _setup(repo, {"data/e.jsonl": JSONL + "not json\n"})
    text = _eval("data/e.jsonl", "jsonl", "{label: label, text: text}", "    limit: 30\n")(CLASSIFY(demo_text))
    write(repo, text)
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 0, err


def test_text_format_needs_only_text(repo, demo_text, capsys):
    """format text is one document cut into token windows: only emptiness is decidable without the
    tokenizer (the window count is the runner's)."""
    from manifest_support import REPO_ROOT

    prompts = (REPO_ROOT / "data" / "prompts" / "format-json.jsonl").read_text()
    _setup(repo, {"data/w.raw": "", "models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf": "x",
                  "data/prompts/format-json.jsonl": prompts})
    text = (REPO_ROOT / "manifests" / "smollm2-wikitext.yaml").read_text().replace("data/wikitext-2/wiki.test.raw", "data/w.raw")
    write(repo, text)
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 2
    assert err.splitlines()[0] == "manifests/m.yaml:32:11: evaluation.dataset.path: 'data/w.raw' has no examples (the file is empty)"
    (repo / "data" / "w.raw").write_text("One short document.\n")
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 0, err


def test_percent_with_perplexity_asks_for_relative(repo, capsys):
    from manifest_support import REPO_ROOT

    text = (REPO_ROOT / "manifests" / "smollm2-wikitext.yaml").read_text()
    write(repo, text.replace("  relative: true\n", "").replace("max_drop: 0.05", "max_drop: 5%"))
    code, _, err = validate(capsys, "--root", str(repo), str(repo / "manifests" / "m.yaml"))
    assert code == 2
    assert err.splitlines()[0] == ("manifests/m.yaml:65:13: gate.max_drop: '5%' is a percentage, but gate drops are in metric units "
                                   "unless relative: true: set 'relative: true' and write 0.05 (a fraction of 1: 5% of the baseline)")


def test_each_data_file_is_read_once_per_run(repo, demo_text, capsys, monkeypatch):
    write(repo, demo_text, "a.yaml")
    write(repo, demo_text.replace("name: minilm-stsb", "name: minilm-b"), "b.yaml")
    reads = []
    original = checks._read_data
    monkeypatch.setattr(checks, "_read_data", lambda path: reads.append(path) or original(path))
    code, _, err = validate(capsys, "--root", str(repo))
    assert code == 0, err
    assert len(reads) == 4 and len(checks._FILES) == 2  # two manifests x two datasets; two files read
    assert len(checks._CHECKED) == 2


@pytest.mark.parametrize("fraction, rows", [(0.1, 10), (0.5, 4), (0.3, 4), (0.05, 20), (0.07, 15)])
def test_min_evaluation_examples(fraction, rows):
    assert checks.min_evaluation_examples(fraction) == rows
    assert fraction * rows >= 1


def test_min_hardest_is_the_runners():
    from runners.datasets import TEXT_ROLES
    from runners.evaluate import MIN_HARDEST

    assert checks.MIN_HARDEST == MIN_HARDEST
    assert checks.TEXT_ROLES == TEXT_ROLES


# ---------------------------------------------------------------- the same answers as the runner


AGREE = {
    "tsv-ok": ("tsv", _rows(12), {"score": 4, "text_a": 5, "text_b": 6}, False, None),
    "tsv-short": ("tsv", TSV_SHORT, {"score": 4, "text_a": 5, "text_b": 6}, False, None),
    "tsv-short-after-limit": ("tsv", TSV_SHORT, {"score": 4, "text_a": 5, "text_b": 6}, False, 2),
    "tsv-crlf-blank": ("tsv", _rows(3).replace("\n", "\r\n") + "\r\n \r\n" + _rows(3, 3), {"score": 4, "text_a": 5, "text_b": 6}, False, None),
    "tsv-score": ("tsv", _rows(3) + "a\tb\tc\td\tinf\te\tf\n", {"score": 4, "text_a": 5, "text_b": 6}, False, None),
    "tsv-dup-id": ("tsv", _rows(3) + _rows(1), {"score": 4, "text_a": 5, "text_b": 6, "id": 3}, False, None),
    "tsv-header": ("tsv", "a\tb\tscore\n" + "x\ty\t1\n" * 3, {"score": "score", "text_a": "a", "text_b": "b"}, True, None),
    "tsv-header-bom": ("tsv", "\ufeffa\tb\tscore\n" + "x\ty\t1\n" * 3, {"score": "score", "text_a": "a", "text_b": "b"}, True, None),
    "csv-quoted-multiline": ("csv", 'score,a,b\n1,"two\nlines",x\n2,y,z\n', {"score": "score", "text_a": "a", "text_b": "b"}, True, None),
    "csv-short": ("csv", '1,"two\nlines",x\n2,y\n', {"score": 0, "text_a": 1, "text_b": 2}, False, None),
    "csv-field-limit": ("csv", "1,a,b\n1," + "x" * 140_000 + ",b\n", {"score": 0, "text_a": 1, "text_b": 2}, False, None),
    "jsonl-ok": ("jsonl", '{"s": 1, "a": "x", "b": "y"}\n\n{"s": 2, "a": "x", "b": "y"}\n', {"score": "s", "text_a": "a", "text_b": "b"}, False, None),
    "jsonl-missing": ("jsonl", '{"s": 1, "a": "x", "b": "y"}\n{"s": 2, "a": "x"}\n', {"score": "s", "text_a": "a", "text_b": "b"}, False, None),
    "jsonl-bad": ("jsonl", '{"s": 1, "a": "x", "b": "y"}\n{"s": 2,\n', {"score": "s", "text_a": "a", "text_b": "b"}, False, None),
    "jsonl-bad-after-limit": ("jsonl", '{"s": 1, "a": "x", "b": "y"}\n{"s": 2,\n', {"score": "s", "text_a": "a", "text_b": "b"}, False, 1),
    "jsonl-scalar": ("jsonl", '3\n', {"score": "s", "text_a": "a", "text_b": "b"}, False, None),
    "jsonl-bool-score": ("jsonl", '{"s": true, "a": "x", "b": "y"}\n', {"score": "s", "text_a": "a", "text_b": "b"}, False, None),
    "jsonl-null-text": ("jsonl", '{"s": 1, "a": null, "b": "y"}\n', {"score": "s", "text_a": "a", "text_b": "b"}, False, None),
    "empty": ("tsv", " \n", {"score": 4, "text_a": 5, "text_b": 6}, False, None),
    "not-utf8": ("tsv", b"\xff\xfe", {"score": 4, "text_a": 5, "text_b": 6}, False, None),
    "text-ok": ("text", "Some words.", {}, False, None),
    "text-empty": ("text", "  \n", {}, False, None),
}


@pytest.mark.parametrize("case", sorted(AGREE))
def test_checks_agree_with_the_runner(case, tmp_path):
    """``data_problems`` finds a problem exactly when ``read_examples`` raises, and counts the
    examples the runner gets."""
    from runners.base import DatasetSpec, RunnerInputError
    from runners.datasets import read_examples

    fmt, content, columns, header, limit = AGREE[case]
    path = tmp_path / f"d.{fmt}"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_bytes(content.encode("utf-8"))
    spec = DatasetSpec(path=str(path), format=fmt, columns=columns, header=header, limit=limit)
    task = "sentence-similarity" if fmt != "text" else "causal-lm"
    try:
        records = read_examples(spec, task)
        runner_fails = False
    except RunnerInputError:
        runner_fails = True
    checks.forget_paths()
    found, count = checks.data_problems(tmp_path, spec, task)
    assert bool(found) == runner_fails, found
    if not runner_fails and fmt != "text":
        assert count == len(records)
