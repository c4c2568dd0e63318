"""Wall time per play for both demo manifests, full evaluations spent, and a no-op rerun next to
``quantgate plan``. Runs in a throwaway copy of the repository (models, data, manifests), so the
working tree's locks are untouched. Takes several minutes (two real runs on CPU).

    .venv/bin/python bench/playbook.py [manifest ...]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEMOS = ["manifests/minilm-stsb.yaml", "manifests/minilm-stsb-int4.yaml"]
QUANTGATE = [sys.executable, "-m", "compiler.cli"]


def copy_repo(target: Path) -> None:
    for rel in ("models/all-MiniLM-L6-v2", "data/stsb"):
        shutil.copytree(ROOT / rel, target / rel)
    (target / "manifests").mkdir()
    for rel in DEMOS:
        shutil.copy(ROOT / rel, target / rel)
    if (ROOT / "quantgate.yaml").is_file():
        shutil.copy(ROOT / "quantgate.yaml", target / "quantgate.yaml")


def timed(cmd: list[str], cwd: Path, repeat: int = 3) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, env=env, check=False, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    from compiler import api

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    demos = sys.argv[1:] or DEMOS
    with tempfile.TemporaryDirectory(prefix="quantgate-bench-") as tmp:
        repo = Path(tmp)
        copy_repo(repo)
        for rel in demos:
            manifest = repo / rel
            start = time.perf_counter()
            result = api.run(manifest, root=repo)
            total = time.perf_counter() - start
            lock = result.lock
            print(f"\n== {rel}: {lock['verdict']}" + (f" ({lock['final']['candidate']})" if lock.get("final") else ""))
            print(f"{'play':<18}{'wall s':>10}")
            for play, seconds in result.outcome.seconds.items():
                print(f"{play:<18}{seconds:>10.1f}")
            print(f"{'total run':<18}{total:>10.1f}")
            evals = lock["evaluations"]
            print(f"full evaluations: {evals['full']} {evals['by_play']}")
            mp = (lock["plays"]["mixed_precision"].get("result") or {})
            if mp:
                print(f"mixed precision: {mp.get('full_evaluations')} full evaluations "
                      f"(one-at-a-time fallback would spend {mp.get('one_at_a_time_cost')}), "
                      f"{len(lock['final']['protected_layers']) if lock.get('final') else '-'} layers protected")
            noop = timed([*QUANTGATE, "run", rel], repo)
            plan = timed([*QUANTGATE, "plan", rel], repo)
            print(f"no-op rerun (quantgate run, best of 3): {noop:.2f} s   quantgate plan: {plan:.2f} s   ratio {noop / plan:.2f}x")


if __name__ == "__main__":
    main()
