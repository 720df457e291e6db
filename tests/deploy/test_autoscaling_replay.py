"""Replay queue-depth time series through the synthesised alarms and step policies.

Every number the replay uses (thresholds, periods, M-of-N, step bounds,
adjustment types, cooldowns, min/max) is read from the CloudFormation
template, so a change to the stack that slows scale-out or hurries scale-in
fails here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

START_DELAY_MIN = 3  # a new task serves after ~3 min (GPU instance start + model load from EFS)


@dataclass
class Alarm:
    threshold: float
    greater: bool
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    policy: str  # logical id of the scaling policy it triggers
    history: list[bool] = field(default_factory=list)

    def observe(self, value: float) -> bool:
        """Add one datapoint; True while the alarm is in ALARM (M of the last N breach)."""
        breach = value > self.threshold if self.greater else value < self.threshold
        self.history.append(breach)
        window = self.history[-self.evaluation_periods:]
        return sum(window) >= self.datapoints_to_alarm


@dataclass
class StepPolicy:
    adjustment_type: str
    cooldown_s: int
    min_magnitude: int
    steps: list[tuple[float, float, int]]  # (lower, upper, adjustment) relative to the threshold
    last_action_min: float = -math.inf

    def change(self, capacity: int, delta: float) -> int:
        for lower, upper, adjustment in self.steps:
            if lower <= delta < upper:
                break
        else:
            return 0
        if self.adjustment_type == "ChangeInCapacity":
            return adjustment
        raw = capacity * adjustment / 100.0  # PercentChangeInCapacity: round toward zero, at least the minimum
        change = int(raw)
        if abs(change) < self.min_magnitude:
            change = int(math.copysign(self.min_magnitude, adjustment))
        return change


def _resources(template_json, kind):
    return {k: r["Properties"] for k, r in template_json["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def scaling(template_json):
    return read_scaling(template_json)


def read_scaling(template_json):
    """(alarms by direction, step policies by logical id, min tasks, max tasks) from the template."""
    policies = {}
    for logical_id, props in _resources(template_json, "AWS::ApplicationAutoScaling::ScalingPolicy").items():
        c = props["StepScalingPolicyConfiguration"]
        policies[logical_id] = StepPolicy(
            c["AdjustmentType"], c["Cooldown"], c.get("MinAdjustmentMagnitude", 0),
            [(s.get("MetricIntervalLowerBound", -math.inf), s.get("MetricIntervalUpperBound", math.inf),
              s["ScalingAdjustment"]) for s in c["StepAdjustments"]])
    alarms = {}
    for props in _resources(template_json, "AWS::CloudWatch::Alarm").values():
        refs = [a["Ref"] for a in props.get("AlarmActions", []) if isinstance(a, dict) and a.get("Ref") in policies]
        if props.get("MetricName") == "QueueDepth" and refs:
            direction = "out" if props["ComparisonOperator"] == "GreaterThanThreshold" else "in"
            alarms[direction] = Alarm(props["Threshold"], direction == "out", props["Period"],
                                      props["EvaluationPeriods"], props.get("DatapointsToAlarm",
                                                                            props["EvaluationPeriods"]), refs[0])
    (target,) = _resources(template_json, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert set(alarms) == {"out", "in"}
    assert alarms["out"].policy != alarms["in"].policy  # separate policies: separate cooldowns
    return alarms, policies, target["MinCapacity"], target["MaxCapacity"]


def replay(scaling, demand: list[float], start_tasks: int = 1):
    """Minute by minute: demand is the total queued jobs; the metric is the per-task average."""
    alarms, policies, low, high = scaling
    for alarm in alarms.values():
        assert alarm.period_s == 60  # one datapoint a minute, as the server's EMF interval
        alarm.history.clear()
    for policy in policies.values():
        policy.last_action_min = -math.inf
    desired = start_tasks
    pending: list[tuple[int, int]] = []  # (minute it starts serving, tasks)
    serving = start_tasks
    timeline = []
    for minute, jobs in enumerate(demand):
        serving += sum(n for t, n in pending if t == minute)
        pending = [(t, n) for t, n in pending if t != minute]
        serving = min(serving, desired)
        per_task = jobs / serving
        actions = []
        for direction in ("out", "in"):
            alarm = alarms[direction]
            if alarm.observe(per_task):
                policy = policies[alarm.policy]
                if (minute - policy.last_action_min) * 60 >= policy.cooldown_s:
                    change = policy.change(desired, per_task - alarm.threshold)
                    new = max(low, min(high, desired + change))
                    if new != desired:
                        actions.append((direction, new - desired))
                        if new > desired:
                            pending.append((minute + START_DELAY_MIN, new - desired))
                        else:
                            serving = new  # ECS drains and stops at once
                        desired = new
                        policy.last_action_min = minute
        timeline.append({"minute": minute, "per_task": per_task, "desired": desired, "serving": serving,
                         "actions": actions})
    return timeline


def first(timeline, direction, after=0):
    return next((row["minute"] for row in timeline
                 if row["minute"] >= after and any(d == direction for d, _ in row["actions"])), None)


def test_scale_out_within_minutes_then_in_after_ten_quiet_minutes(scaling):
    alarms = scaling[0]
    # 10 min calm (3 jobs/task: between the thresholds), 30 min rush (60 queued), then quiet (1 queued).
    demand = [3] * 10 + [60] * 30 + [1] * 30
    timeline = replay(scaling, demand)

    out_at = first(timeline, "out")
    assert out_at is not None
    assert out_at - 10 == alarms["out"].datapoints_to_alarm - 1 <= 2  # decided in the rush's 2nd minute
    # Capacity catches up: per-task queue back under the scale-out threshold well within the rush.
    settled = next(r["minute"] for r in timeline if r["minute"] > out_at and r["per_task"] <= alarms["out"].threshold)
    assert settled - 10 <= 15
    peak = max(r["desired"] for r in timeline)
    assert peak >= 60 / alarms["out"].threshold

    # Nothing goes before the rush ends, nor before 10 quiet minutes have passed.
    in_at = first(timeline, "in")
    assert in_at is not None and in_at >= 40
    assert in_at - 40 + 1 == alarms["in"].evaluation_periods == 10
    # And it keeps shrinking towards the minimum as the quiet lasts.
    assert timeline[-1]["desired"] < peak


def test_a_blip_restarts_the_quiet_clock(scaling):
    # Already scaled out (4 tasks), quiet, one busy minute at minute 7, quiet again.
    demand = [2] * 7 + [12] + [2] * 20
    timeline = replay(scaling, demand, start_tasks=4)
    assert first(timeline, "out") is None  # 3 per task for one minute: no scale-out for a blip
    in_at = first(timeline, "in")
    assert in_at == 7 + 10  # ten quiet minutes counted from after the blip, not from minute 0


def test_quiet_period_does_not_delay_scale_out(scaling):
    # Long quiet at the minimum (scale-in alarm in ALARM the whole time), then a sudden rush.
    demand = [0.5] * 30 + [40] * 10
    timeline = replay(scaling, demand)
    assert all(r["desired"] == 1 for r in timeline[:30])  # at the floor: nothing to remove
    assert first(timeline, "out") == 31  # the rush's second minute, same as from a calm start


def test_capacity_stays_within_min_and_max(scaling):
    _, _, low, high = scaling
    timeline = replay(scaling, [500] * 60 + [0] * 120)
    assert max(r["desired"] for r in timeline) == high
    assert min(r["desired"] for r in timeline) >= low
    assert timeline[-1]["desired"] == low
