"""Play 8, part 1: a manifest's ``rollback:`` section compiled into Prometheus alerting rules.

``compile_rules(manifest, monitoring, lock_link)`` returns the rule file as plain data (one group,
one alert per rollback rule the manifest sets); ``dump_rules`` is its canonical text, so the same
manifest and repository settings always give the same bytes and ``write_rules`` writes only when
they change. The live query behind each rule comes from ``quantgate.yaml`` (``monitoring:``), see
``compiler.manifest.repo_config.Monitoring`` for the defaults. ``synthetic_tests`` builds a ``promtool test
rules`` file whose series breach each rule (and fire) and stay healthy (and do not) for the default
queries.
"""

from __future__ import annotations

import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from string import Template

from compiler.errors import InvalidInput, Problem
from compiler.files import dump_yaml, write_if_changed
from compiler.manifest.model import LOWER_IS_BETTER, Manifest
from compiler.manifest.repo_config import Monitoring

#: The rollback rules in the order they are written, evaluated and reported.
RULES = ("quality_floor", "error_rate_ceiling", "latency_p95_ms")

ALERT_NAMES = {
    "quality_floor": "QuantgateQualityFloor",
    "error_rate_ceiling": "QuantgateErrorRateCeiling",
    "latency_p95_ms": "QuantgateLatencyP95",
}
_EXPR_FIELD = {"quality_floor": "quality_expr", "error_rate_ceiling": "error_ratio_expr", "latency_p95_ms": "latency_p95_ms_expr"}
#: The live value in an annotation (Go template, rendered by Prometheus when the alert fires).
VALUE = '{{ $value | printf "%.4g" }}'
_WHAT = {"quality_floor": "live quality", "error_rate_ceiling": "error ratio", "latency_p95_ms": "p95 latency (ms)"}

HEADER = (
    "# Written by quantgate (`quantgate rules`) from the manifest's rollback: section. Do not edit:\n"
    "# change the manifest (thresholds, for:) or quantgate.yaml (monitoring: queries) and regenerate.\n"
)


@dataclass(frozen=True)
class Rule:
    """One rollback rule as evaluated: breach when the live value is on the wrong side of ``threshold``."""

    name: str  # quality_floor | error_rate_ceiling | latency_p95_ms
    threshold: float
    hold: str  # the manifest's for: duration
    query: str  # PromQL returning the live value
    lower_breaches: bool  # True: a value below the threshold breaches (a floor)

    @property
    def operator(self) -> str:
        return "<" if self.lower_breaches else ">"

    def breached(self, value: float) -> bool:
        """NaN never breaches (Prometheus comparisons with NaN are false too)."""
        if math.isnan(value):
            return False
        return value < self.threshold if self.lower_breaches else value > self.threshold

    def worst(self, values: list[float]) -> float:
        """The value that breaches first among several series (NaN ignored; NaN if all are)."""
        real = [v for v in values if not math.isnan(v)]
        if not real:
            return math.nan
        return min(real) if self.lower_breaches else max(real)


def _substitute(template: str, values: dict[str, str], key: str) -> str:
    try:
        return Template(template).substitute(values)
    except (KeyError, ValueError) as exc:
        allowed = ", ".join("$" + k for k in sorted(values))
        raise InvalidInput(Problem(path="quantgate.yaml", key_path=f"monitoring.{key}",
                                   message=f"bad placeholder in {template!r} ({exc}); allowed: {allowed}")) from exc


def rollback_rules(manifest: Manifest, monitoring: Monitoring) -> list[Rule]:
    """The rules the manifest sets, with their live queries, in ``RULES`` order.

    The quality floor of a lower-is-better metric (perplexity) is a ceiling: quality breaches upwards.
    """
    name = manifest.metadata.name
    selector = _substitute(monitoring.selector, {"name": name}, "selector")
    rollback = manifest.rollback
    rules = []
    for rule in RULES:
        threshold = getattr(rollback, rule)
        if threshold is None:
            continue
        field = _EXPR_FIELD[rule]
        query = _substitute(getattr(monitoring, field), {"selector": selector, "name": name}, field)
        lower = rule == "quality_floor" and manifest.evaluation.metric not in LOWER_IS_BETTER
        rules.append(Rule(rule, float(threshold), getattr(rollback.for_, rule), query, lower))
    return rules


def _owners(values: list[str]) -> str:
    return ",".join(values) if values else "unassigned"


def format_number(value: float) -> str:
    """Shortest exact text for a threshold (0.78, 80, 1e-05)."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def compile_rules(manifest: Manifest, monitoring: Monitoring, lock_link: str, manifest_link: str) -> dict:
    """The Prometheus rule file (``groups:``) for one manifest, as plain data."""
    name = manifest.metadata.name
    alerts = []
    for rule in rollback_rules(manifest, monitoring):
        direction = "below its floor" if rule.lower_breaches else "above its ceiling"
        alerts.append({
            "alert": ALERT_NAMES[rule.name],
            "expr": f"({rule.query}) {rule.operator} {format_number(rule.threshold)}",
            "for": rule.hold,
            "labels": {
                "severity": monitoring.severity,
                "manifest": name,
                "rollback_rule": rule.name,
                "on_call": _owners(manifest.owners.on_call),
                "product_owner": _owners(manifest.owners.product_owner),
            },
            "annotations": {
                "summary": f"{name}: {_WHAT[rule.name]} {VALUE} is {direction} {format_number(rule.threshold)} (rollback rule {rule.name})",
                "description": (
                    f"The quantized {name} breached its {rule.name} rollback rule for {rule.hold}. "
                    f"`quantgate monitor {manifest_link}` flips the serving flag to full precision "
                    "(both artifacts stay deployed); the lock records what was decided."
                ),
                "lock": lock_link,
                "manifest": manifest_link,
            },
        })
    return {"groups": [{"name": f"quantgate-{name}", "rules": alerts}]}


def dump_rules(rules: dict) -> str:
    return dump_yaml(rules, HEADER)


# ------------------------------------------------------------------------------------ lock links

def lock_link(lock_rel: str, name: str, monitoring: Monitoring) -> str:
    """A link to the lock: ``monitoring.lock_url`` filled in when ``monitoring.repository_url`` is
    set, else the repo-relative path. Never derived from the clone's git remote, so every clone
    compiles the same bytes."""
    if not monitoring.repository_url:
        return lock_rel
    values = {"repository_url": monitoring.repository_url.rstrip("/"), "lock_path": lock_rel, "name": name}
    return _substitute(monitoring.lock_url, values, "lock_url")


# -------------------------------------------------------------------------- promtool test series


def _round(value: float, up: bool) -> float:
    """``value`` rounded to two significant digits, up or down: a "nice" number whose text Prometheus
    and Python print alike (no ties for ``%.4g`` to break differently)."""
    from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

    if value == 0:
        return 0.0
    d = Decimal(repr(float(value)))
    return float(d.quantize(Decimal(1).scaleb(d.adjusted() - 1), rounding=ROUND_CEILING if up else ROUND_FLOOR))


def synthetic_value(rule: Rule, breach: bool) -> float:
    """The live value the synthetic series produce: clearly past the threshold, or clearly inside."""
    t = rule.threshold
    if rule.name == "quality_floor":
        margin = max(abs(t) * 0.1, 0.05)
        below = breach == rule.lower_breaches
        return _round(t - margin, False) if below else _round(t + margin, True)
    if breach:
        value = _round(max(t * 1.5, 0.01 if rule.name == "error_rate_ceiling" else 1.0), True)
        return min(value, 1.0) if rule.name == "error_rate_ceiling" else value
    return _round(t * 0.5, False)


def synthetic_tests(manifest: Manifest, rules_doc: dict, monitoring: Monitoring | None = None) -> dict:
    """A ``promtool test rules`` file for the default queries: one test where the series breach every
    rule for longer than its ``for:`` and each alert fires with its labels and annotations, one where
    they stay on the healthy side and nothing fires. ``rules_doc`` is the ``compile_rules`` output for
    ``manifest`` (its annotations are expected verbatim, ``$value`` rendered). Refuses
    (``ValueError``) for customised queries, whose series it cannot know."""
    from compiler.manifest.quantities import parse_duration

    monitoring = monitoring or Monitoring()
    defaults = Monitoring()
    if any(getattr(monitoring, f) != getattr(defaults, f) for f in ("selector", *_EXPR_FIELD.values())):
        raise ValueError("synthetic series exist only for the default monitoring queries")
    name = manifest.metadata.name
    rules = rollback_rules(manifest, monitoring)
    longest = max((parse_duration(r.hold) for r in rules), default=0)
    minutes = longest // 60 + 10  # the series outlast the longest for: by ten 1m samples
    samples = minutes + 5
    sel = f'model="{name}"'

    def series(breach: bool) -> list[dict]:
        out = []
        for rule in rules:
            value = synthetic_value(rule, breach)
            if rule.name == "quality_floor":
                out.append({"series": f"quantgate_model_quality{{{sel}}}", "values": f"{format_number(value)}x{samples}"})
            elif rule.name == "error_rate_ceiling":
                # 1000 requests a minute, value * 1000 of them failed.
                out.append({"series": f"quantgate_requests_total{{{sel}}}", "values": f"0+1000x{samples}"})
                out.append({"series": f"quantgate_requests_failed_total{{{sel}}}", "values": f"0+{format_number(value * 1000)}x{samples}"})
            else:
                # Every request in one bucket starting at 0: p95 = 0.95 * le, so le = value / 0.95 (ms -> s).
                le = format_number(value / 950)
                out.append({"series": f'quantgate_request_duration_seconds_bucket{{{sel},le="{le}"}}', "values": f"0+100x{samples}"})
                out.append({"series": f'quantgate_request_duration_seconds_bucket{{{sel},le="+Inf"}}', "values": f"0+100x{samples}"})
        return out

    compiled = {a["alert"]: a for a in rules_doc["groups"][0]["rules"]}

    def expected(breach: bool) -> list[dict]:
        out = []
        for rule in rules:
            alert = compiled[ALERT_NAMES[rule.name]]
            value = synthetic_value(rule, breach)
            labels = dict(alert["labels"])
            if rule.name == "quality_floor":
                labels["model"] = name  # the only query that keeps the series' labels
            annotations = dict(alert["annotations"])
            annotations["summary"] = annotations["summary"].replace(VALUE, f"{value:.4g}")
            fires = rule.breached(value)
            out.append({"eval_time": f"{minutes}m", "alertname": ALERT_NAMES[rule.name],
                        "exp_alerts": [{"exp_labels": labels, "exp_annotations": annotations}] if fires else []})
        return out

    return {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {"interval": "1m", "input_series": series(True), "alert_rule_test": expected(True)},
            {"interval": "1m", "input_series": series(False), "alert_rule_test": expected(False)},
        ],
    }


def promtool_check(rules_text: str, tests: dict | None, promtool: str = "promtool") -> list[str]:
    """Run ``promtool check rules`` (and ``promtool test rules`` when ``tests`` is given) on the text
    in a temporary folder; returns the failures (empty when both pass). ``FileNotFoundError`` when
    promtool is not installed."""
    import tempfile

    failures = []
    with tempfile.TemporaryDirectory(prefix="quantgate-rules-") as tmp:
        rule_file = Path(tmp) / "rules.yaml"
        rule_file.write_text(rules_text, encoding="utf-8")
        steps = [[promtool, "check", "rules", str(rule_file)]]
        if tests is not None:
            test_file = Path(tmp) / "rules.test.yaml"
            test_file.write_text(dump_yaml({**tests, "rule_files": ["rules.yaml"]}), encoding="utf-8")
            steps.append([promtool, "test", "rules", str(test_file)])
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp, timeout=120)
            if done.returncode != 0:
                failures.append(f"{' '.join(argv[:3])}: {(done.stdout + done.stderr).strip()}")
    return failures


# ------------------------------------------------------------------------------------- the file


def build_rules(manifest_path: Path, root: Path | None = None) -> tuple[Manifest, Monitoring, dict]:
    """Load the manifest and ``quantgate.yaml``; return the manifest, the monitoring settings and the
    compiled rule file (``compile_rules``)."""
    from compiler.discover import find_repo_root, lock_path
    from compiler.manifest.load import load_manifest, load_repo_config

    manifest_path = Path(manifest_path)
    loaded = load_manifest(manifest_path, root)
    root = Path(loaded.root) if loaded.root else find_repo_root(manifest_path)
    monitoring = load_repo_config(root).monitoring
    manifest = loaded.manifest

    def rel(path: Path) -> str:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.as_posix()

    link = lock_link(rel(lock_path(manifest_path)), manifest.metadata.name, monitoring)
    return manifest, monitoring, compile_rules(manifest, monitoring, link, rel(manifest_path))


def write_rules(manifest_path: Path, root: Path | None = None) -> tuple[Path, bool]:
    """Write ``manifests/<name>.rules.yaml`` next to the manifest when its content changes.
    Returns the path and whether it wrote."""
    from compiler.discover import rules_path

    _, _, rules = build_rules(manifest_path, root)
    target = rules_path(Path(manifest_path))
    return target, write_if_changed(target, dump_rules(rules))
