"""Dataset readers: formats, column mapping, stable ids, limits and located errors (no model)."""

from __future__ import annotations

import hashlib
import json

import pytest

from compiler.files import file_sha256
from runners.base import DatasetSpec, RunnerInputError
from runners.datasets import read_examples

STSB = {"score": 4, "text_a": 5, "text_b": 6}


def test_stsb_test_file_reads_every_pair_including_nine_column_rows(repo_root):
    path = repo_root / "data/stsb/sts-test.tsv"
    records = read_examples(DatasetSpec(path=str(path), format="tsv", columns=STSB), "sentence-similarity")
    assert len(records) == 879  # this copy is a subset of the 1379-pair STS-B test set
    assert records[0].id == "line-1" and records[0].score == 2.8
    assert records[0].text == "The curious boys look in the shed."
    nine = [n for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if len(line.split("\t")) == 9]
    assert nine, "the fixture should contain 9-column rows"
    by_id = {r.id: r for r in records}
    assert by_id[f"line-{nine[0]}"].text_b  # the extra trailing columns do not shift the mapped ones


def test_limit_keeps_the_first_rows_in_file_order(repo_root):
    spec = DatasetSpec(path=str(repo_root / "data/stsb/sts-test.tsv"), format="tsv", columns=STSB, limit=5)
    records = read_examples(spec, "sentence-similarity")
    assert [r.id for r in records] == [f"line-{n}" for n in range(1, 6)]
    assert read_examples(spec, "sentence-similarity") == records  # deterministic


def test_too_few_columns_is_located(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("g\tx\ty\tz\t3.0\ta\tb\n\ng\tx\ty\tz\t1.0\tonly one sentence\n", encoding="utf-8")
    with pytest.raises(RunnerInputError) as err:
        read_examples(DatasetSpec(path=str(path), format="tsv", columns=STSB), "sentence-similarity")
    assert err.value.location == f"{path}:3"
    assert "row has 6 columns; text_b is column 6" in str(err.value)


def test_non_numeric_score_is_located(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("g\tx\ty\tz\thigh\ta\tb\n", encoding="utf-8")
    with pytest.raises(RunnerInputError, match=r"bad\.tsv:1: score: 'high' is not a number"):
        read_examples(DatasetSpec(path=str(path), format="tsv", columns=STSB), "sentence-similarity")


def test_csv_with_header_names_and_quoted_multiline_field(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text('label,text,id\n1,"a ""quoted"" text",first\n0,"two\nlines",second\n1,plain,third\n', encoding="utf-8")
    spec = DatasetSpec(path=str(path), format="csv", header=True, columns={"label": "label", "text": "text", "id": "id"})
    records = read_examples(spec, "text-classification")
    assert [(r.id, r.label, r.line) for r in records] == [("first", "1", 2), ("second", "0", 3), ("third", "1", 5)]
    assert records[0].text == 'a "quoted" text' and records[1].text == "two\nlines"


def test_column_name_without_header_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("1,text\n", encoding="utf-8")
    with pytest.raises(RunnerInputError, match="no header"):
        read_examples(DatasetSpec(path=str(path), format="csv", columns={"label": "label", "text": 1}), "text-classification")


def test_jsonl_prompt_completion_and_bad_json_line(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [{"prompt": "2+2=", "completion": "4"}, {"prompt": "Capital of France:", "completion": " Paris"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    spec = DatasetSpec(path=str(path), format="jsonl", columns={"prompt": "prompt", "completion": "completion"})
    records = read_examples(spec, "causal-lm")
    assert [(r.id, r.text, r.completion) for r in records] == [("line-1", "2+2=", "4"), ("line-2", "Capital of France:", " Paris")]
    path.write_text(json.dumps(rows[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(RunnerInputError) as err:
        read_examples(spec, "causal-lm")
    assert err.value.location == f"{path}:2"


def test_duplicate_ids_are_refused(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "label": 1, "text": "x"}\n{"id": "a", "label": 0, "text": "y"}\n', encoding="utf-8")
    spec = DatasetSpec(path=str(path), format="jsonl", columns={"id": "id", "label": "label", "text": "text"})
    with pytest.raises(RunnerInputError, match=r"d\.jsonl:2: id 'a' repeats the id of line 1"):
        read_examples(spec, "text-classification")


def test_text_format_is_one_record_and_hash_is_of_bytes(repo_root):
    path = repo_root / "data/wikitext-2/wiki.test.raw"
    records = read_examples(DatasetSpec(path=str(path), format="text"), "causal-lm")
    assert len(records) == 1 and records[0].id == "text" and "Robert Boulter" in records[0].text
    assert file_sha256(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(RunnerInputError, match="not found"):
        read_examples(DatasetSpec(path=str(tmp_path / "nope.tsv"), format="tsv", columns=STSB), "sentence-similarity")
