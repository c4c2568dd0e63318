"""Each play's cache key: sha256 over canonical JSON of exactly the inputs that play depends on.

DVC's stage cache is the anchor: a key changes when, and only when, something the play reads
changes. The dependency chain, and why:

- ``baseline``  model (source + revision, or the local directory's file contents), task, the whole
  ``evaluation`` section, the evaluation file's bytes (and the generation prompt file's), and the
  envelope's device, batch size and sequence length (the latency it measures depends on them).
- ``envelope``  the ``envelope`` section, the quantization target (weights, activations), the resolved
  backend (the weight estimate depends on what it quantizes) and the model *source* but not its
  revision: the playbook's model-update rule reuses the envelope verdict.
- ``ptq``       baseline key + the ``quantization`` section + the calibration file's bytes (and the
  production sample's) + the backend ``auto`` resolved to (installing a better backend changes the result).
- ``gate``      ptq key + the ``gate`` section.
- ``mixed_precision``  gate key + the ``mixed_precision`` section.
- ``qat``       mixed_precision key + the ``qat`` section.
- ``lock``      every key above + the manifest's hash (owners change the lock's record, no play).
- ``monitor``   the ``rollback`` section only.

``owners``, ``metadata.description`` and ``signoff`` feed no model play: editing them re-runs nothing.
What makes a play uncacheable is decided in ``uncacheable`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compiler.files import directory_sha256, file_sha256, sha256_of
from compiler.vocabulary import MODEL_PLAYS, PLAYS

#: Bumped when what a key covers changes, so old journals and locks stop matching.
CACHE_VERSION = 3  # 3: algorithm, calibration windows and fit, generation and position checks; 2: data-defined hardest slice, ...


@dataclass(frozen=True)
class Facts:
    """What the manifest names but does not contain: content hashes and the resolved backend.

    A ``None`` hash means the file could not be read (``uncacheable`` says so)."""

    model_files_sha256: str | None  # local model directory content; None for hub ids (revision pins it)
    evaluation_sha256: str | None
    calibration_sha256: str | None
    backend: str | None  # what quantization.backend resolved to; None: no registered backend can
    prompts_sha256: str | None = None  # evaluation.generation.prompts (None: not set, or unreadable)
    production_sha256: str | None = None  # quantization.calibration.production (None: not set, or unreadable)


def gather_facts(manifest: Any, root: Path, backend: str | None) -> Facts:
    def hashed(rel: str, tree: bool = False) -> str | None:
        path = (root / rel).resolve()
        try:
            return directory_sha256(path) if tree else file_sha256(path)
        except OSError:
            return None

    generation, production = manifest.evaluation.generation, manifest.quantization.calibration.production
    model_files = None
    if manifest.model.is_local:
        folder = (root / manifest.model.source).resolve()
        model_files = directory_sha256(folder) if folder.is_dir() else None
    return Facts(
        model_files_sha256=model_files,
        evaluation_sha256=hashed(manifest.evaluation.dataset.path),
        calibration_sha256=hashed(manifest.quantization.calibration.dataset.path),
        backend=backend,
        prompts_sha256=hashed(generation.prompts.path) if generation is not None else None,
        production_sha256=hashed(production.path) if production is not None else None,
    )


def _section(model: Any) -> Any:
    return model.model_dump(mode="json", by_alias=True)


def play_inputs(manifest: Any, facts: Facts) -> dict[str, dict]:
    """Exactly what each play depends on (keys of upstream plays included), as plain data."""
    m = manifest
    model = {
        "source": m.model.source,
        "revision": m.model.revision,
        "gguf_file": m.model.gguf_file,
        "trust_remote_code": m.model.trust_remote_code,
        "files_sha256": facts.model_files_sha256,
    }
    inputs: dict[str, dict] = {}
    inputs["baseline"] = {
        "model": model,
        "task": m.model.task,
        "evaluation": _section(m.evaluation),
        "evaluation_sha256": facts.evaluation_sha256,
        "prompts_sha256": facts.prompts_sha256,
        "envelope": {"device": m.envelope.device, "batch_size": m.envelope.batch_size, "sequence_length": m.envelope.sequence_length},
    }
    inputs["envelope"] = {
        "envelope": _section(m.envelope),
        "target": {"weights": m.quantization.weights, "activations": m.quantization.activations},
        "model_source": m.model.source,
        "backend": facts.backend,  # the weight estimate depends on what the backend quantizes
    }
    keys: dict[str, str] = {}
    keys["baseline"] = key_of("baseline", inputs["baseline"])
    keys["envelope"] = key_of("envelope", inputs["envelope"])
    inputs["ptq"] = {
        "baseline": keys["baseline"],
        "quantization": _section(m.quantization),
        "calibration_sha256": facts.calibration_sha256,
        "production_sha256": facts.production_sha256,
        "backend": facts.backend,
    }
    keys["ptq"] = key_of("ptq", inputs["ptq"])
    inputs["gate"] = {"ptq": keys["ptq"], "gate": _section(m.gate)}
    keys["gate"] = key_of("gate", inputs["gate"])
    inputs["mixed_precision"] = {"gate": keys["gate"], "mixed_precision": _section(m.mixed_precision)}
    keys["mixed_precision"] = key_of("mixed_precision", inputs["mixed_precision"])
    inputs["qat"] = {"mixed_precision": keys["mixed_precision"], "qat": _section(m.qat)}
    keys["qat"] = key_of("qat", inputs["qat"])
    inputs["monitor"] = {"rollback": _section(m.rollback)}
    return inputs


def key_of(play: str, inputs: dict) -> str:
    return sha256_of({"cache_version": CACHE_VERSION, "play": str(play), "inputs": inputs})


def cache_keys(manifest: Any, facts: Facts, manifest_sha256: str) -> dict[str, str]:
    """play -> cache key, in playbook order."""
    inputs = play_inputs(manifest, facts)
    keys = {play: key_of(play, inputs[play]) for play in PLAYS if play in inputs}
    keys["lock"] = key_of("lock", {"manifest_sha256": manifest_sha256, "plays": {p: keys[p] for p in PLAYS if p in keys and p != "monitor"}})
    return {str(play): keys[play] for play in PLAYS}


def uncacheable(play: str, manifest: Any, facts: Facts) -> str | None:
    """Why ``play`` can never be served from a cache, or None. The only place this is decided:
    a play whose input content is unknown (a file that could not be hashed) must run, so that the
    runner reports the real problem instead of a stale result being reused."""
    if play not in MODEL_PLAYS:
        return None
    if manifest.model.is_local and facts.model_files_sha256 is None:
        return "the model directory could not be read, so its content is unknown"
    if facts.evaluation_sha256 is None:
        return "the evaluation file could not be read, so its content is unknown"
    if manifest.evaluation.generation is not None and facts.prompts_sha256 is None:
        return "the generation prompt file could not be read, so its content is unknown"
    if play != "baseline" and facts.calibration_sha256 is None:
        return "the calibration file could not be read, so its content is unknown"
    if play != "baseline" and manifest.quantization.calibration.production is not None and facts.production_sha256 is None:
        return "the production sample file could not be read, so its content is unknown"
    return None
