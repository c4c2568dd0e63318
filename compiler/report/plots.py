"""PNG plots for the play-7 report: the mixed-precision curve and per-layer sensitivity.

matplotlib is the ``report`` extra and is imported only when a lock has something to plot (a lock
without mixed precision draws nothing). Without matplotlib the report renders its tables only.

PNGs are byte-deterministic for the same lock and the same matplotlib: the Agg backend, fixed size
and DPI, and ``metadata={"Software": None}`` (no version string in the file); written only when the
bytes differ, so an unchanged rerun changes no file.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

from compiler.playbook.lockfile import write_if_changed


def _mixed_precision(lock: dict) -> dict:
    return (((lock.get("plays") or {}).get("mixed_precision") or {}).get("result")) or {}


def write_plots(folder: Path, lock: dict) -> tuple[dict[str, str], list[Path]]:
    """(plot name -> file name relative to ``folder``, files that changed)."""
    mp = _mixed_precision(lock)
    wanted = {}
    if mp.get("evaluations"):
        wanted["mixed_precision"] = _curve
    if mp.get("sensitivity"):
        wanted["sensitivity"] = _sensitivity
    if not wanted or importlib.util.find_spec("matplotlib") is None:
        return {}, []
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    names: dict[str, str] = {}
    changed: list[Path] = []
    with matplotlib.rc_context({"svg.hashsalt": "quantgate", "path.simplify": True, "font.size": 9}):
        for name, draw in wanted.items():
            fig = plt.figure(figsize=(7, 4.2), dpi=100)
            try:
                draw(fig, lock, mp)
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches=None)
            finally:
                plt.close(fig)
            file = f"{name}.png"
            names[name] = file
            if write_if_changed(folder / file, buffer.getvalue()):
                changed.append(folder / file)
    return names, changed


def _curve(fig, lock: dict, mp: dict) -> None:
    """Overall and hardest-slice quality (separate panels: their scales differ) against the number of
    layers kept at full precision; ptq's candidate is the point at 0; filled markers passed the gate."""
    metric = (lock.get("deltas") or {}).get("metric") or "quality"
    plays = lock.get("plays") or {}
    points = [(len(e["protected_layers"]), e["value"], e["hardest"], bool(e.get("passed")), e.get("footprint_bytes")) for e in mp["evaluations"]]
    ptq = ((plays.get("ptq") or {}).get("result") or {})
    if ptq.get("quality"):
        points.append((0, ptq["quality"]["value"], ptq["quality"]["hardest"], False, (ptq.get("performance") or {}).get("footprint_bytes")))
    points.sort(key=lambda p: (p[0], p[1]))
    judgments = (((plays.get("gate") or {}).get("result") or {}).get("judgments")) or []
    bar = judgments[0]["bar"] if judgments else None
    axes = fig.subplots(2, 1, sharex=True)
    for ax, index, label, bar_key in ((axes[0], 1, "overall", "overall"), (axes[1], 2, "hardest slice", "hardest")):
        ax.plot([p[0] for p in points], [p[index] for p in points], "-", color="tab:blue", linewidth=1)
        for p in points:
            ax.plot(p[0], p[index], "o", color="tab:blue", fillstyle="full" if p[3] else "none", markersize=6)
        if bar:
            ax.axhline(bar[bar_key], color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel(f"{metric}\n({label})", fontsize=8)
    axes[0].set_title("Mixed precision: quality vs layers kept at full precision (filled: passed; dotted: gate bar)", fontsize=9)
    axes[1].set_xlabel("layers kept at full precision")
    fig.tight_layout()


def _sensitivity(fig, lock: dict, mp: dict) -> None:
    items = sorted(mp["sensitivity"].items(), key=lambda kv: (-kv[1], kv[0]))[:20]
    ax = fig.add_subplot(1, 1, 1)
    ax.barh([k for k, _ in reversed(items)], [v for _, v in reversed(items)])
    ax.set_xlabel("proxy error when quantized alone (higher = more sensitive)")
    ax.set_title("Per-layer sensitivity (top 20)")
    ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
