"""Causal-LM behaviour in the report and the comment: agreement and format-valid rate per configuration
next to the baseline, perplexity by position bucket as a table, a PNG (report) and a Mermaid chart
(comment). Read as GitHub reads it."""

from __future__ import annotations

import re

from fake_runner import FakeRunner, Script
from markdown_support import blocks

from compiler import api
from compiler.playbook.lockfile import read_lock
from compiler.report.render import render_comment_markdown, render_report_markdown

BASE_EXTRA = {"format_valid_rate": 0.9, "perplexity_bucket_1": 30.0, "perplexity_bucket_2": 21.0,
              "perplexity_bucket_3": 18.5, "perplexity_bucket_4": 16.25}
PTQ_EXTRA = {"generation_agreement": 0.7, "format_valid_rate": 0.8, "perplexity_bucket_1": 30.5, "perplexity_bucket_2": 21.5,
             "perplexity_bucket_3": 19.5, "perplexity_bucket_4": 19.75}
SECTION = "Generation and long context (causal LM)"


def lock_with_behaviour(repo, base_extra=BASE_EXTRA, ptq_extra=PTQ_EXTRA) -> dict:
    api.run(repo.manifest, runner=FakeRunner(Script(ptq=(0.845, 0.59)), root=repo.root), root=repo.root)
    data = read_lock(repo.lock).data()
    data["plays"]["baseline"]["result"]["quality"]["extra"].update(base_extra)
    data["plays"]["ptq"]["result"]["quality"]["extra"].update(ptq_extra)
    return data


def tables_after(markdown: str, heading: str) -> list[list[list[str]]]:
    found = blocks(markdown)
    start = next(i for i, b in enumerate(found) if b.kind == "heading" and b.text == heading)
    out = []
    for b in found[start + 1:]:
        if b.kind == "heading":
            break
        if b.kind == "table":
            out.append(b.rows)
    return out


def test_report_shows_agreement_format_and_buckets_next_to_the_baseline(repo):
    body = render_report_markdown(lock_with_behaviour(repo), plots={"position_buckets": "position_buckets.png"}, root=repo.root)
    summary, by_position = tables_after(body, SECTION)
    assert summary[0] == ["configuration", "generation agreement", "format-valid rate", "perplexity, last position bucket"]
    assert summary[1:] == [["fp32 baseline", "1.0000", "0.9000", "16.2500"], ["ptq", "0.7000", "0.8000", "19.7500"]]
    assert by_position[0][0] == "perplexity by position" and len(by_position[0]) == 5
    assert by_position[1] == ["fp32 baseline", "30.0000", "21.0000", "18.5000", "16.2500"]
    assert by_position[2][0] == "ptq" and by_position[2][-1] == "19.7500"
    assert "![Perplexity by token position in the window" in body and "(position_buckets.png)" in body


def test_bucket_columns_name_token_positions_from_the_sequence_length(repo):
    data = lock_with_behaviour(repo)
    data["plays"]["baseline"]["result"]["performance"]["sequence_length"] = 256
    header = tables_after(render_report_markdown(data, root=repo.root), SECTION)[1][0]
    assert header[1:] == ["1–63", "64–127", "128–191", "192–255"]


def test_buckets_only_show_no_generation_columns(repo):
    base = {k: v for k, v in BASE_EXTRA.items() if k.startswith("perplexity")}
    ptq = {k: v for k, v in PTQ_EXTRA.items() if k.startswith("perplexity")}
    summary = tables_after(render_report_markdown(lock_with_behaviour(repo, base, ptq), root=repo.root), SECTION)[0]
    assert summary[0] == ["configuration", "perplexity, last position bucket"]


def test_no_behaviour_numbers_no_section(repo):
    body = render_report_markdown(lock_with_behaviour(repo, {}, {}), root=repo.root)
    assert SECTION not in body


def test_comment_draws_the_buckets_as_a_mermaid_line_chart(repo):
    body = render_comment_markdown(lock_with_behaviour(repo), marker="", root=repo.root)
    charts = [b.text for b in blocks(body) if b.kind == "fence" and b.info == "mermaid"]
    chart = next(c for c in charts if "position in the window" in c).splitlines()
    assert chart[0] == "xychart-beta"
    assert re.match(r'^ +title "perplexity by position in the window \(lower is better\); lines: fp32 baseline, ptq"$', chart[1])
    assert re.match(r'^ +x-axis \["1–31", "32–63", "64–95", "96–127"\]$', chart[2])
    lines = [line.strip() for line in chart if line.strip().startswith("line ")]
    assert lines == ["line [30, 21, 18.5, 16.25]", "line [30.5, 21.5, 19.5, 19.75]"]
    low, high = (float(x) for x in re.findall(r"[\d.]+", chart[3].split('"')[2]))
    assert low < 16.25 and high > 30.5
