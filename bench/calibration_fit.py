"""Calibration fit on the real model: a matched calibration set passes, a mismatched one is flagged and
makes GPTQ worse.

    .venv/bin/python bench/calibration_fit.py [--calibration-windows 32] [--eval-windows 24]
        [--weights int4] [--group-size 32] [--min-fit 0.5] [--no-gptq]

SmolLM2-135M-Instruct (the GGUF of manifests/smollm2-wikitext.yaml), evaluated on the first
``--eval-windows`` windows of data/wikitext-2/wiki.test.raw (256 tokens, stride 128, as the manifest
scores them). Calibration sets, each ``--calibration-windows`` windows of 256 tokens:

- ``wikitext``: WikiText-2 windows after the evaluation span (disjoint from every evaluated token);
- ``stsb``: STS-B training sentences (English, another domain and length: a reference point);
- ``python-code``: data/code/python-stdlib.txt (Python source: the deliberate mismatch).

For each set: the fit figure and its components (``runners.calibration_fit``), flagged yes/no against
``--min-fit``, the seconds the fit took, then (when the ``gptq`` backend is installed) the WikiText
perplexity of the model quantized by GPTQ with that calibration set, and its ratio to full precision,
side by side in one run. Without the backend it prints "gptq backend not available".
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runners.base import DEFAULT_MIN_FIT, DatasetSpec, ModelSpec  # noqa: E402
from runners.datasets import Record  # noqa: E402

LENGTH, STRIDE = 256, 128


def perplexity(forward, tokenizer, text: str, windows: int) -> float:
    from runners.tasks import score_records

    scored = score_records("causal-lm", forward, tokenizer, [Record(id="text", text=text)], batch_size=4,
                           sequence_length=LENGTH, dataset_format="text", stride=STRIDE, limit=windows)
    return scored.metrics(range(len(scored.ids)))["perplexity"]


def window_records(tokenizer, text: str, count: int, seed: int, name: str) -> list[Record]:
    """``count`` windows of LENGTH tokens of ``text`` (seeded, non-overlapping), one record each: what a
    backend's ``prepare`` receives, the same for every set."""
    import random

    from runners.calibration_fit import text_windows

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    spans = text_windows(len(ids), LENGTH)
    chosen = sorted(random.Random(seed).sample(range(len(spans)), min(count, len(spans))))
    return [Record(id=f"{name}-{i}", text=tokenizer.decode(ids[spans[i][0]:spans[i][1]])) for i in chosen]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calibration-windows", type=int, default=32, help="calibration windows of 256 tokens per set (default 32)")
    parser.add_argument("--eval-windows", type=int, default=24, help="WikiText evaluation windows (default 24; the manifest uses 40)")
    parser.add_argument("--weights", default="int4", choices=("int4", "int8"), help="GPTQ weight precision (default int4)")
    parser.add_argument("--group-size", type=int, default=32, help="GPTQ weight group size (default 32)")
    parser.add_argument("--min-fit", type=float, default=DEFAULT_MIN_FIT, help=f"threshold (default {DEFAULT_MIN_FIT}, the manifest default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-gptq", action="store_true", help="measure the fit only")
    args = parser.parse_args()

    import torch

    from runners.calibration_fit import calibration_fit
    from runners.datasets import read_examples
    from runners.models import load_model

    torch.manual_seed(args.seed)
    started = time.perf_counter()
    loaded = load_model(ModelSpec(source=str(ROOT / "models/smollm2-135m-instruct"), revision=None, task="causal-lm",
                                  gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"))
    tokenizer = loaded.tokenizer
    print(f"model loaded in {time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}")

    wiki = (ROOT / "data/wikitext-2/wiki.test.raw").read_text(encoding="utf-8")
    ids = tokenizer(wiki, add_special_tokens=False)["input_ids"]
    eval_end = (args.eval_windows - 1) * STRIDE + LENGTH  # the last evaluated token, exclusive
    eval_text = tokenizer.decode(ids[:eval_end])
    after_eval = wiki[len(tokenizer.decode(ids[:eval_end + LENGTH])):]  # one window of gap, then calibration
    stsb = read_examples(DatasetSpec(path=str(ROOT / "data/stsb/sts-train.tsv"), format="tsv", columns={"score": 4, "text_a": 5, "text_b": 6}),
                         "sentence-similarity")
    code = (ROOT / "data/code/python-stdlib.txt").read_text(encoding="utf-8")
    sets = {
        "wikitext": ([Record(id="text", text=after_eval)], "text"),
        "stsb": (stsb, "tsv"),
        "python-code": ([Record(id="text", text=code)], "text"),
    }

    rows = []
    for name, (records, fmt) in sets.items():
        t0 = time.perf_counter()
        fit = calibration_fit(loaded.model, tokenizer, (records, fmt), ([Record(id="text", text=wiki)], "text"),
                              sequence_length=LENGTH, stride=STRIDE, limit=args.eval_windows, min_fit=args.min_fit,
                              seed=args.seed, max_segments=args.calibration_windows)
        seconds = time.perf_counter() - t0
        c = fit.comparisons[0]
        rows.append({"set": name, "fit": fit.fit, "length": c.length, "unknown": c.unknown, "hidden": c.hidden,
                     "cpt": c.chars_per_token[0], "shift": c.hidden_shift, "flagged": "yes" if fit.low else "no",
                     "seconds": seconds})
        print(f"fit {name}: {fit.fit:.3f} in {seconds:.1f} s ({c})", flush=True)

    gptq = None if args.no_gptq else _gptq()
    fp_ppl = None
    if gptq is not None:
        fp_ppl = perplexity(loaded.forward, tokenizer, eval_text, args.eval_windows)
        print(f"full precision perplexity: {fp_ppl:.3f}", flush=True)
        from runners.backends.protocol import LayerPlan

        layers = tuple(loaded.info.quantizable_layers)
        plan = LayerPlan(task="causal-lm", weights=args.weights, activations="none", group_size=args.group_size,
                         quantized=layers, protected=())
        texts = {"wikitext": after_eval, "stsb": "\n".join(t for r in stsb for t in r.texts), "python-code": code}
        for row in rows:
            records = window_records(tokenizer, texts[row["set"]], args.calibration_windows, args.seed, row["set"])
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="bench-gptq-") as workdir:
                candidate = gptq.prepare(loaded.model, tokenizer, "causal-lm", records, Path(workdir)).quantize(plan)
                row["ppl"] = perplexity(candidate.forward, tokenizer, eval_text, args.eval_windows)
            row["gptq_s"] = time.perf_counter() - t0
            print(f"gptq {row['set']}: perplexity {row['ppl']:.3f} in {row['gptq_s']:.0f} s", flush=True)
    elif not args.no_gptq:
        print("gptq backend not available")

    print()
    print(f"SmolLM2-135M, eval: first {args.eval_windows} WikiText-2 windows ({LENGTH} tokens, stride {STRIDE}); "
          f"calibration: {args.calibration_windows} windows; min_fit {args.min_fit:g}"
          + (f"; GPTQ {args.weights} group {args.group_size}; fp32 perplexity {fp_ppl:.3f}" if fp_ppl else ""))
    header = f"{'calibration':<12} {'fit':>6} {'length':>7} {'unknown':>8} {'hidden':>7} {'chars/tok':>9} {'shift':>7} {'flagged':>8} {'fit s':>6}"
    if fp_ppl:
        header += f" {'gptq ppl':>9} {'ppl/fp32':>9}"
    print(header)
    for r in rows:
        line = (f"{r['set']:<12} {r['fit']:>6.3f} {r['length']:>7.3f} {r['unknown']:>8.3f} {r['hidden']:>7.3f} {r['cpt']:>9.2f} "
                f"{r['shift']:>7.3f} {r['flagged']:>8} {r['seconds']:>6.1f}")
        if fp_ppl and "ppl" in r:
            line += f" {r['ppl']:>9.3f} {r['ppl'] / fp_ppl:>9.3f}"
        print(line)
    return 0


def _gptq():
    """The ``gptq`` backend module, or None when it is not registered or not written yet."""
    from runners import backends
    from runners.base import RunnerInputError

    try:
        return backends.load("gptq")
    except (RunnerInputError, ModuleNotFoundError) as exc:
        print(f"gptq backend not available ({exc})")
        return None


if __name__ == "__main__":
    raise SystemExit(main())
