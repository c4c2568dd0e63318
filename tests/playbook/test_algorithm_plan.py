"""``quantization.algorithm`` in the plan: an accelerator-only algorithm on a CPU envelope is refused by
``quantgate plan`` before anything runs, located at the key, in words; gptq resolves to its backend."""

from __future__ import annotations

from compiler.cli import main


def _causal(repo) -> None:
    repo.edit("task: sentence-similarity", "task: causal-lm")
    text = repo.manifest.read_text().replace("columns: {score: 0, text_a: 1, text_b: 2}", "columns: {prompt: 1, completion: 2}")
    repo.write_manifest(text.replace("metric: spearman", "metric: perplexity"))
    repo.edit("  weights: int8\n  activations: none\n  backend: torchao\n", "  weights: int4\n  activations: none\n  group_size: 64\n  algorithm: awq\n")


def test_awq_on_a_cpu_envelope_is_refused_at_the_algorithm_key(repo, capsys):
    _causal(repo)
    assert main(["plan", str(repo.manifest), "--root", str(repo.root)]) == 2
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("manifests/demo.yaml:31:14: quantization.algorithm: no registered backend can run weights=int4 activations=none "
                            "with algorithm awq for task 'causal-lm' on cpu")
    assert "llm-compressor: awq needs an accelerator: llm-compressor builds it on cuda only" in first


def test_gptq_resolves_to_the_gptq_backend(repo, capsys):
    _causal(repo)
    repo.edit("algorithm: awq", "algorithm: gptq")
    assert main(["plan", str(repo.manifest), "--root", str(repo.root), "--format", "json"]) == 0
    assert '"backend": "gptq"' in capsys.readouterr().out


def test_the_report_says_how_a_gptq_candidate_was_built_and_where_its_gpu_checkpoint_is(repo):
    import dataclasses

    from fake_runner import FakeRunner, Script

    from compiler import api

    extra = {"algorithm": "gptq", "calibration_windows": 64, "calibration_tokens": 16384, "act_order": True,
             "checkpoint": "compressed-tensors", "checkpoint_format": "compressed-tensors pack-quantized",
             "checkpoint_max_abs_diff": 0.0, "shape_protected": ["encoder.layer.0.attention.self.query"]}

    class GptqRunner(FakeRunner):
        def ptq(self, *args, **kwargs):
            result = super().ptq(*args, **kwargs)
            return dataclasses.replace(result, config={**result.config, **extra})

    api.run(repo.manifest, runner=GptqRunner(Script(), root=repo.root), root=repo.root)
    report = (repo.root / "reports" / "demo" / "report.md").read_text()
    assert "- algorithm: gptq on 64 calibration windows (16384 tokens), activation order on" in report
    assert "/compressed-tensors` (compressed-tensors pack-quantized, the same integers and scales; its logits match the CPU artifact's within 0" in report
    assert "- kept at fp32 because their input width is not a multiple of the group size: `encoder.layer.0.attention.self.query`" in report
