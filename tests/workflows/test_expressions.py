"""The harness's ``${{ }}`` evaluator: GitHub's semantics for the subset the templates use, and a loud
refusal of everything else; every expression in the generated workflows and action.yml parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from compiler.gitops.scaffold import workflow_files

from .expressions import ExpressionError, condition, evaluate, interpolate

REPO_ROOT = Path(__file__).resolve().parents[2]
CTX = {"github": {"event": {"pull_request": {"number": 7, "head": {"repo": {"full_name": "fork/models"}}}},
                  "repository": "acme/models", "token": "t"},
       "vars": {}, "needs": {"plan": {"outputs": {"count": "0", "matrix": '{"include": [{"name": "a"}]}'}}},
       "inputs": {"python-version": "3.12", "extras": ""}, "steps": {"push": {"outcome": "failure"}}, "env": {}, "matrix": {}}


def ok(fn: str) -> bool:
    return {"success": True, "failure": False, "cancelled": False, "always": True}[fn]


@pytest.mark.parametrize(("text", "value"), [
    ("github.event.pull_request.number", 7),
    ("github.event.pull_request.head.repo.full_name != github.repository", True),
    ("vars.QUANTGATE_SETUP == ''", True),  # an unset variable is null, and null == '' on GitHub
    ("vars.QUANTGATE_SETUP == '' && 'run' || ''", "run"),
    ("vars.QUANTGATE_SETUP || ''", ""),
    ("needs.plan.outputs.count != '0'", False),
    ("fromJSON(needs.plan.outputs.matrix)", {"include": [{"name": "a"}]}),
    ("inputs.python-version != ''", True),
    ("steps.push.outcome != 'failure'", False),
    ("'It''s' == 'it''S'", True),  # strings compare case-insensitively
    ("!(github.repository == 'ACME/models')", False),
    ("github.event.missing.deeper", None),
])
def test_values(text, value):
    assert evaluate(text, CTX) == value


@pytest.mark.parametrize("text", ["contains(github.repository, 'acme')", "format('{0}', 1)", "1 == 1",
                                  "github.repository < 'b'", "job.status", "hashFiles('x')", "success()"])
def test_anything_else_is_refused(text):
    with pytest.raises(ExpressionError):
        evaluate(text, CTX)


def test_if_implies_success_and_status_functions():
    assert condition("${{ !cancelled() && steps.push.outcome == 'failure' }}", CTX, ok) is True
    assert condition("github.repository == 'acme/models'", CTX, lambda fn: fn != "success") is False
    assert condition(None, CTX, ok) is True
    assert interpolate("group-${{ github.event.pull_request.number }}", CTX) == "group-7"


def test_every_expression_in_the_workflows_and_the_action_parses():
    texts = list(workflow_files().values()) + [(REPO_ROOT / "action.yml").read_text()]
    found = 0
    for text in texts:
        for expression in re.findall(r"\$\{\{(.*?)\}\}", text):
            evaluate(expression, CTX, ok)
            found += 1
        for line in re.findall(r"^\s*if: (?!\$\{\{)(.+)$", text, re.M):
            condition(line, CTX, ok)
            found += 1
    assert found > 40
