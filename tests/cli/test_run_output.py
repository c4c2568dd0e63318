"""`quantgate run` in CI logs: start/done/elapsed per play, progress that never goes silent, GitHub
Actions groups, library noise filtered (errors never), and `--force PLAY`."""

from __future__ import annotations

import io
import logging
import time
import warnings

import pytest
from fake_runner import FakeRunner, Script

from compiler import api
from compiler.commands.run import PlainEvents, quiet_model_stack
from compiler.errors import InvalidInput


def test_every_play_that_runs_prints_start_done_and_elapsed_in_a_group(repo):
    log = io.StringIO()
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), events=PlainEvents(log, github=True), root=repo.root)
    lines = log.getvalue().splitlines()
    for play in ("baseline", "envelope", "ptq"):
        start = lines.index(f"::group::{play}")
        assert lines[start + 1].startswith(f"[{play}] running: ")
        done = next(i for i, line in enumerate(lines) if line.startswith(f"[{play}] done in "))
        assert start < done and lines[done + 1] == "::endgroup::"
    assert lines.count("::group::baseline") == 1 and "::group::" not in "".join(lines[lines.index("::endgroup::") + 1:lines.index("::group::envelope")])
    log = io.StringIO()
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), events=PlainEvents(log, github=True), root=repo.root)
    assert "::group::" not in log.getvalue() and "[baseline] cached" in log.getvalue()  # nothing ran


def test_progress_without_a_total_is_printed_and_throttled():
    log = io.StringIO()
    now = [0.0]
    events = PlainEvents(log, interval=15, github=False, clock=lambda: now[0])
    report = events.progress("baseline")
    for i in range(1, 100):
        now[0] = i  # one update a second for 99 s
        report(i, 0, "batches")
    lines = log.getvalue().splitlines()
    assert lines[0] == "[baseline] batches 1 (total unknown)"
    assert 6 <= len(lines) <= 8  # the first, then about one per 15 s
    log.truncate(0)
    log.seek(0)
    report = events.progress("ptq")
    for i in range(1, 101):
        now[0] = 100 + i / 100
        report(i, 100, "examples")
    assert log.getvalue().splitlines() == [f"[ptq] examples {n}/100" for n in (1, *range(10, 101, 10))]


def test_a_silent_play_still_prints_a_heartbeat():
    log = io.StringIO()
    events = PlainEvents(log, interval=0.3, github=False)
    events.play("ptq", "run", "no recorded result")
    report = events.progress("ptq")
    report(3, 10, "layers")
    time.sleep(1.6)
    events.ended("ptq", 1.6, True)
    text = log.getvalue()
    assert "[ptq] still running (" in text and "last: layers 3/10" in text
    assert text.splitlines()[-1] == "[ptq] done in 1.6s"
    count = text.count("still running")
    time.sleep(0.8)
    assert log.getvalue().count("still running") == count  # stopped with the play


def test_a_failed_play_says_so_and_closes_its_group(repo):
    log = io.StringIO()
    with pytest.raises(Exception):  # noqa: B017 - the runner's failure, whatever it maps to
        api.run(repo.manifest, runner=FakeRunner(Script(fail={"ptq": "runner"}), root=repo.root), events=PlainEvents(log, github=True), root=repo.root)
    lines = log.getvalue().splitlines()
    failed = next(i for i, line in enumerate(lines) if line.startswith("[ptq] failed after "))
    assert lines[failed + 1] == "::endgroup::"


def test_known_library_noise_is_filtered_and_errors_are_not(caplog):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_model_stack(verbose=0)
        warnings.warn("`torch.utils._pytree._register_pytree_node` is deprecated. Please use ...", FutureWarning, stacklevel=1)
        warnings.warn("a real deprecation of something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["a real deprecation of something else"]
    logger = logging.getLogger("torchao")
    with caplog.at_level(logging.DEBUG, logger="torchao"):
        logger.warning("Failed to load /x/torchao/_C_mxfp8.so: undefined symbol")
        logger.warning("quantization of layer 3 is unsupported")
        logger.error("Failed to load something that matters")
    assert [r.getMessage() for r in caplog.records] == ["quantization of layer 3 is unsupported", "Failed to load something that matters"]


def test_force_reruns_a_play_and_everything_after_it(repo):
    api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root)
    again = FakeRunner(root=repo.root)
    api.run(repo.manifest, runner=again, root=repo.root)
    assert again.calls == []
    forced = FakeRunner(root=repo.root)
    result = api.run(repo.manifest, runner=forced, root=repo.root, force="ptq")
    assert forced.calls == ["ptq"] and result.outcome.ran == ["ptq"]
    everything = FakeRunner(root=repo.root)
    api.run(repo.manifest, runner=everything, root=repo.root, force="baseline")
    assert everything.calls == ["baseline", "envelope", "ptq"]
    with pytest.raises(InvalidInput):
        api.run(repo.manifest, runner=FakeRunner(root=repo.root), root=repo.root, force="gate")
