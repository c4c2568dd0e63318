"""The backend contract (``runners.backends.protocol``), held for every registered backend.

Cases come from the registry, so a new ``Backend`` entry is tested without editing this file: every
declared (weights, activations) mode, on a tiny model built from a config for every declared task
(milliseconds to quantize), and on the real demo model (MiniLM) for backends that declare
sentence-similarity. Each case goes the way a play goes: ``runners.ptq.Quantizer`` draws the
calibration set and hands it to ``prepare``, builds the candidate with one layer protected, writes it
with ``runners.artifacts.write_artifact``; then one fresh process (``reload_outputs.py``) reloads every
artifact from its files alone and runs it. The reloaded outputs must equal the built ones.

Tolerance: bitwise for every format unless ``TOLERANCE`` says otherwise. The child reloads the same
bytes into the same kernels with the same thread count (``QUANTGATE_THREADS`` and
``torch.set_num_threads`` pinned to the builder's), so nothing legitimately differs: torch formats
(torchao, quanto) rebuild the same quantized tensors and run the same ops; ONNX Runtime runs the same
``model.onnx`` with the same session options (its CPU kernels are deterministic for a fixed graph and
thread count). A difference means the artifact is not the model that was judged. A future format
whose reload is legitimately inexact (e.g. a GPU kernel with atomics) states its bound here, with why.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runners import backends
from runners.backends.protocol import QuantizationBackend
from runners.base import BaselineResult, DatasetSpec, EnvelopeSpec, ModelSpec, QuantSpec, RunnerInputError
from runners.registry import BACKEND_NAMES, BACKENDS

pytestmark = pytest.mark.model

#: Largest |built - reloaded| accepted per artifact format; a format not listed must reload bitwise.
TOLERANCE: dict[str, float] = {}

TEXTS = ["A man is playing a guitar.", "Two dogs run across a snowy field while the sun sets behind the hills.",
         "Quantization keeps the model, or it does not ship."]
CALIBRATION_SAMPLES = 8
REAL_TASK = "sentence-similarity"  # the demo model's task


@dataclasses.dataclass(frozen=True)
class Case:
    model: str  # tiny | real
    backend: str
    weights: str
    activations: str
    task: str

    @property
    def id(self) -> str:
        return f"{self.model}-{self.task}-{self.backend}-{self.weights}-{self.activations}"


def _cases() -> list[Case]:
    cases = []
    for name, backend in BACKENDS.items():
        caps = backend.capabilities
        for weights, activations in caps.modes:
            cases += [Case("tiny", name, weights, activations, task) for task in caps.tasks]
            if REAL_TASK in caps.tasks:
                cases.append(Case("real", name, weights, activations, REAL_TASK))
    return cases


CASES = _cases()


def _runs_here(name: str) -> str | None:
    """Why a backend's cases cannot run on this machine (the suite builds and reloads on CPU)."""
    caps = BACKENDS[name].capabilities
    if "cpu" not in caps.devices or caps.needs_accelerator:
        return f"{name} needs an accelerator to build; this suite runs on CPU"
    return None


def _quant(case: Case, repo_root: Path, protected: str, seed: int = 0) -> QuantSpec:
    # Text roles only, so the same file calibrates every task.
    data = DatasetSpec(path=str(repo_root / "data/stsb/sts-train.tsv"), format="tsv", columns={"text_a": 5, "text_b": 6})
    return QuantSpec(weights=case.weights, activations=case.activations, group_size=None, backend=case.backend,
                     calibration=data, samples=CALIBRATION_SAMPLES, seed=seed, protected_layers=(protected,),
                     algorithm=BACKENDS[case.backend].capabilities.algorithms[0])


@dataclasses.dataclass
class Built:
    case: Case
    protected: str = ""
    directory: Path | None = None
    artifact: Any = None
    built: Any = None  # output of the in-process candidate
    full: Any = None  # output of the full-precision model
    tokens: Any = None
    calibration_seen: list[int] = dataclasses.field(default_factory=list)  # len(calibration) prepare received
    weight_files: dict[str, str] = dataclasses.field(default_factory=dict)
    error: str | None = None


class Models:
    """Each model loaded once (the demo model takes a second; the tiny ones are built from configs)."""

    def __init__(self, tiny_model, minilm_dir):
        self.tiny_model, self.minilm_dir, self.cache = tiny_model, minilm_dir, {}

    def get(self, case: Case) -> tuple[ModelSpec, Any, BaselineResult]:
        key = (case.model, case.task)
        if key not in self.cache:
            from runners.models import load_model, weights_sha256

            source = self.minilm_dir if case.model == "real" else self.tiny_model(case.task)
            spec = ModelSpec(source=str(source), revision=None, task=case.task)
            loaded = load_model(spec)
            baseline = BaselineResult(weights_sha256(loaded.model), loaded.info, None, (), (), None, None, "")  # type: ignore[arg-type]
            self.cache[key] = (spec, loaded, baseline)
        return self.cache[key]


def _build(case: Case, models: Models, repo_root: Path, root: Path, seed: int = 0) -> Built:
    import torch

    from runners.ptq import Quantizer

    out = Built(case)
    spec, loaded, baseline = models.get(case)
    layers = loaded.info.quantizable_layers
    out.protected = layers[len(layers) // 2]
    envelope = EnvelopeSpec(device="cpu", memory_bytes=1 << 32, headroom=0.25, batch_size=2, sequence_length=32, latency_p95_ms=None)
    module = backends.load(case.backend)
    real_prepare = module.prepare

    def spy(model, tokenizer, task, calibration, workdir):
        out.calibration_seen.append(len(calibration))
        return real_prepare(model, tokenizer, task, calibration, workdir)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "prepare", spy)
        with Quantizer(spec, _quant(case, repo_root, out.protected, seed), None, envelope, baseline, str(root),
                       loaded=loaded) as quantizer:
            candidate = quantizer.quantize(quantizer.protected)
            _, out.artifact = quantizer.save(quantizer.protected, "ptq", candidate=candidate)
            enc = loaded.tokenizer(TEXTS, padding=True, return_tensors="pt")
            with torch.inference_mode():
                out.built = candidate.forward(enc["input_ids"], enc["attention_mask"]).clone()
                out.full = loaded.forward(enc["input_ids"], enc["attention_mask"]).clone()
            out.tokens = enc["input_ids"]
    out.directory = root.parent / out.artifact.path
    out.weight_files = {k: v for k, v in out.artifact.files.items() if k != "artifact.json"}
    return out


@pytest.fixture(scope="module")
def conformance(tiny_model, minilm_dir, repo_root, tmp_path_factory) -> dict[str, tuple[Built, dict]]:
    """Build every case here, then reload them all in one fresh process: case id -> (built, reloaded)."""
    import torch

    from runners.perf import pinned_threads

    root = tmp_path_factory.mktemp("conformance") / "artifacts"
    models = Models(tiny_model, minilm_dir)
    built: dict[str, Built] = {}
    for case in CASES:
        if _runs_here(case.backend):
            continue
        try:
            built[case.id] = _build(case, models, repo_root, root)
        except Exception as exc:  # noqa: BLE001 - failed per case, below, so one backend does not hide another
            built[case.id] = Built(case, error=f"{type(exc).__name__}: {exc}")
    threads = pinned_threads()
    request = {"threads": threads, "texts": TEXTS,
               "artifacts": {cid: {"directory": str(b.directory), "protected": b.protected} for cid, b in built.items() if not b.error}}
    work = tmp_path_factory.mktemp("reload")
    (work / "request.json").write_text(json.dumps(request))
    env = {**os.environ, "QUANTGATE_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(p for p in (str(repo_root), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("reload_outputs.py")), str(work / "request.json"),
                           str(work / "result.pt")], cwd=repo_root, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reloaded = torch.load(work / "result.pt", weights_only=True)
    return {cid: (b, reloaded.get(cid, {"error": b.error})) for cid, b in built.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_built_saved_and_reloaded_in_a_fresh_process_gives_the_same_outputs(case, conformance):
    import torch

    if _runs_here(case.backend):
        pytest.skip(_runs_here(case.backend))
    built, again = conformance[case.id]
    assert built.error is None, f"building failed: {built.error}"
    assert "error" not in again, f"reloading failed: {again['error']}"
    assert torch.equal(again["input_ids"], built.tokens)  # the artifact ships the tokenizer it was built with
    tolerance = TOLERANCE.get(BACKENDS[case.backend].capabilities.artifact_format, 0.0)
    if tolerance:
        assert (again["output"] - built.built).abs().max().item() <= tolerance
    else:
        assert torch.equal(again["output"], built.built)
    assert not torch.equal(built.built, built.full)  # it really is quantized
    assert again["protected_plain"] in (True, None)  # the protected layer came back at full precision


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_artifact_records_the_backend_its_versions_and_the_calibration(case, conformance):
    from compiler.files import artifact_sha256
    from runners.artifacts import verify

    if _runs_here(case.backend):
        pytest.skip(_runs_here(case.backend))
    built, _ = conformance[case.id]
    assert built.error is None, f"building failed: {built.error}"
    backend = BACKENDS[case.backend]
    caps = backend.capabilities
    record = verify(built.directory)  # every file matches its recorded sha256
    assert built.directory.name == built.artifact.sha256 == artifact_sha256(built.artifact.files)
    assert record["backend"] == case.backend and record["format"] == built.artifact.format == caps.artifact_format
    declared = {d: record["versions"].get(d) for d in caps.distributions}
    assert declared == backend.versions() and all(declared.values())
    assert record["backend_version"] == backend.version() and {"torch", "transformers"} <= set(record["versions"])
    assert (record["weights"], record["activations"], record["task"]) == (case.weights, case.activations, case.task)
    assert record["protected_layers"] == [built.protected]
    assert set(record["config"]["weights_files"]) <= set(built.artifact.files)
    # prepare() received the drawn calibration examples, whatever the backend does with them.
    assert built.calibration_seen == [CALIBRATION_SAMPLES] and record["calibration"]["samples"] == CALIBRATION_SAMPLES


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_the_module_implements_the_protocol(name):
    module = backends.load(name)
    assert isinstance(module, QuantizationBackend)


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_the_weights_depend_on_the_calibration_draw_exactly_when_the_backend_says_so(name, tiny_model, minilm_dir,
                                                                                     repo_root, tmp_path):
    """``needs_calibration`` is a claim about the bytes: False, another calibration draw builds the same
    weight files; True, the drawn examples change them."""
    if _runs_here(name):
        pytest.skip(_runs_here(name))
    caps = BACKENDS[name].capabilities
    case = Case("tiny", name, *caps.modes[0], caps.tasks[0])
    models = Models(tiny_model, minilm_dir)
    first = _build(case, models, repo_root, tmp_path / "a" / "artifacts", seed=0)
    other = _build(case, models, repo_root, tmp_path / "b" / "artifacts", seed=1)
    assert (first.weight_files != other.weight_files) == caps.needs_calibration


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_an_undeclared_mode_is_refused_before_any_model_loads(name, repo_root, tmp_path):
    from runners.ptq import Quantizer

    caps = BACKENDS[name].capabilities
    undeclared = next(m for m in [*(m for b in BACKENDS.values() for m in b.capabilities.modes), ("fp8", "none")]
                      if m not in caps.modes)
    case = Case("tiny", name, *undeclared, caps.tasks[0])
    spec = ModelSpec(source=str(tmp_path / "no-model-here"), revision=None, task=case.task)
    with pytest.raises(RunnerInputError, match=f"{name} cannot build {undeclared[0]} weights with {undeclared[1]} activations"):
        Quantizer(spec, _quant(case, repo_root, "x"), None, None, None, str(tmp_path / "artifacts"))
    assert not (tmp_path / "artifacts").exists()
