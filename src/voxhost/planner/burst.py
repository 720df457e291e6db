"""Burst to cloud: a fleet sized below the peak, the overflow sent to the cloud API.

With the migration gateway's burst (VOXHOST_ROUTE_BURST_QUEUE), load above
the fleet's capacity goes to the cloud API instead of being refused. So the
cheapest fleet is no longer the one sized for the peak: for each fleet size
from the floor to the peak we add the cloud bill of the overflow, and keep
the cheapest. The load over a day follows a curve (24 hourly multipliers of
the mean); by default a smooth one with the plan's peak-to-average ratio.
Fleets here run all month (no autoscaling), as peak provisioning does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from voxhost.planner.inputs import PlanInputs
from voxhost.planner.model import capacity, cloud_cost, self_hosted_cost

PEAK_HOUR = 20  # evening


def default_curve(peak_to_average: float, hours: int = 24) -> np.ndarray:
    """A smooth daily curve (mean 1) whose peak is `peak_to_average` times
    the mean: exp(k cos(...)), k found by bisection."""
    phase = np.cos(2 * np.pi * (np.arange(hours) - PEAK_HOUR) / hours)
    if peak_to_average <= 1.0:
        return np.ones(hours)

    def ratio(k: float) -> float:
        c = np.exp(k * phase)
        return float(c.max() / c.mean())

    lo, hi = 0.0, 1.0
    while ratio(hi) < peak_to_average:
        hi *= 2
        if hi > 1e3:
            raise ValueError(f"peak_to_average {peak_to_average} is too high for a daily curve of {hours} hours")
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(mid) < peak_to_average else (lo, mid)
    curve = np.exp(hi * phase)
    return curve / curve.mean()


def normalise_curve(values: Sequence[float]) -> np.ndarray:
    curve = np.asarray(values, dtype=float)
    if curve.size == 0 or np.any(curve < 0) or not np.all(np.isfinite(curve)) or curve.sum() == 0:
        raise ValueError("the daily curve needs non-negative numbers (one per hour or any equal slots), not all 0")
    return curve / curve.mean()


@dataclass(frozen=True)
class BurstRow:
    players: int
    peak_gpus: int
    peak_monthly: float  # fleet sized for the peak, on demand
    burst_gpus: int
    burst_fleet_monthly: float
    burst_cloud_monthly: float  # the overflow's cloud API bill
    cloud_share: float  # of requests (work), sent to the cloud API

    @property
    def burst_monthly(self) -> float:
        return self.burst_fleet_monthly + self.burst_cloud_monthly

    @property
    def saving(self) -> float:
        return self.peak_monthly - self.burst_monthly

    @property
    def saving_pct(self) -> float:
        return 100.0 * self.saving / self.peak_monthly if self.peak_monthly else 0.0


def overflow_share(curve: np.ndarray, average_load: float, fleet_capacity: float) -> float:
    """Share of the day's work above `fleet_capacity` (both in GPU units)."""
    load = average_load * curve
    total = load.sum()
    return float(np.maximum(0.0, load - fleet_capacity).sum() / total) if total else 0.0


def burst_row(inputs: PlanInputs, players: int, curve: np.ndarray) -> BurstRow:
    cap = capacity(inputs, players)
    f = inputs.fleet
    average_load = cap.gpu_load_peak / inputs.usage.peak_to_average  # GPUs busy at the mean (100% util)
    peak_needed = max(f.min_gpus, math.ceil(round(average_load * curve.max() / f.target_utilisation, 9)))
    cloud = sum(cloud_cost(inputs, players))

    def fleet_cost(gpus: int) -> float:
        return self_hosted_cost(inputs, capacity(inputs, players, gpus_override=gpus)).on_demand

    best: tuple[float, int, float, float] | None = None
    for gpus in range(f.min_gpus, peak_needed + 1):
        share = overflow_share(curve, average_load, gpus * f.target_utilisation)
        fleet = fleet_cost(gpus)
        total = fleet + share * cloud
        if best is None or total < best[0] - 1e-9:
            best = (total, gpus, fleet, share)
    assert best is not None  # the range holds peak_needed at least
    _, gpus, fleet, share = best
    return BurstRow(players, peak_needed, fleet_cost(peak_needed), gpus, fleet, share * cloud, share)


def burst_table(inputs: PlanInputs, curve: Sequence[float] | None = None) -> list[BurstRow]:
    shape = normalise_curve(curve) if curve is not None else default_curve(inputs.usage.peak_to_average)
    return [burst_row(inputs, n, shape) for n in inputs.players]


def render_markdown(rows: list[BurstRow], curve_note: str) -> str:
    lines = ["## Burst to cloud", "",
             f"Fleet below the peak, overflow to the cloud API through the gateway ({curve_note}); "
             "fleets run all month, on demand.", "",
             "| players | GPUs at peak | peak-provisioned /mo | burst fleet GPUs | burst fleet /mo | cloud overflow /mo "
             "| burst total /mo | cloud share of requests | saving vs peak |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.players:,} | {r.peak_gpus} | ${r.peak_monthly:,.0f} | {r.burst_gpus} | "
                     f"${r.burst_fleet_monthly:,.0f} | ${r.burst_cloud_monthly:,.0f} | ${r.burst_monthly:,.0f} | "
                     f"{r.cloud_share:.1%} | ${r.saving:,.0f} ({r.saving_pct:.0f}%) |")
    return "\n".join(lines) + "\n"
