"""GPTQ (``runners/backends/gptq_solver.py``, ``runners/backends/gptq_backend.py``) on synthetic layers
and a tiny Llama built from a config: what each test would catch is in its docstring. Quality on a real
model is ``bench/backends.py``'s job; these run in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runners.backends.protocol import LayerPlan
from runners.datasets import Record

pytestmark = pytest.mark.model


def _layer(seed: int = 0, rows: int = 96, columns: int = 128, samples: int = 2048):
    import torch

    g = torch.Generator().manual_seed(seed)
    mixing = torch.randn(columns, columns, generator=g) * 0.3  # correlated inputs, like a real layer's
    x = torch.randn(samples, columns, generator=g) @ mixing
    return torch.randn(rows, columns, generator=g), x


def _output_error(x, weight, solved, group) -> float:
    return float(((x @ weight.T - x @ solved.dequantized(group).T) ** 2).mean())


@pytest.mark.parametrize("bits,group", [(4, 32), (4, 64), (8, None)])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_lowers_the_layer_output_error_below_round_to_nearest(bits, group, act_order):
    """The algorithm's point: with the inputs' statistics, the layer's outputs move less than with
    round-to-nearest on the same grid (at least 30 % less here). Fails if the error feedback is wrong."""
    from runners.backends.gptq_solver import Grid, round_to_nearest, solve

    weight, x = _layer()
    grid = Grid(bits, group)
    gptq = solve(weight, x.T @ x, grid, act_order=act_order)
    rtn = round_to_nearest(weight, grid)
    assert _output_error(x, weight, gptq, group) < 0.7 * _output_error(x, weight, rtn, group)
    assert int(gptq.qdata.min()) >= grid.qmin and int(gptq.qdata.max()) <= grid.qmax


def test_round_to_nearest_is_torchaos_grid_bit_for_bit():
    """GPTQ and the rtn candidate it is compared with share one grid: the solver's round-to-nearest
    gives exactly the integers and scales torchao's IntxWeightOnlyConfig stores (ties included)."""
    import torch
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerGroup

    from runners.backends.gptq_solver import Grid, round_to_nearest

    weight, _ = _layer(seed=1)
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    linear.weight.data = weight.clone()
    quantize_(linear, IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32)))
    ours = round_to_nearest(weight, Grid(4, 32))
    assert torch.equal(linear.weight.qdata, ours.qdata)
    assert torch.equal(linear.weight.scale, ours.scale)


def test_dead_inputs_and_a_singular_hessian_are_handled():
    """An input that is always zero makes X^T X singular; the solver zeroes its weights and still solves."""
    import torch

    from runners.backends.gptq_solver import Grid, solve

    weight, x = _layer(seed=2)
    x[:, 5] = 0
    solved = solve(weight, x.T @ x, Grid(4, 32))
    assert torch.isfinite(solved.scale).all()
    assert int(solved.qdata[:, 5].abs().max()) == 0


# ------------------------------------------------------------------------------------ tiny model


TEXT = Path(__file__).resolve().parents[2] / "data" / "wikitext-2" / "wiki.test.raw"


@pytest.fixture(scope="module")
def tiny_lm(tiny_model):
    from runners.base import ModelSpec
    from runners.models import load_model

    return load_model(ModelSpec(source=str(tiny_model("causal-lm")), revision=None, task="causal-lm"))


def _records(start: int, count: int = 12, size: int = 600) -> list[Record]:
    text = TEXT.read_text(encoding="utf-8")
    return [Record(id=str(i), text=text[start + i * size:start + (i + 1) * size], line=1) for i in range(count)]


def _plan(loaded, weights="int4", group=32, protected=()) -> LayerPlan:
    layers = loaded.info.quantizable_layers
    return LayerPlan(task="causal-lm", weights=weights, activations="none", group_size=group,
                     quantized=tuple(n for n in layers if n not in protected), protected=tuple(protected), algorithm="gptq")


def _logits(model, tokenizer, records):
    import torch

    ids = tokenizer(records[0].text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :96]
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_tiny_model_gptq_beats_round_to_nearest_and_uses_its_calibration(tiny_lm, tmp_path):
    """On a tiny Llama: GPTQ's logits stay closer to full precision than torchao rtn's at the same
    grid, and the calibration set is really used (another set gives other integers)."""
    import copy

    import torch

    from runners.backends import gptq_backend, torchao_backend

    plan = _plan(tiny_lm)
    full = _logits(tiny_lm.model, tiny_lm.tokenizer, _records(40_000))
    gptq = gptq_backend.prepare(tiny_lm.model, tiny_lm.tokenizer, "causal-lm", _records(0), tmp_path).quantize(plan)
    rtn = copy.deepcopy(tiny_lm.model)
    torchao_backend.quantize_(rtn, plan)
    err_gptq = float((_logits(gptq.model, tiny_lm.tokenizer, _records(40_000)) - full).pow(2).mean())
    err_rtn = float((_logits(rtn, tiny_lm.tokenizer, _records(40_000)) - full).pow(2).mean())
    assert err_gptq < err_rtn
    other = gptq_backend.prepare(tiny_lm.model, tiny_lm.tokenizer, "causal-lm", _records(200_000), tmp_path).quantize(plan)
    name = plan.quantized[0]
    assert not torch.equal(gptq.solved[name].qdata, other.solved[name].qdata)
    assert gptq.stats["calibration_windows"] == 12


def test_checkpoint_reproduces_the_cpu_artifact_and_a_damaged_one_is_refused(tiny_lm, tmp_path):
    """The compressed-tensors checkpoint is loaded back by transformers and its logits equal the
    torchao artifact's (protected layer and all); a checkpoint whose packed integers changed is refused."""
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    from runners.backends import gptq_backend
    from runners.base import RunnerError

    protected = (tiny_lm.info.quantizable_layers[2],)
    candidate = gptq_backend.prepare(tiny_lm.model, tiny_lm.tokenizer, "causal-lm", _records(0), tmp_path).quantize(
        _plan(tiny_lm, protected=protected))
    out = tmp_path / "artifact"
    out.mkdir()
    config = candidate.save(out)
    checkpoint = out / gptq_backend.CHECKPOINT_DIR
    quant = json.loads((checkpoint / "config.json").read_text())["quantization_config"]
    assert quant["format"] == "pack-quantized" and protected[0] in quant["ignore"]
    assert config["checkpoint_max_abs_diff"] <= gptq_backend.CHECKPOINT_TOLERANCE
    tensors = load_file(checkpoint / "model.safetensors")
    assert f"{candidate.plan.quantized[0]}.weight_packed" in tensors and f"{protected[0]}.weight" in tensors

    reloaded, forward = gptq_backend.reload(out, config, AutoModelForCausalLM, "causal-lm")
    served = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        assert float((served(input_ids=ids).logits - forward(ids, torch.ones_like(ids))).abs().max()) <= gptq_backend.CHECKPOINT_TOLERANCE

    key = f"{candidate.plan.quantized[0]}.weight_packed"
    tensors[key] = tensors[key] ^ 0x11111111  # flip bits in every packed int4
    save_file(tensors, checkpoint / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(RunnerError, match="does not reproduce the CPU artifact"):
        gptq_backend.check_checkpoint(checkpoint, reloaded)


def test_layers_whose_width_misses_the_group_are_protected_and_recorded():
    """Group size 128 on SmolLM2's 576-wide layers cannot be grouped: those layers are listed, not failed on."""
    from runners.ptq import shape_protected

    layers = ("a.q_proj", "a.down_proj", "a.o_proj")
    columns = {"a.q_proj": 576, "a.down_proj": 1536, "a.o_proj": 576}
    assert shape_protected(layers, columns, "int4", 128) == ("a.q_proj", "a.o_proj")
    assert shape_protected(layers, columns, "int4", 64) == ()
    assert shape_protected(layers, columns, "int8", None) == ()


def test_text_calibration_is_windows_disjoint_from_what_skip_passes_over(tiny_lm):
    """Format text calibration: ``samples`` windows of ``sequence_length`` tokens, drawn after ``skip``
    windows, deterministic for a seed; a skip beyond the text is a located input error."""
    from runners.base import DatasetSpec, QuantSpec, RunnerInputError
    from runners.ptq import draw_calibration, window_calibration

    def quant(skip: int) -> QuantSpec:
        data = DatasetSpec(path=str(TEXT), format="text", skip=skip)
        return QuantSpec(weights="int4", activations="none", group_size=32, backend="gptq", calibration=data, samples=8, seed=3,
                         algorithm="gptq")

    q = quant(100)
    first = window_calibration(draw_calibration(q, "causal-lm"), q, tiny_lm.tokenizer, 64)
    again = window_calibration(draw_calibration(q, "causal-lm"), q, tiny_lm.tokenizer, 64)
    assert first == again and first.windows and first.samples == 8
    assert all(int(r.id.split("-")[1]) >= 100 for r in first.records)
    assert all(60 <= len(tiny_lm.tokenizer(r.text, add_special_tokens=False)["input_ids"]) <= 68 for r in first.records)
    q = quant(10**6)
    with pytest.raises(RunnerInputError, match="skip passes over"):
        window_calibration(draw_calibration(q, "causal-lm"), q, tiny_lm.tokenizer, 64)


def test_a_protected_layer_is_kept_and_the_layers_after_it_are_solved_again(tiny_lm, tmp_path):
    """Mixed precision with GPTQ: each candidate is one solve, so protecting a layer keeps it at full
    precision *and* re-solves every later decoder layer against what the partly-protected model feeds
    it; the layers before it are solved exactly as without protection."""
    import torch

    from runners.backends import gptq_backend

    prepared = gptq_backend.prepare(tiny_lm.model, tiny_lm.tokenizer, "causal-lm", _records(0), tmp_path)
    layers = tiny_lm.info.quantizable_layers
    protected = "model.layers.0.mlp.down_proj"
    full = prepared.quantize(_plan(tiny_lm))
    mixed = prepared.quantize(_plan(tiny_lm, protected=(protected,)))
    modules = dict(mixed.model.named_modules())
    assert type(modules[protected].weight).__name__ == "Parameter"  # plain float weights
    assert torch.equal(modules[protected].weight, dict(tiny_lm.model.named_modules())[protected].weight)
    assert all(torch.equal(full.solved[n].qdata, mixed.solved[n].qdata) for n in layers if ".layers.0." in n and n != protected)
    assert all(not torch.equal(full.solved[n].qdata, mixed.solved[n].qdata) for n in layers if ".layers.1." in n)
