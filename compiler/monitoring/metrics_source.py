"""Where ``quantgate monitor`` reads live metrics: a Prometheus HTTP API (instant queries) or a JSON
snapshot file. Both return, per query, the samples Prometheus would: a list of ``Sample`` (labels,
value), empty when there is no data.

Anything that is not a well-formed answer (endpoint down, HTTP error, ``status: error``, a range
vector, a value that is not a number) raises ``MetricsUnavailable`` (exit 3): the monitor then
changes nothing. An unreachable monitor alerts; it never rolls back blindly.

Snapshot files (``--snapshot``) are JSON objects keyed by rollback rule name; each value is a number,
``null`` (no data), or a whole Prometheus ``/api/v1/query`` response::

    {"quality_floor": 0.74, "error_rate_ceiling": 0.004, "latency_p95_ms": null}
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.errors import ExitCode, InvalidInput, Problem, QuantgateError


class MetricsUnavailable(QuantgateError):
    """Exit 3: the metrics could not be read or made no sense; nothing was changed."""

    exit_code = ExitCode.RUNNER


@dataclass(frozen=True)
class Sample:
    value: float
    labels: dict[str, str] = field(default_factory=dict)


def _number(text: Any, where: str) -> float:
    # Prometheus sends sample values as strings ("0.74", "NaN", "+Inf"); snapshots may use numbers.
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise MetricsUnavailable(f"{where}: sample value {text!r} is not a number")
    try:
        return float(text)
    except ValueError as exc:
        raise MetricsUnavailable(f"{where}: sample value {text!r} is not a number") from exc


def parse_query_response(payload: Any, where: str) -> list[Sample]:
    """Samples from a decoded ``/api/v1/query`` response (``vector`` or ``scalar``)."""
    if not isinstance(payload, dict) or "status" not in payload:
        raise MetricsUnavailable(f"{where}: not a Prometheus API response (no 'status')")
    if payload["status"] != "success":
        raise MetricsUnavailable(f"{where}: Prometheus answered {payload.get('errorType', 'error')}: {payload.get('error', 'no detail')}")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise MetricsUnavailable(f"{where}: response has no 'data' object")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        if not isinstance(result, list) or len(result) != 2:
            raise MetricsUnavailable(f"{where}: scalar result must be [timestamp, \"value\"]")
        return [Sample(_number(result[1], where))]
    if kind != "vector":
        raise MetricsUnavailable(f"{where}: expected an instant vector, got resultType {kind!r} (the query must return one value per series)")
    if not isinstance(result, list):
        raise MetricsUnavailable(f"{where}: 'result' must be a list")
    samples = []
    for i, item in enumerate(result):
        value = item.get("value") if isinstance(item, dict) else None
        labels = item.get("metric", {}) if isinstance(item, dict) else None
        if not isinstance(value, list) or len(value) != 2 or not isinstance(labels, dict):
            raise MetricsUnavailable(f"{where}: result[{i}] must be {{metric: {{...}}, value: [timestamp, \"value\"]}}")
        samples.append(Sample(_number(value[1], f"{where}: result[{i}]"), {str(k): str(v) for k, v in labels.items()}))
    return samples


class PrometheusSource:
    """Instant queries against ``GET {url}/api/v1/query``. ``token`` is sent as a bearer token and
    never appears in a message."""

    def __init__(self, url: str, timeout: float = 10.0, token: str | None = None):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise InvalidInput(Problem(path="--prometheus", message=f"{url!r} is not an http(s) URL"))
        self.url = url.rstrip("/")
        self.shown = urllib.parse.urlunsplit((parsed.scheme, parsed.hostname + (f":{parsed.port}" if parsed.port else ""), parsed.path, "", ""))
        self.timeout = timeout
        self.token = token

    def describe(self) -> str:
        return f"Prometheus {self.shown}"

    def query(self, promql: str, rule: str) -> list[Sample]:
        request = urllib.request.Request(
            f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}",
            headers={"Accept": "application/json", **({"Authorization": f"Bearer {self.token}"} if self.token else {})},
        )
        where = f"{self.shown} ({rule})"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - scheme checked
                body = response.read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
            detail = _error_detail(body)
            raise MetricsUnavailable(f"{where}: HTTP {exc.code}{': ' + detail if detail else ''}") from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise MetricsUnavailable(f"cannot reach {self.describe()}: {reason}") from exc
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MetricsUnavailable(f"{where}: response is not JSON ({body[:80]!r})") from exc
        return parse_query_response(payload, where)


def _error_detail(body: bytes) -> str:
    try:
        payload = json.loads(body)
        return f"{payload.get('errorType', 'error')}: {payload.get('error', '')}".strip()
    except (ValueError, AttributeError, UnicodeDecodeError):
        return body[:120].decode("utf-8", "replace").strip()


class SnapshotSource:
    """Values read once from a JSON file (see the module docstring for its shape)."""

    def __init__(self, path: Path, rules: tuple[str, ...]):
        self.path = Path(path)
        if not self.path.is_file():
            raise InvalidInput(Problem(path=str(path), message="snapshot file not found"))
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise MetricsUnavailable(f"{path}: snapshot is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise MetricsUnavailable(f"{path}: snapshot must be a JSON object keyed by rollback rule")
        unknown = sorted(set(data) - set(rules))
        if unknown:
            raise MetricsUnavailable(f"{path}: unknown rollback rule(s) {', '.join(unknown)}; expected {', '.join(rules)}")
        self.data = data

    def describe(self) -> str:
        return f"snapshot {self.path}"

    def query(self, promql: str, rule: str) -> list[Sample]:
        value = self.data.get(rule)
        where = f"{self.path} ({rule})"
        if value is None:
            return []
        if isinstance(value, dict):
            return parse_query_response(value, where)
        return [Sample(_number(value, where))]


def held_query(promql: str, lower_breaches: bool, hold_seconds: int, step: str) -> str:
    """The instant query whose value breaches only if ``promql`` breached for the whole ``for:``:
    the best value over the window (max for a floor, min for a ceiling), via a subquery."""
    if hold_seconds <= 0:
        return promql
    best = "max_over_time" if lower_breaches else "min_over_time"
    return f"{best}(({promql})[{hold_seconds}s:{step}])"

