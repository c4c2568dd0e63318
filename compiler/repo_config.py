"""``quantgate.yaml`` at the repository root: settings that belong to the repository, not to a
manifest a pull request can change (branch protection and CODEOWNERS guard this file).

Absent file: every default below. Unknown keys are errors, like in manifests.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunnerLabels(_Strict):
    """GitHub Actions ``runs-on`` labels per envelope device (the matrix spreads work over them)."""

    cpu: list[str] = Field(default_factory=lambda: ["ubuntu-latest"])
    cuda: list[str] = Field(default_factory=lambda: ["self-hosted", "gpu"])


class Monitoring(_Strict):
    """Metric names and label selectors the rollback rules query (play 8).

    ``{selector}`` in a query is replaced by ``selector`` with ``{name}`` filled with the manifest name.
    """

    selector: str = 'model="{name}"'
    quality_metric: str = "quantgate_model_quality"
    error_ratio_expr: str = "sum(rate(quantgate_requests_failed_total{{{selector}}}[5m])) / sum(rate(quantgate_requests_total{{{selector}}}[5m]))"
    latency_p95_expr: str = "histogram_quantile(0.95, sum by (le) (rate(quantgate_request_duration_seconds_bucket{{{selector}}}[5m]))) * 1000"
    lock_url: str = "{repository_url}/blob/main/{lock_path}"


class RepoConfig(_Strict):
    trusted_remote_code: list[str] = Field(
        default_factory=list,
        description="Model sources allowed to run their own code (trust_remote_code: true). Exact match.",
    )
    runner_labels: RunnerLabels = Field(default_factory=RunnerLabels)
    monitoring: Monitoring = Field(default_factory=Monitoring)
