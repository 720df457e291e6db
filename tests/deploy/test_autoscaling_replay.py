"""Replay queue time series through the synthesised scaling policies.

Every number the replay uses (target, cooldowns, thresholds, periods, M-of-N,
step adjustments, min/max) is read from the CloudFormation template, so a change
to the stack that slows scale-out, overshoots, or hurries scale-in fails here.
Target tracking's own alarms are created by Application Auto Scaling, not the
template; the replay follows AWS's documented rule for them: scale out after 3
one-minute datapoints above the target, to ceil(desired x metric / target).

`python tests/deploy/test_autoscaling_replay.py` prints the timelines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

START_DELAY_MIN = 3  # a new task serves after ~3 min (GPU instance start + model load from EFS)
TARGET_TRACKING_HIGH_DATAPOINTS = 3  # AWS: the high alarm needs 3 datapoints in 3 minutes


@dataclass
class Alarm:
    threshold: float
    greater: bool
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    history: list[bool] = field(default_factory=list)

    def observe(self, value: float) -> bool:
        """Add one datapoint; True while the alarm is in ALARM (M of the last N breach)."""
        breach = value > self.threshold if self.greater else value < self.threshold
        self.history.append(breach)
        window = self.history[-self.evaluation_periods:]
        return sum(window) >= self.datapoints_to_alarm


@dataclass
class Scaling:
    target: float  # backlog per desired task the scale-out policy tracks
    out_cooldown_s: int
    in_alarm: Alarm
    in_percent: int  # negative: PercentChangeInCapacity of the scale-in step
    in_min_magnitude: int
    in_cooldown_s: int
    low: int
    high: int


def _resources(template_json, kind):
    return {k: r["Properties"] for k, r in template_json["Resources"].items() if r["Type"] == kind}


def read_scaling(template_json) -> Scaling:
    policies = _resources(template_json, "AWS::ApplicationAutoScaling::ScalingPolicy")
    (tracking,) = [p["TargetTrackingScalingPolicyConfiguration"] for p in policies.values()
                   if p["PolicyType"] == "TargetTrackingScaling"]
    assert tracking["DisableScaleIn"] is True  # scale-in is the step policy's alone
    queries = {q["Id"]: q for q in tracking["CustomizedMetricSpecification"]["Metrics"]}
    assert queries["queue"]["MetricStat"]["Metric"]["MetricName"] == "QueueDepth"
    assert queries["tasks"]["MetricStat"]["Metric"]["MetricName"] == "DesiredTaskCount"  # not running tasks
    assert "queue / tasks" in queries["backlog"]["Expression"] and queries["backlog"]["ReturnData"]

    (in_id, step), = [(k, p["StepScalingPolicyConfiguration"]) for k, p in policies.items()
                      if p["PolicyType"] == "StepScaling"]
    (adjustment,) = step["StepAdjustments"]
    assert step["AdjustmentType"] == "PercentChangeInCapacity"
    (alarm,) = [a for a in _resources(template_json, "AWS::CloudWatch::Alarm").values()
                if {"Ref": in_id} in a.get("AlarmActions", [])]
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    expression = next(m["Expression"] for m in alarm["Metrics"] if "Expression" in m)
    assert "queue / tasks" in expression  # the same backlog per desired task
    period = next(m["MetricStat"]["Period"] for m in alarm["Metrics"] if "MetricStat" in m)
    (target,) = _resources(template_json, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    return Scaling(
        target=tracking["TargetValue"], out_cooldown_s=tracking["ScaleOutCooldown"],
        in_alarm=Alarm(alarm["Threshold"], False, period, alarm["EvaluationPeriods"],
                       alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])),
        in_percent=adjustment["ScalingAdjustment"], in_min_magnitude=step.get("MinAdjustmentMagnitude", 0),
        in_cooldown_s=step["Cooldown"], low=target["MinCapacity"], high=target["MaxCapacity"])


@pytest.fixture(scope="module")
def scaling(template_json):
    return read_scaling(template_json)


def replay(s: Scaling, demand: list[float], start_tasks: int = 1, lose: dict[int, int] | None = None):
    """Minute by minute: demand is the total queued jobs. `lose` takes running tasks
    away at a minute (a spot reclaim): ECS starts replacements for the same desired count."""
    assert s.in_alarm.period_s == 60  # one datapoint a minute, as the server's EMF interval
    s.in_alarm.history.clear()
    desired = serving = start_tasks
    pending: list[tuple[int, int]] = []  # (minute it starts serving, tasks)
    high: list[bool] = []
    last_in = -math.inf
    timeline = []
    for minute, jobs in enumerate(demand):
        serving += sum(n for t, n in pending if t == minute)
        pending = [(t, n) for t, n in pending if t != minute]
        lost = (lose or {}).get(minute, 0)
        if lost:
            serving -= lost
            pending.append((minute + START_DELAY_MIN, lost))  # replacements, same desired count
        metric = jobs / desired  # backlog per *desired* task
        actions = []
        high.append(metric > s.target)
        if len(high) >= TARGET_TRACKING_HIGH_DATAPOINTS and all(high[-TARGET_TRACKING_HIGH_DATAPOINTS:]):
            new = min(s.high, math.ceil(round(desired * metric / s.target, 9)))
            # In the scale-out cooldown AWS counts the capacity already added as desired;
            # the metric is per desired task already, so only a larger need adds more.
            if new > desired:
                actions.append(("out", new - desired))
                pending.append((minute + START_DELAY_MIN, new - desired))
                desired = new
                high.clear()
        if s.in_alarm.observe(metric) and (minute - last_in) * 60 >= s.in_cooldown_s:
            change = int(desired * s.in_percent / 100.0)  # toward zero, at least the minimum
            if abs(change) < s.in_min_magnitude:
                change = -s.in_min_magnitude
            new = max(s.low, desired + change)
            if new != desired:
                actions.append(("in", new - desired))
                serving = min(serving, new)  # ECS drains and stops at once
                pending = [(t, n) for t, n in pending if serving + n <= new]
                desired, last_in = new, minute
        timeline.append({"minute": minute, "jobs": jobs, "per_task": round(metric, 2), "desired": desired,
                         "serving": serving, "actions": actions})
    return timeline


def first(timeline, direction, after=0):
    return next((row["minute"] for row in timeline
                 if row["minute"] >= after and any(d == direction for d, _ in row["actions"])), None)


SCENARIOS = {
    # 10 min calm (3 queued), 30 min burst (60 queued: 6 tasks' worth), then quiet (1 queued).
    "burst": ([3] * 10 + [60] * 30 + [1] * 30, {}),
    # Demand rising 2 jobs a minute to 100 (10 tasks' worth) over 50 minutes, then holding.
    "slow ramp": ([2 * m for m in range(50)] + [100] * 20, {}),
    # Steady 60 queued on 6 tasks; spot takes 2 instances at minute 10.
    "spot loss": ([60] * 30, {10: 2}),
}


def test_burst_goes_straight_to_what_the_backlog_needs(scaling):
    demand, _ = SCENARIOS["burst"]
    timeline = replay(scaling, demand)
    out_at = first(timeline, "out")
    assert out_at == 10 + TARGET_TRACKING_HIGH_DATAPOINTS - 1  # the burst's third minute
    # 60 queued at 10 per task is 6 tasks: one step there, no overshoot (the old steps reached 10).
    assert max(r["desired"] for r in timeline) == 6 == 60 / scaling.target
    assert [r["desired"] for r in timeline if r["minute"] == out_at] == [6]
    # Nothing goes before the burst ends, nor before 10 quiet minutes have passed...
    in_at = first(timeline, "in")
    assert in_at == 40 + scaling.in_alarm.evaluation_periods - 1
    # ...then the surplus halves each cooldown, back to the floor within the replay.
    assert timeline[-1]["desired"] == scaling.low


def test_slow_ramp_tracks_without_overshoot(scaling):
    demand, _ = SCENARIOS["slow ramp"]
    timeline = replay(scaling, demand)
    for row in timeline:
        # Never above what the backlog asks for (rounded up), never far below it.
        assert row["desired"] <= max(scaling.low, math.ceil(row["jobs"] / scaling.target))
    assert timeline[-1]["desired"] == 10 and first(timeline, "in") is None


def test_spot_loss_is_replaced_not_overreacted_to(scaling):
    demand, lose = SCENARIOS["spot loss"]
    timeline = replay(scaling, demand, start_tasks=6, lose=lose)
    # The desired count stays 6: ECS replaces the two tasks; the metric (per desired task)
    # does not jump, so no extra tasks are bought for a loss that is already being replaced.
    assert {r["desired"] for r in timeline} == {6}
    assert [r["serving"] for r in timeline[9:14]] == [6, 4, 4, 4, 6]


def test_a_blip_restarts_the_quiet_clock(scaling):
    demand = [4] * 7 + [20] + [4] * 20  # 4 tasks: 1 per task, one busy minute (5 per task) at minute 7
    timeline = replay(scaling, demand, start_tasks=4)
    assert first(timeline, "out") is None  # below the target even in the blip
    assert first(timeline, "in") == 7 + scaling.in_alarm.evaluation_periods


def test_quiet_period_does_not_delay_scale_out(scaling):
    demand = [0.5] * 30 + [40] * 10
    timeline = replay(scaling, demand)
    assert all(r["desired"] == 1 for r in timeline[:30])  # at the floor: nothing to remove
    assert first(timeline, "out") == 30 + TARGET_TRACKING_HIGH_DATAPOINTS - 1


def test_capacity_stays_within_min_and_max(scaling):
    timeline = replay(scaling, [500] * 60 + [0] * 120)
    assert max(r["desired"] for r in timeline) == scaling.high
    assert min(r["desired"] for r in timeline) >= scaling.low
    assert timeline[-1]["desired"] == scaling.low


def print_timelines(template_json) -> None:
    s = read_scaling(template_json)
    for name, (demand, lose) in SCENARIOS.items():
        start = 6 if name == "spot loss" else 1
        timeline = replay(s, demand, start_tasks=start, lose=lose)
        print(f"\n{name}: minute queued per-task desired serving action")
        previous = None
        for r in timeline:
            key = (r["jobs"], r["desired"], r["serving"], tuple(r["actions"]))
            if key != previous or r["minute"] == len(timeline) - 1:
                acts = ", ".join(f"{d} {n:+d}" for d, n in r["actions"])
                print(f"  {r['minute']:3d} {r['jobs']:6g} {r['per_task']:8.2f} {r['desired']:7d} {r['serving']:7d}"
                      f" {acts}")
            previous = key


if __name__ == "__main__":
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import FAKE_CERT, synth

    print_timelines(synth(Path(tempfile.mkdtemp()), nag=False, certificate_arn=FAKE_CERT)[1])
