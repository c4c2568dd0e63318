"""A low calibration fit recorded by the ptq play makes `quantgate plan` warn (torch-free), in its
warnings channel and its JSON; a fit above the threshold does not."""

from __future__ import annotations

import dataclasses

from fake_runner import FakeRunner, Script

from compiler import api
from runners.base import CalibrationFit, FitComparison


def fit_of(value: float) -> CalibrationFit:
    comparison = FitComparison(against="evaluation", fit=value, length=0.9, unknown=1.0, hidden=round(value / 0.9, 4),
                               segments=(16, 16), chars_per_token=(3.4, 4.3), unknown_rate=(0.0, 0.0), hidden_shift=2.5)
    return CalibrationFit(fit=value, min_fit=0.6, low=value < 0.6, layers=(1, 2), comparisons=(comparison,))


class FitRunner(FakeRunner):
    def __init__(self, fit: CalibrationFit, **kwargs):
        super().__init__(Script(), **kwargs)
        self.fit = fit

    def ptq(self, *args, **kwargs):
        return dataclasses.replace(super().ptq(*args, **kwargs), calibration_fit=self.fit)


def test_plan_warns_from_a_lock_with_a_low_recorded_fit(repo):
    api.run(repo.manifest, runner=FitRunner(fit_of(0.27), root=repo.root), root=repo.root)
    [plan] = api.plans([repo.manifest], repo.root)
    assert plan.play("ptq").status == "cached"
    [warning] = plan.warnings
    assert "calibration fit 0.27 is below quantization.calibration.min_fit 0.6" in warning and "data/train.tsv" in warning
    assert plan.to_dict()["warnings"] == [warning]
    from compiler.commands.plan import format_text
    from compiler.playbook.lockfile import read_lock
    from compiler.report.render import render_plan_markdown

    assert f"warning: {warning}" in format_text(plan)
    assert "calibration fit 0.27" in render_plan_markdown(plan)
    assert read_lock(repo.lock).final.calibration.fit.fit == 0.27  # typed in the lock


def test_plan_does_not_warn_above_the_threshold(repo):
    api.run(repo.manifest, runner=FitRunner(fit_of(0.85), root=repo.root), root=repo.root)
    [plan] = api.plans([repo.manifest], repo.root)
    assert plan.warnings == () and plan.to_dict()["warnings"] == []


def test_the_report_shows_the_fit_and_flags_it_when_low(repo):
    api.run(repo.manifest, runner=FitRunner(fit_of(0.27), root=repo.root), root=repo.root)
    report = (repo.root / "reports" / "demo" / "report.md").read_text()
    assert "Calibration fit: 0.27 ⚠️ below min_fit 0.6" in report and "does not look like the workload" in report
    assert "| evaluation | 0.270 | 0.900 (3.40 vs 4.30) | 1.000 (0.000 vs 0.000) | 0.300 (2.50) | 16 vs 16 |" in report
