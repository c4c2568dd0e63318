"""``quantgate.yaml`` at the repository root: settings that belong to the repository, not to a
manifest a pull request can change (branch protection and CODEOWNERS guard this file).

Absent file: every default below. Unknown keys are errors, like in manifests.

Sign-off reads this file from the pull request's *base* commit (``compiler.gitops.policy``), so a
pull request cannot loosen the policy it is judged by: ``owners`` (allow-list for new manifests),
``signoff`` (``pusher_can_sign``), ``pickle_allowed``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunnerLabels(_Strict):
    """GitHub Actions ``runs-on`` labels per envelope device (the matrix spreads work over them)."""

    cpu: list[str] = Field(default_factory=lambda: ["ubuntu-latest"])
    cuda: list[str] = Field(default_factory=lambda: ["self-hosted", "gpu"])


class Monitoring(_Strict):
    """Metric queries and labels the rollback rules use (play 8); see docs/monitoring.md.

    Placeholders (Python ``string.Template``, so PromQL braces need no escaping): ``$selector`` in a
    query is replaced by ``selector`` after ``$name`` in it became the manifest name. ``lock_url``
    takes ``$repository_url``, ``$lock_path`` and ``$name``. Each query must return the live value in
    the unit of its rollback rule: quality in the manifest's metric, errors as a 0..1 ratio, latency
    in milliseconds.
    """

    selector: str = 'model="$name"'
    quality_expr: str = "quantgate_model_quality{$selector}"
    error_ratio_expr: str = (
        "sum(rate(quantgate_requests_failed_total{$selector}[5m]))"
        " / sum(rate(quantgate_requests_total{$selector}[5m]))"
    )
    latency_p95_ms_expr: str = (
        "histogram_quantile(0.95, sum by (le) (rate(quantgate_request_duration_seconds_bucket{$selector}[5m]))) * 1000"
    )
    severity: str = Field("page", description="The severity label every rollback alert carries.")
    repository_url: str | None = Field(
        None, description="Web URL of the repository (https://github.com/org/repo) for lock links; unset: repo-relative paths."
    )
    lock_url: str = "$repository_url/blob/main/$lock_path"
    monitor_step: str = Field("1m", description="Resolution of the subquery `quantgate monitor` uses to check a rule held for its `for:`.")

    @field_validator("monitor_step")
    @classmethod
    def _step(cls, v: str) -> str:
        from compiler.manifest.quantities import parse_duration

        if parse_duration(v) <= 0:
            raise ValueError("must be a positive duration like '1m' or '30s'")
        return v


class Artifacts(_Strict):
    """Where locked artifacts live beyond the machine that made them (``compiler/store``)."""

    store: str | None = Field(
        None,
        description="Store URL: oci://registry/namespace (oci+http:// for a plain-HTTP registry), s3://bucket/prefix, "
                    "gs://bucket/prefix, file:///path, or a repository-relative folder. Unset: the local artifacts/ folder. "
                    "Credentials come from the environment only.",
    )
    required: bool = Field(False, description="A locked artifact missing from the store fails `quantgate verify --remote` (not a note).")


class SignoffPolicy(_Strict):
    """How pull-request reviews count as sign-offs, decided by the repository (read from the base branch)."""

    pusher_can_sign: bool = Field(
        False,
        description="An owner who authored or committed a commit that changes the manifest, its data, its model or "
                    "quantgate.yaml since the base may still sign for it. Off by default (GitHub's 'most recent push' rule).",
    )


class RepoConfig(_Strict):
    trusted_remote_code: list[str] = Field(
        default_factory=list,
        description="Model sources allowed to run their own code (trust_remote_code: true). Exact match.",
    )
    runner_labels: RunnerLabels = Field(default_factory=RunnerLabels)
    monitoring: Monitoring = Field(default_factory=Monitoring)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    owners: dict[Literal["ml_engineer", "platform_lead", "product_owner", "engineering_manager", "on_call"], list[str]] | None = Field(
        None,
        description="Allow-list per role for the owners a NEW manifest may name (logins '@alice' or teams '@org/team'; a "
                    "login is also allowed when it is a member of an allowed team). Read from the pull request's base "
                    "branch. Unset: a new manifest's owners are taken as written, and sign-off says no policy vouched "
                    "for them. A manifest that exists on the base branch is always signed by the base branch's owners.",
    )
    signoff: SignoffPolicy = Field(default_factory=SignoffPolicy)
    pickle_allowed: list[str] = Field(
        default_factory=list,
        description="Model sources (exact `model.source`) allowed to load pickle-based weights (pytorch_model.bin, "
                    "*.pt, *.pkl), which can run code when loaded. Everything else loads safetensors or GGUF only.",
    )

    @field_validator("owners")
    @classmethod
    def _owners(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        from compiler.manifest.model import OWNER_RE

        for role, listed in (v or {}).items():
            for owner in listed:
                if not OWNER_RE.match(owner):
                    raise ValueError(f"owners.{role}: {owner!r} is not a GitHub login ('@alice') or team ('@org/team')")
        return v
