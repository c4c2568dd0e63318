"""Judge the artifact that would ship: reload it in a fresh Python process and evaluate it there.

The parent writes a request (artifact directory, ``EvalSpec``, ``EnvelopeSpec``, the baseline's
hardest ids, optional timing overrides) to JSON and runs ``python -m runners.reload request.json
result.json``; the child verifies the artifact's file hashes, rebuilds the model from the files alone
(``runners.artifacts.load_artifact``), evaluates it with the same harness as the baseline, measures
latency at the envelope's shape, and writes ``Quality``, per-example scores and ``Performance``. No
state of the quantizing process (module objects, caches, monkey patches) can leak into the verdict.
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

from runners.base import EnvelopeSpec, EvalSpec, Example, Performance, Quality, RunnerError, from_dict, to_dict

#: Seconds a reload + evaluation may take before it is considered hung.
TIMEOUT_S = 3600


@dataclass(frozen=True)
class Reloaded:
    quality: Quality
    examples: tuple[Example, ...]
    performance: Performance | None


def evaluate_in_fresh_process(directory: Path, evaluation: EvalSpec, envelope: EnvelopeSpec | None,
                              hardest_ids: tuple[str, ...], timing: dict[str, Any] | None = None,
                              label2id: dict[str, int] | None = None) -> Reloaded:
    """Run ``python -m runners.reload`` on ``directory``; ``envelope=None`` skips the latency run."""
    with tempfile.TemporaryDirectory(prefix="quantgate-reload-") as tmp:
        request = Path(tmp) / "request.json"
        result = Path(tmp) / "result.json"
        request.write_text(json.dumps({
            "directory": str(directory), "evaluation": to_dict(evaluation),
            "envelope": to_dict(envelope) if envelope else None, "hardest_ids": list(hardest_ids),
            "timing": timing or {}, "label2id": label2id,
        }))
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
        try:
            proc = subprocess.run([sys.executable, "-m", "runners.reload", str(request), str(result)], cwd=root, env=env,
                                  capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise RunnerError(f"reloading {directory} did not finish within {TIMEOUT_S} s") from exc
        if proc.returncode != 0 or not result.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RunnerError(f"reloading the artifact {directory} in a fresh process failed (exit {proc.returncode}):\n{tail}")
        data = json.loads(result.read_text())
    return Reloaded(quality=from_dict(Quality, data["quality"]),
                    examples=tuple(from_dict(Example, e) for e in data["examples"]),
                    performance=from_dict(Performance, data["performance"]) if data["performance"] else None)


def main(argv: list[str]) -> int:
    """The child: ``python -m runners.reload request.json result.json`` (exit 3 with a message on failure)."""
    from runners.artifacts import load_artifact
    from runners.evaluate import evaluate
    from runners.perf import measure_performance

    request = json.loads(Path(argv[0]).read_text())
    try:
        loaded = load_artifact(request["directory"])
        evaluation = from_dict(EvalSpec, request["evaluation"])
        outcome = evaluate(loaded.forward, loaded.tokenizer, evaluation, tuple(request["hardest_ids"]),
                           label2id=request.get("label2id"))
        performance = None
        if request["envelope"]:
            envelope = from_dict(EnvelopeSpec, request["envelope"])
            performance = measure_performance(loaded.forward, loaded.tokenizer, envelope, loaded.footprint_bytes,
                                              **request.get("timing", {}))
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    out = {"quality": to_dict(outcome.quality), "examples": to_dict(outcome.examples),
           "performance": to_dict(performance) if performance else None}
    target = Path(argv[1])
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    os.replace(tmp, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
