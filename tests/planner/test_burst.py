"""Burst-to-cloud planning: the overflow's share and the cheapest fleet, checkable by hand."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from voxhost.cli.main import app
from voxhost.planner.burst import burst_table, default_curve, overflow_share
from voxhost.planner.inputs import load_inputs
from voxhost.planner.model import capacity


@pytest.mark.parametrize("ratio", [1.0, 1.5, 3.0, 6.0])
def test_default_curve_has_mean_one_and_the_stated_peak(ratio):
    curve = default_curve(ratio)
    assert curve.mean() == pytest.approx(1.0) and curve.max() == pytest.approx(ratio, rel=1e-6)
    assert curve.min() > 0


def test_overflow_share_by_hand():
    # Two slots, loads 1 and 3 (mean 2): a fleet of capacity 2 overflows 1 of 4 units of work.
    assert overflow_share(np.array([0.5, 1.5]), 2.0, 2.0) == pytest.approx(0.25)
    assert overflow_share(np.array([0.5, 1.5]), 2.0, 3.0) == 0.0


def test_burst_fleet_is_never_dearer_than_peak_provisioning(repo_root):
    inputs = load_inputs([repo_root / "deploy/plan.example.yaml"])
    rows = burst_table(inputs)
    for row in rows:
        assert row.peak_gpus == capacity(inputs, row.players).gpus_peak  # same peak as `voxhost plan`
        assert row.burst_gpus <= row.peak_gpus and row.burst_monthly <= row.peak_monthly + 1e-6
        assert 0.0 <= row.cloud_share < 1.0
    assert any(row.saving > 0 for row in rows)
    flat = burst_table(inputs, [1.0] * 24)  # no peak: at most the last GPU's slack is worth sending out
    assert all(row.cloud_share <= 1 / row.peak_gpus + 1e-9 for row in flat)


def test_plan_burst_writes_the_table(tmp_path, repo_root):
    result = CliRunner().invoke(app, ["plan", "-i", str(repo_root / "deploy/plan.example.yaml"), "-o", str(tmp_path),
                                      "--burst"])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "burst.md").read_text()
    assert "| players | GPUs at peak | peak-provisioned /mo |" in text and "cloud share of requests" in text
    bad = CliRunner().invoke(app, ["plan", "-i", str(repo_root / "deploy/plan.example.yaml"), "-o", str(tmp_path),
                                   "--burst", "--daily-curve", "1,-1"])
    assert bad.exit_code == 2 and "invalid --daily-curve" in bad.output
