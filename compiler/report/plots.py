"""PNG plots for the play-7 report.

- ``tradeoff.png`` (every run with a baseline): the overall metric against footprint and against p95
  latency, for fp32 and every configuration measured, with the band the gate allows (from the fp32
  value down to the gate's bar) shaded.
- ``mixed_precision.png`` (when play 5 ran): overall and hardest-slice quality and the footprint
  against the number of layers kept at fp32 (integer ticks; 0 = plain PTQ), with the fp32 reference
  and the gate's bar.
- ``sensitivity.png`` (when play 5 ranked layers): the proxy error per layer (its unit on the axis),
  the layers kept at fp32 marked.
- ``position_buckets.png`` (causal-lm on format text): perplexity by token position in the window,
  the fp32 baseline and every candidate (``compiler.report.behaviour``).

matplotlib is the ``report`` extra, imported only when there is something to plot; without it the
report renders its tables only. PNGs are byte-deterministic for the same lock and matplotlib (Agg,
fixed size and DPI, ``metadata={"Software": None}``) and written only when their bytes differ.
"""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from typing import Any

from compiler.playbook.lockfile import write_if_changed

COLORS = {"pass": "tab:green", "close": "tab:orange", "broken": "tab:red", "miss": "tab:grey", None: "black"}


def _as_dict(lock: Any) -> dict:
    return lock if isinstance(lock, dict) else lock.data()


def write_plots(folder: Path, lock: Any, root: Path | None = None) -> tuple[dict[str, str], list[Path]]:
    """(plot name -> file name relative to ``folder``, files that changed). ``root``: the repository
    (default: ``folder``'s when it is ``reports/<name>``, else the one around the working directory)."""
    from compiler.report.render import report_view

    lock = _as_dict(lock)
    if root is None and folder.parent.name == "reports":
        root = folder.parent.parent
    view = report_view(lock, None, root)
    wanted = {}
    if view["points"] and view["facts"]:
        wanted["tradeoff"] = (_tradeoff, (7.5, 3.6))
    if view["curve"]:
        wanted["mixed_precision"] = (_curve, (7, 5.2))
    if view["sensitivity"]:
        wanted["sensitivity"] = (_sensitivity, (7, 4.6))
    if view["behaviour"]["series"]:
        wanted["position_buckets"] = (_position_buckets, (6, 3.4))
    if not wanted or importlib.util.find_spec("matplotlib") is None:
        return {}, []
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    names: dict[str, str] = {}
    changed: list[Path] = []
    with matplotlib.rc_context({"svg.hashsalt": "quantgate", "path.simplify": True, "font.size": 8}):
        for name, (draw, figsize) in wanted.items():
            fig = plt.figure(figsize=figsize, dpi=100)
            try:
                draw(fig, lock, view)
                buffer = io.BytesIO()
                fig.savefig(buffer, format="png", metadata={"Software": None}, bbox_inches=None)
            finally:
                plt.close(fig)
            file = f"{name}.png"
            names[name] = file
            if write_if_changed(folder / file, buffer.getvalue()):
                changed.append(folder / file)
    return names, changed


def _bar(view: dict) -> dict:
    judgment = next((j for j in reversed(view["judgments"]) if j.get("candidate") == view["candidate"]),
                    view["judgments"][-1] if view["judgments"] else None)
    return (judgment or {}).get("bar") or {}


def _metric_label(view: dict, where: str = "overall") -> str:
    facts = view["facts"]
    return f"{facts['metric']} {where}\n({'lower' if facts['lower'] else 'higher'} is better)"


def _gate_band(ax, baseline: float | None, bar: float | None, label: bool) -> None:
    """fp32 as a line, the gate's bar as a dashed line, the drop it allows shaded between them."""
    if baseline is not None:
        ax.axhline(baseline, color="black", linewidth=0.8, label="fp32" if label else None)
    if bar is not None:
        ax.axhline(bar, color="tab:red", linestyle="--", linewidth=0.8, label="gate bar (worst allowed)" if label else None)
        if baseline is not None:
            ax.axhspan(min(bar, baseline), max(bar, baseline), color="tab:green", alpha=0.08,
                       label="drop the gate allows" if label else None)


def _tradeoff(fig, lock: dict, view: dict) -> None:
    points = view["points"]
    base = next((p for p in points if p["play"] == "baseline"), None)
    bar = _bar(view).get("overall")
    performance = ((lock.get("plays") or {}).get("baseline") or {}).get("result", {}).get("performance") or {}
    shape = f", batch {performance['batch_size']} × {performance['sequence_length']} tokens" if performance.get("batch_size") else ""
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, xlabel, scale in ((axes[0], "footprint", "footprint (MiB)", 2**-20), (axes[1], "p95", f"p95 latency (ms{shape})", 1.0)):
        _gate_band(ax, base["value"] if base else None, bar, label=ax is axes[0])
        shown = [p for p in points if p.get(key) is not None]
        for p in shown:
            x = p[key] * scale
            marker = "*" if p["play"] == "baseline" else "o"
            filled = p["play"] == "baseline" or p.get("final")
            ax.plot(x, p["value"], marker, color=COLORS.get(p["decision"], "tab:blue"), markersize=9 if p["play"] == "baseline" else 6,
                    fillstyle="full" if filled else "none", markeredgewidth=1.2)
            ax.annotate(p["short"], (x, p["value"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        xs = [p[key] * scale for p in shown]
        target = view.get("latency_target_ms") if key == "p95" else None
        if target:
            ax.axvline(target, color="tab:purple", linestyle=":", linewidth=1)
            ax.annotate(f"p95 target {target:g} ms", (target, 0.02), xycoords=("data", "axes fraction"), xytext=(3, 0),
                        textcoords="offset points", fontsize=6, color="tab:purple")
            xs.append(target)
        if xs:
            ax.set_xlim(0, max(xs) * 1.2)
        ys = [p["value"] for p in points] + ([bar] if bar is not None else [])
        span = (max(ys) - min(ys)) or abs(max(ys)) * 0.01 or 1.0
        ax.set_ylim(min(ys) - span * 0.1, max(ys) + span * 0.15)
        ax.set_xlabel(xlabel)
        ax.grid(True, linewidth=0.3, alpha=0.5)
    axes[0].set_ylabel(_metric_label(view))
    axes[0].legend(loc="best", fontsize=6, framealpha=0.7)
    fig.suptitle(f"Trade-off: {view['facts']['metric']} vs size and latency (green: passed the gate; orange: close; red: broken; filled: locked)", fontsize=8)
    fig.tight_layout()


def _curve(fig, lock: dict, view: dict) -> None:
    """Quality (overall, hardest slice) and footprint against layers kept at fp32; 0 = plain PTQ."""
    from matplotlib.ticker import MaxNLocator

    plays = lock.get("plays") or {}
    base = ((plays.get("baseline") or {}).get("result") or {})
    bq, bp = base.get("quality") or {}, base.get("performance") or {}
    points = [(len(e["protected_layers"]), e["value"], e["hardest"], bool(e.get("passed")), e.get("footprint_bytes")) for e in view["curve"]]
    ptq = (plays.get("ptq") or {}).get("result") or {}
    if ptq.get("quality"):
        points.append((0, ptq["quality"]["value"], ptq["quality"]["hardest"], False, (ptq.get("performance") or {}).get("footprint_bytes")))
    points.sort(key=lambda p: (p[0], p[1]))
    bar = _bar(view)
    axes = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 3, 2]})
    for ax, index, where, bar_key, fp32 in ((axes[0], 1, "overall", "overall", bq.get("value")), (axes[1], 2, "hardest slice", "hardest", bq.get("hardest"))):
        _gate_band(ax, fp32, bar.get(bar_key), label=ax is axes[0])
        ax.plot([p[0] for p in points], [p[index] for p in points], "-", color="tab:blue", linewidth=1)
        for p in points:
            ax.plot(p[0], p[index], "o", color="tab:blue", fillstyle="full" if p[3] else "none", markersize=6)
        ax.set_ylabel(_metric_label(view, where), fontsize=7)
        ax.grid(True, linewidth=0.3, alpha=0.5)
    axes[0].legend(loc="best", fontsize=6, framealpha=0.7)
    sized = [(p[0], p[4] / 2**20) for p in points if p[4] is not None]
    axes[2].plot([s[0] for s in sized], [s[1] for s in sized], "s-", color="tab:purple", markersize=4, linewidth=1, label="candidate")
    if bp.get("footprint_bytes"):
        axes[2].axhline(bp["footprint_bytes"] / 2**20, color="black", linewidth=0.8, label="fp32")
    axes[2].set_ylabel("footprint (MiB)", fontsize=7)
    tops = [s[1] for s in sized] + ([bp["footprint_bytes"] / 2**20] if bp.get("footprint_bytes") else [])
    axes[2].set_ylim(0, max(tops, default=1) * 1.2)
    axes[2].legend(loc="best", fontsize=6, framealpha=0.7)
    axes[2].grid(True, linewidth=0.3, alpha=0.5)
    axes[2].set_xlabel("layers kept at fp32 (0 = plain PTQ)")
    axes[2].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_title("Mixed precision: quality and size vs layers kept at fp32 (filled: passed the gate)", fontsize=8)
    fig.tight_layout()


def _position_buckets(fig, lock: dict, view: dict) -> None:
    from compiler.report.behaviour import draw_buckets

    draw_buckets(fig, view["behaviour"])


def _sensitivity(fig, lock: dict, view: dict) -> None:
    items = view["sensitivity"][:20]
    protected = set(view["protected"])
    ax = fig.add_subplot(1, 1, 1)
    names = [k for k, _ in reversed(items)]
    values = [v for _, v in reversed(items)]
    colors = ["tab:orange" if k in protected else "tab:blue" for k in names]
    ax.barh(names, values, color=colors)
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > 100:
        ax.set_xscale("log")
    ax.set_xlabel("relative squared output error ‖y_q − y‖² / ‖y‖² when only this layer is quantized (unitless)")
    ax.set_title(f"Per-layer sensitivity, top {len(items)} of {len(view['sensitivity'])} (orange: kept at fp32)", fontsize=8)
    ax.tick_params(axis="y", labelsize=6)
    fig.tight_layout()
