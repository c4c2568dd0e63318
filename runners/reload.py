"""Judge the artifact that would ship: reload it in a fresh Python process and evaluate it there.

The parent writes a request (artifact directory, ``EvalSpec``, ``EnvelopeSpec``, the baseline's
hardest ids, optional timing overrides) to JSON and runs ``python -m runners.reload request.json
result.json``; the child imports the common stack (torch, transformers, numpy), starts a
``runners.perf.ProcessPeak``, verifies the artifact's file hashes, rebuilds the model from the files
alone (``runners.artifacts.load_artifact``), measures latency and peak memory at the envelope's shape,
then evaluates it with the same harness as the baseline, and writes ``Quality``, per-example scores and
``Performance``. No state of the quantizing process (module objects, caches, monkey patches) can leak
into the verdict.

``measure_in_fresh_process`` does the same for the full-precision model (``load_model`` instead of an
artifact, no evaluation): the baseline's latency and peak memory are measured exactly the way every
candidate's are, so their peak memories compare (both include the runtime's own allocations).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runners.base import EnvelopeSpec, EvalSpec, Example, Generated, ModelSpec, Performance, Quality, RunnerError, from_dict, to_dict

#: Seconds a reload + evaluation may take before it is considered hung.
TIMEOUT_S = 3600


@dataclass(frozen=True)
class Reloaded:
    quality: Quality
    examples: tuple[Example, ...]
    performance: Performance | None


def evaluate_in_fresh_process(directory: Path, evaluation: EvalSpec, envelope: EnvelopeSpec | None,
                              hardest_ids: tuple[str, ...], timing: dict[str, Any] | None = None,
                              label2id: dict[str, int] | None = None,
                              baseline_generations: tuple[Generated, ...] = ()) -> Reloaded:
    """Run ``python -m runners.reload`` on ``directory``; ``envelope=None`` skips the latency run.
    ``baseline_generations``: the baseline's greedy replies, which the candidate's are compared with
    (``evaluation.generation``)."""
    data = _run_child({
        "directory": str(directory), "evaluation": to_dict(evaluation),
        "envelope": to_dict(envelope) if envelope else None, "hardest_ids": list(hardest_ids),
        "timing": timing or {}, "label2id": label2id, "baseline_generations": to_dict(baseline_generations),
    }, f"reloading the artifact {directory}")
    return Reloaded(quality=from_dict(Quality, data["quality"]),
                    examples=tuple(from_dict(Example, e) for e in data["examples"]),
                    performance=from_dict(Performance, data["performance"]) if data["performance"] else None)


def measure_in_fresh_process(model: ModelSpec, envelope: EnvelopeSpec, timing: dict[str, Any] | None = None) -> Performance:
    """The full-precision model's latency and peak memory, measured in a fresh process exactly as a
    candidate's are (``python -m runners.reload`` with a model spec instead of an artifact)."""
    data = _run_child({"model": to_dict(model), "envelope": to_dict(envelope), "timing": timing or {}},
                      f"measuring {model.source} in a fresh process")
    return from_dict(Performance, data["performance"])


def _run_child(payload: dict[str, Any], what: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="quantgate-reload-") as tmp:
        request = Path(tmp) / "request.json"
        result = Path(tmp) / "result.json"
        request.write_text(json.dumps(payload))
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
        try:
            proc = subprocess.run([sys.executable, "-m", "runners.reload", str(request), str(result)], cwd=root, env=env,
                                  capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise RunnerError(f"{what} did not finish within {TIMEOUT_S} s") from exc
        if proc.returncode != 0 or not result.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RunnerError(f"{what} in a fresh process failed (exit {proc.returncode}):\n{tail}")
        return json.loads(result.read_text())


def main(argv: list[str]) -> int:
    from runners.noise import quiet_model_stack

    quiet_model_stack(int(os.environ.get("QUANTGATE_VERBOSE", "0") or 0))
    """The child: ``python -m runners.reload request.json result.json`` (exit 3 with a message on failure).

    Order: import the common stack, start the peak-memory window, load, measure latency (which closes
    the window), then evaluate; so the peak memory covers exactly load + forwards at the envelope's shape."""
    import numpy  # noqa: F401  the stack every model path imports, outside the measured window
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from runners.artifacts import load_artifact
    from runners.evaluate import evaluate
    from runners.models import footprint_bytes, load_model
    from runners.perf import ProcessPeak, measure_performance

    request = json.loads(Path(argv[0]).read_text())
    envelope = from_dict(EnvelopeSpec, request["envelope"]) if request.get("envelope") else None
    try:
        peak = ProcessPeak(envelope.device if envelope else "cpu").start() if envelope else None
        if "model" in request:  # the full-precision model, measured like a candidate
            spec = from_dict(ModelSpec, request["model"])
            loaded = load_model(spec, envelope.device if envelope else "cpu")
            performance = measure_performance(loaded.forward, loaded.tokenizer, envelope, footprint_bytes(loaded.model),
                                              process_peak=peak, **request.get("timing", {}))
            out: dict[str, Any] = {"performance": to_dict(performance)}
        else:
            loaded = load_artifact(request["directory"])
            performance = None
            if envelope is not None:
                performance = measure_performance(loaded.forward, loaded.tokenizer, envelope, loaded.footprint_bytes,
                                                  process_peak=peak, **request.get("timing", {}))
            evaluation = from_dict(EvalSpec, request["evaluation"])
            baseline_generations = tuple(from_dict(Generated, g) for g in request.get("baseline_generations") or ())
            outcome = evaluate(loaded.forward, loaded.tokenizer, evaluation, tuple(request["hardest_ids"]),
                               label2id=request.get("label2id"), baseline_generations=baseline_generations)
            out = {"quality": to_dict(outcome.quality), "examples": to_dict(outcome.examples),
                   "performance": to_dict(performance) if performance else None}
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    target = Path(argv[1])
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
