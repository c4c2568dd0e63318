"""The pull-request comment decides first: verdict, the decision asked of reviewers, who must approve
(by @login), one table of deltas with units; everything else folded into <details>. Checked by
parsing it as GitHub reads it (CommonMark + GFM tables), not by matching strings."""

from __future__ import annotations

import re

from fake_runner import FakeRunner, Script
from markdown_support import assert_inert, blocks, details, lines_before_details

from compiler import api
from compiler.gitops.comment import compose
from compiler.playbook.lockfile import read_lock
from compiler.report.render import render_comment_markdown, render_report_markdown

HEADER = ["", "fp32 baseline", "mixed_precision", "change", "gate"]


def comment(repo, script=None) -> str:
    if script is not None:
        api.run(repo.manifest, runner=FakeRunner(script, root=repo.root), root=repo.root)
    lock = read_lock(repo.lock)
    body = render_comment_markdown(lock, api.plan(repo.manifest, repo.root), marker="", root=repo.root)
    return compose("demo", body)


def test_verdict_decision_approvers_then_table_then_details(repo):
    body = comment(repo, Script(ptq=(0.83, 0.58)))
    found = blocks(body)
    kinds = [b.kind for b in found]
    first_details = kinds.index("html", 1)  # 0 is the marker
    head = found[:first_details]
    assert [b.kind for b in head] == ["html", "heading", "paragraph", "paragraph", "paragraph", "table"]
    verdict, decision, approval, table = head[2], head[3], head[4], head[5]
    assert verdict.text.startswith("**✅ Locked: mixed_precision passed the gate")
    assert decision.text.startswith("**Decide:** ship int8 weights") and "allowed 0.0100" in decision.text
    # who must approve: live @logins (plain text, no zero-width characters), the missing roles named
    assert "\u200b" not in body
    assert re.findall(r"@[\w-]+", approval.text) == ["@ml-eng", "@platform-eng", "@product-lead"]
    assert "3 of 3 roles missing" in approval.text
    assert table.rows[0] == HEADER
    labels = [row[0] for row in table.rows[1:]]
    assert labels[0].startswith("spearman ↑, all 100") and labels[1].startswith("spearman ↑, hardest 10%")
    assert [label.split(" (")[0].split(",")[0] for label in labels[2:]] == ["footprint", "p95 latency", "peak memory"]
    footprint, latency = table.rows[3], table.rows[4]
    assert footprint[1].endswith("MiB") and footprint[3].endswith("×") and "✅" in footprint[4]
    assert latency[1].endswith("ms") and latency[4].startswith("target 50 ms")
    assert lines_before_details(body) <= 25
    assert details(body)[:2] == ["Trade-off: quality vs size and latency", "Why: the gate's decisions and the envelope"]
    assert {"What ships: the locked configuration", "Plays: 7 passed, 1 skipped",
            "Mixed precision: which layers stay at fp32", "Examples that degraded most (diagnostic, not gated)"} <= set(details(body))
    assert "<details open>" in body and body.count("<details") == body.count("</details>")
    assert_inert(body)


def test_plays_are_listed_once(repo):
    body = comment(repo, Script(ptq=(0.83, 0.58)))
    plays_tables = [b for b in blocks(body) if b.kind == "table" and b.rows[0][:2] == ["#", "play"]]
    assert len(plays_tables) == 1
    assert [row[1] for row in plays_tables[0].rows[1:]] == ["baseline", "envelope", "ptq", "gate", "mixed_precision", "qat", "lock", "monitor"]


def test_no_needless_backslashes(repo):
    body = comment(repo, Script(ptq=(0.83, 0.58)))
    report = (repo.root / "reports" / "demo" / "report.md").read_text()
    for text in (body, report):
        assert "\\" not in text, [line for line in text.splitlines() if "\\" in line][:3]


def mermaid(body: str) -> list[str]:
    fences = [b for b in blocks(body) if b.kind == "fence" and b.info == "mermaid"]
    assert len(fences) == 1
    return fences[0].text.strip("\n").splitlines()


NUMBER = r"-?\d+(?:\.\d+)?(?:e-?\d+)?"
LIST = rf"\[\s*{NUMBER}(?:\s*,\s*{NUMBER})*\s*\]"


def test_trade_off_is_a_valid_mermaid_xychart(repo):
    """xychart-beta grammar: title "..."; x-axis [labels]; y-axis "title" min --> max; bar/line [numbers]."""
    lines = mermaid(comment(repo, Script(ptq=(0.83, 0.58))))
    assert lines[0] == "xychart-beta"
    grammar = {
        "title": re.compile(r'^title "[^"]+"$'),
        "x-axis": re.compile(r'^x-axis \[\s*"[^"\[\]]+"(?:\s*,\s*"[^"\[\]]+")*\s*\]$'),
        "y-axis": re.compile(rf'^y-axis "[^"]+" {NUMBER} --> {NUMBER}$'),
        "bar": re.compile(rf"^bar {LIST}$"),
        "line": re.compile(rf"^line {LIST}$"),
    }
    seen = {}
    for line in lines[1:]:
        keyword = line.split()[0]
        assert keyword in grammar and grammar[keyword].match(line.strip()), line
        seen[keyword] = line.strip()
    assert set(seen) == set(grammar)
    labels = re.findall(r'"([^"]+)"', seen["x-axis"])
    bars = [float(x) for x in re.findall(NUMBER, seen["bar"][3:])]
    gate = [float(x) for x in re.findall(NUMBER, seen["line"][4:])]
    low, high = (float(x) for x in re.findall(NUMBER, seen["y-axis"].split('"')[2]))
    assert labels[0].startswith("fp32") and "MiB" in labels[0] and "ms" in labels[0]
    assert [label.split(" ·")[0] for label in labels] == ["fp32", "ptq", "mp k=2"]
    assert bars == [0.85, 0.83, 0.848] and gate == [0.84] * 3
    assert low < min(bars + gate) and max(bars + gate) < high


def test_plan_only_comment_names_who_will_approve(repo):
    body = comment(repo)
    head = blocks(body)[: [b.kind for b in blocks(body)].index("html", 1)]
    assert head[2].text == "**📋 Plan only: nothing measured yet**"
    assert "Will need approval from" in head[4].text and "@ml-eng" in head[4].text
    assert details(body) == ["Plays: 8 run"] or details(body)[0].startswith("Plays:")
    assert_inert(body)


def test_refused_comment_says_nothing_ships_and_what_next(repo):
    body = comment(repo, Script(envelope="fail"))
    head = [b for b in blocks(body) if b.kind == "paragraph"]
    assert head[0].text.startswith("**❌ Refused: nothing ships")
    assert "Next step:" in head[1].text
    assert "Approve the pull request" not in body and "Owners to act" in head[2].text
    assert_inert(body)


def test_degraded_examples_show_their_text_inert(repo):
    hostile = "<img src=x onerror=alert(1)> @everyone | approved | [x](javascript:1)"
    rows = [f"{i % 5}\tsentence a {i}\tsentence b {i}\tex-{i}\n" for i in range(20)]
    rows[7] = f"2\t{hostile}\tthe second sentence\tex-7\n"
    (repo.root / "data" / "eval.tsv").write_text("".join(rows))
    repo.edit("columns: {score: 0, text_a: 1, text_b: 2}\n  metric", "columns: {score: 0, text_a: 1, text_b: 2, id: 3}\n  metric")
    body = comment(repo, Script(ptq=(0.83, 0.58)))
    table = next(b for b in blocks(body) if b.kind == "table" and b.rows[0][0] == "example")
    assert table.rows[0] == ["example", "text", "fp32 rank error", "candidate rank error", "worse by"]
    assert table.rows[1][0] == "ex-7" and table.rows[1][1].startswith(hostile)
    assert "⟷ the second senten" in table.rows[1][1] and table.rows[1][1].endswith("…")  # truncated
    assert_inert(body)
    report = render_report_markdown(read_lock(repo.lock), root=repo.root)
    assert "⟷ the second senten" in report


def test_an_accepted_wrong_move_shows_its_written_reason_before_the_table(repo):
    # The envelope calls it a wrong move; the manifest accepts it in writing. Reviewers must read the
    # reason they are signing next to the decision, not inside a folded section.
    repo.edit("close_margin: 0.03", "close_margin: 0.03\n  accept_wrong_move: a worked example, not a deployment")
    body = comment(repo, Script(envelope="wrong-move"))
    head = blocks(body)[: [b.kind for b in blocks(body)].index("table")]
    accepted = [b.text for b in head if "gate.accept_wrong_move" in b.text]
    assert accepted and accepted[0].endswith("a worked example, not a deployment"), [b.text for b in head]
    assert "Envelope: wrong-move" in " ".join(b.text for b in head)
