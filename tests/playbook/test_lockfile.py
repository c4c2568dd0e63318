"""The lock file itself: canonical bytes, atomic writes, schema, sign-off section."""

from __future__ import annotations

import json

import pytest
from fake_runner import FakeRunner, Script

from compiler import api
from compiler.errors import InvalidInput
from compiler.manifest.schemas import render_schema
from compiler.playbook.lockfile import HEADER, dump_lock, parse_lock, read_lock, update_signoff, write_if_changed


def test_dump_is_canonical_and_round_trips(repo):
    api.run(repo.manifest, runner=FakeRunner(Script(ptq=(0.83, 0.58)), root=repo.root), root=repo.root)
    text = repo.lock.read_text()
    assert text.startswith(HEADER)
    data = parse_lock(text).data()
    assert dump_lock(data) == text
    shuffled = dict(reversed(list(data.items())))  # top-level order is fixed whatever the input order
    assert dump_lock(shuffled) == text
    assert "&id" not in text and "*id" not in text  # no YAML anchors for shared values
    assert list(data)[:4] == ["schema_version", "name", "manifest", "verdict"]


def test_lock_validates_against_the_published_json_schema(repo):
    import jsonschema

    api.run(repo.manifest, runner=FakeRunner(Script(ptq=(0.83, 0.58)), root=repo.root), root=repo.root)
    schema = json.loads(render_schema("compiler.playbook.lockmodel:Lock"))
    jsonschema.validate(read_lock(repo.lock).data(), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**read_lock(repo.lock).data(), "verdict": "maybe"}, schema)


def test_committed_lock_schema_is_fresh(repo_root):
    assert (repo_root / "schemas" / "lock.schema.json").read_text() == render_schema("compiler.playbook.lockmodel:Lock")


def test_write_if_changed_is_atomic_and_idempotent(tmp_path):
    target = tmp_path / "a" / "f.txt"
    assert write_if_changed(target, "one") is True
    assert write_if_changed(target, "one") is False
    assert write_if_changed(target, b"two") is True and target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]  # no temp file left behind


def test_bad_signoff_or_missing_lock_is_invalid_input(repo):
    with pytest.raises(InvalidInput, match="no lock file"):
        update_signoff(repo.lock, {"status": "complete", "records": [], "missing": []})
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    with pytest.raises(InvalidInput) as err:
        update_signoff(repo.lock, {"status": "approved"})
    assert err.value.problems[0].key_path == "signoff.status" and "'pending' or 'complete'" in err.value.problems[0].message
    with pytest.raises(InvalidInput) as err:
        update_signoff(repo.lock, {"status": "complete", "records": [{"role": "ceo", "login": "x"}], "missing": []})
    assert "signoff.records.0.role" in [p.key_path for p in err.value.problems]


def test_not_a_mapping_is_invalid_input(tmp_path):
    path = tmp_path / "x.lock.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(InvalidInput, match="mapping"):
        read_lock(path)
    assert read_lock(tmp_path / "absent.lock.yaml") is None


def test_a_malformed_lock_is_located_not_dug_through(repo):
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    text = repo.lock.read_text()
    repo.lock.write_text(text.replace("verdict: locked", "verdict: lockd"))
    with pytest.raises(InvalidInput) as err:
        read_lock(repo.lock)
    problem = err.value.problems[0]
    line = text.splitlines().index("verdict: locked") + 1
    assert (problem.line, problem.key_path) == (line, "verdict") and "lockd" in problem.source_line
