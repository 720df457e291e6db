"""Replay players and work through the synthesised scaling policies, minute by minute.

Every number the replay uses is read from the CloudFormation template: the load
expression itself (evaluated here as CloudWatch evaluates it: IF, FILL, MAX and
arithmetic), the target, the cooldowns, the scale-in alarm (threshold, M of N, period),
its step, min and max. A change to the stack that slows scale-out, overshoots, or
scales in under live players fails here. Target tracking's own alarms are created by
Application Auto Scaling, not the template; the replay follows AWS's documented rule
for them: scale out after 3 one-minute datapoints above the target, to
ceil(desired x metric / target). New tasks serve after the stack's start-time estimate
(voxhost_stack/startup.py, which sizes the image and the model load on paper).

The fleet model: live sessions spread by least outstanding requests, so a player is
refused only when every serving task is full; refused players retry (the stack's
assumed retries a minute) and are counted as refusals. A task holding live sessions is
scale-in protected: a scale-in lowers the desired count but stops only empty tasks.

`python tests/deploy/test_autoscaling_replay.py` prints the timelines.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pytest

TARGET_TRACKING_HIGH_DATAPOINTS = 3  # AWS: the high alarm needs 3 datapoints in 3 minutes


def session_capacity() -> int:
    """One task's live-session capacity: what the server admits by default on the stack's
    instance (g4dn.xlarge: 4 vCPUs, Whisper on the GPU, one worker), as it publishes it."""
    from voxhost.ops.capacity import default_live_sessions

    return default_live_sessions("cuda", cores=4)


# --- CloudWatch metric math, the subset the stack uses ---

def _if(cond, a, b):
    return a if cond else b


def _fill(value, default):
    return default if value is None else value


def _max(values):
    return max(values)


def evaluate(expressions: dict[str, str], values: dict[str, float | None]) -> float:
    """Evaluate the policy's expressions in order (as GetMetricData does); returns `load`."""
    env = dict(values)
    for i, expression in expressions.items():
        code = re.sub(r"\bIF\(", "_if(", expression)
        code = re.sub(r"\bFILL\(", "_fill(", code)
        code = code.replace("MAX([", "_max([")
        env[i] = eval(code, {"_if": _if, "_fill": _fill, "_max": _max, "__builtins__": {}}, env)  # noqa: S307
    return env["load"]


@dataclass
class Alarm:
    threshold: float
    period_s: int
    evaluation_periods: int
    datapoints_to_alarm: int
    history: list[bool] = field(default_factory=list)

    def observe(self, value: float) -> bool:
        self.history.append(value < self.threshold)
        return sum(self.history[-self.evaluation_periods:]) >= self.datapoints_to_alarm


@dataclass
class Scaling:
    pool: str
    metrics: dict[str, tuple[str, str]]  # id -> (metric name, statistic)
    expressions: dict[str, str]  # id -> expression, in order; `load` returned
    target: float
    out_cooldown_s: int
    in_alarm: Alarm
    in_percent: int
    in_min_magnitude: int
    in_cooldown_s: int
    low: int
    high: int

    @property
    def start_delay_min(self) -> int:
        return math.ceil(self.out_cooldown_s / 60)

    def load(self, *, desired: int, live: float = 0, refused: float = 0, queued: float = 0, running: float = 0,
             seats: int | None = None) -> float:
        by_name = {"LiveSessions": live, "LiveSessionsRefused": refused, "LiveSessionCapacity": seats,
                   "DesiredTaskCount": desired}
        values = {}
        work = iter((queued, running))
        for i, (name, _) in self.metrics.items():
            values[i] = by_name[name] if name in by_name else next(work)
        return evaluate(self.expressions, values)


def _resources(template_json, kind):
    return {k: r["Properties"] for k, r in template_json["Resources"].items() if r["Type"] == kind}


def read_scaling(template_json, pool: str = "combined") -> Scaling:
    policies = _resources(template_json, "AWS::ApplicationAutoScaling::ScalingPolicy")
    (tracking_id, tracking), = [(k, p) for k, p in policies.items() if p["PolicyType"] == "TargetTrackingScaling"
                                and p["PolicyName"].endswith(f"-{pool}-load")]
    config = tracking["TargetTrackingScalingPolicyConfiguration"]
    assert config["DisableScaleIn"] is True  # scale-in is the step policy's alone: only when every need is low
    queries = config["CustomizedMetricSpecification"]["Metrics"]
    metrics = {q["Id"]: (q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"])
               for q in queries if "MetricStat" in q}
    expressions = {q["Id"]: q["Expression"] for q in queries if "Expression" in q}
    assert [q["Id"] for q in queries if q.get("ReturnData")] == ["load"]
    assert metrics["tasks"] == ("DesiredTaskCount", "Average")  # per *desired* task: starting tasks count
    target_id = tracking["ScalingTargetId"]["Ref"]
    (in_id, step), = [(k, p["StepScalingPolicyConfiguration"]) for k, p in policies.items()
                      if p["PolicyType"] == "StepScaling" and p["ScalingTargetId"]["Ref"] == target_id]
    (adjustment,) = step["StepAdjustments"]
    assert step["AdjustmentType"] == "PercentChangeInCapacity"
    (alarm,) = [a for a in _resources(template_json, "AWS::CloudWatch::Alarm").values()
                if {"Ref": in_id} in a.get("AlarmActions", [])]
    assert alarm["ComparisonOperator"] == "LessThanThreshold"
    # The alarm watches the very expression the policy tracks.
    alarm_expressions = {m["Id"]: m["Expression"] for m in alarm["Metrics"] if "Expression" in m}
    alarm_load = next(m for m in alarm["Metrics"] if m.get("ReturnData", True) and "Expression" in m)
    assert alarm_load["Expression"] == expressions["load"]
    for i, e in expressions.items():
        if i != "load":
            assert e in alarm_expressions.values(), e
    period = next(m["MetricStat"]["Period"] for m in alarm["Metrics"] if "MetricStat" in m)
    target = _resources(template_json, "AWS::ApplicationAutoScaling::ScalableTarget")[target_id]
    return Scaling(
        pool=pool, metrics=metrics, expressions=expressions, target=config["TargetValue"],
        out_cooldown_s=config["ScaleOutCooldown"],
        in_alarm=Alarm(alarm["Threshold"], period, alarm["EvaluationPeriods"],
                       alarm.get("DatapointsToAlarm", alarm["EvaluationPeriods"])),
        in_percent=adjustment["ScalingAdjustment"], in_min_magnitude=step.get("MinAdjustmentMagnitude", 0),
        in_cooldown_s=step["Cooldown"], low=target["MinCapacity"], high=target["MaxCapacity"])


@pytest.fixture(scope="module")
def scaling(template_json):
    return read_scaling(template_json)


@pytest.fixture(scope="module")
def retries(stack):
    return stack.config.refusals_per_waiting_player


def replay(s: Scaling, *, players: list[float] | None = None, work: list[float] | None = None,
           start_tasks: int | None = None, lose: dict[int, int] | None = None, retries: float = 4.0):
    """`players`: players wanting a live session each minute; `work`: REST/TTS jobs queued or
    running. `lose` takes serving tasks away at a minute (a spot reclaim): ECS starts
    replacements for the same desired count."""
    assert s.in_alarm.period_s == 60  # one datapoint a minute, as the server's EMF interval
    minutes = len(players or work)
    players = players or [0.0] * minutes
    work = work or [0.0] * minutes
    seats_per_task = session_capacity() if "seats" in s.metrics else None
    s.in_alarm.history.clear()
    desired = serving = start_tasks or s.low
    pending: list[tuple[int, int]] = []  # (minute it starts serving, tasks)
    high: list[bool] = []
    last_in = -math.inf
    timeline = []
    for minute in range(minutes):
        serving += sum(n for t, n in pending if t == minute)
        pending = [(t, n) for t, n in pending if t != minute]
        lost = (lose or {}).get(minute, 0)
        if lost:
            serving -= lost
            pending.append((minute + s.start_delay_min, lost))  # replacements, same desired count
        seats = serving * (seats_per_task or 0)
        live = min(players[minute], seats)
        waiting = players[minute] - live
        load = s.load(desired=desired, live=live, refused=waiting * retries, queued=work[minute],
                      seats=seats_per_task)
        actions = []
        high.append(load > s.target)
        if len(high) >= TARGET_TRACKING_HIGH_DATAPOINTS and all(high[-TARGET_TRACKING_HIGH_DATAPOINTS:]):
            new = min(s.high, math.ceil(round(desired * load / s.target, 9)))
            # In the cooldown AWS counts the capacity already added as desired; the metric is per
            # desired task already, so only a larger need adds more.
            if new > desired:
                actions.append(("out", new - desired))
                pending.append((minute + s.start_delay_min, new - desired))
                desired = new
                high.clear()
        if s.in_alarm.observe(load) and (minute - last_in) * 60 >= s.in_cooldown_s:
            change = int(desired * s.in_percent / 100.0)  # toward zero, at least the minimum
            if abs(change) < s.in_min_magnitude:
                change = -s.in_min_magnitude
            new = max(s.low, desired + change)
            if new != desired:
                actions.append(("in", new - desired))
                pending = [(t, n) for t, n in pending if serving + n <= new]
                desired, last_in = new, minute
        # ECS stops tasks above the desired count, but never one holding live sessions (protected).
        # Least outstanding requests spreads sessions: with at least one per task, every task holds some.
        holding = min(serving, math.ceil(live)) if live else 0
        stopped = max(0, min(serving - desired, serving - holding))
        serving -= stopped
        timeline.append({"minute": minute, "players": players[minute], "live": live, "refused": waiting,
                         "work": work[minute], "load": round(load, 1), "desired": desired, "serving": serving,
                         "actions": actions, "dropped": live - min(live, serving * (seats_per_task or 0))})
    return timeline


def first(timeline, direction, after=0):
    return next((row["minute"] for row in timeline
                 if row["minute"] >= after and any(d == direction for d, _ in row["actions"])), None)


def _work_target(s: Scaling) -> float:
    """Jobs per task at 100% load (read back from the expression, not assumed)."""
    return 10.0 / (s.load(desired=1, queued=10.0, seats=16) / 100.0) if "seats" in s.metrics else \
        10.0 / (s.load(desired=1, queued=10.0) / 100.0)


# --- live players ---

def test_a_fleet_full_of_live_players_never_scales_in(scaling, retries):
    """No REST traffic at all, every task near its session cap for three hours: the old queue signal
    read this as quiet and removed half the tasks every 5 minutes."""
    c = session_capacity()
    players = [0.9 * 6 * c] * 180  # 90% of 6 tasks' seats
    timeline = replay(scaling, players=players, start_tasks=6, retries=retries)
    assert first(timeline, "in") is None
    assert min(r["desired"] for r in timeline) >= 6
    # 90% of the seats is above the session target: the fleet grows to keep room for reconnects...
    assert first(timeline, "out") == TARGET_TRACKING_HIGH_DATAPOINTS - 1
    # ...to what holds the players at the target, and stays there.
    assert timeline[-1]["desired"] == math.ceil(round(6 * scaling.load(desired=6, live=0.9 * 6 * c, seats=c) / 100, 9))
    assert all(r["refused"] == 0 and r["dropped"] == 0 for r in timeline)
    # At the cap: a fleet at max_tasks, full, still never scales in.
    full = replay(scaling, players=[c * scaling.high] * 120, start_tasks=scaling.high, retries=retries)
    assert first(full, "in") is None and {r["desired"] for r in full} == {scaling.high}


def test_reconnect_storm_scales_out_and_every_player_gets_a_seat(scaling, retries):
    """A fleet at its session target takes a wave of reconnects (a match ends, another region's
    players fail over): the refused sessions count as demand, the fleet scales out, and the wave is
    seated once the new tasks serve. The queue signal saw none of it (live sessions queue nothing)."""
    c = session_capacity()
    players = [0.7 * 4 * c] * 10 + [1.3 * 4 * c] * 40  # 4 tasks: 70% of the seats, then 130%
    timeline = replay(scaling, players=players, start_tasks=4, retries=retries)
    out_at = first(timeline, "out")
    assert out_at == 10 + TARGET_TRACKING_HIGH_DATAPOINTS - 1
    assert timeline[10]["refused"] > 0  # the fleet was full: the storm was refused at first...
    seated = next(r["minute"] for r in timeline[10:] if r["refused"] == 0)
    assert seated == out_at + scaling.start_delay_min  # ...and seated as soon as the new tasks serve
    # Enough tasks to hold the storm at the session target, and no more.
    at_target = math.ceil(round(1.3 * 4 * scaling.load(desired=1, live=c, seats=c) / 100, 9))
    assert timeline[-1]["desired"] == at_target
    assert first(timeline, "in") is None


def test_spot_loss_under_live_players_is_replaced_not_dropped(scaling, retries):
    """Steady players at the session target; spot takes 3 tasks: their players reconnect to the rest
    (room the target keeps), the desired count stays, ECS replaces the tasks."""
    c = session_capacity()
    timeline = replay(scaling, players=[0.6 * 8 * c] * 30, start_tasks=8, lose={10: 2}, retries=retries)
    assert {r["desired"] for r in timeline} == {8}
    assert all(r["refused"] == 0 for r in timeline)  # 60% of 8 tasks' seats fits in the 6 left
    assert timeline[10]["serving"] == 6 and timeline[-1]["serving"] == 8


def test_quiet_night_scales_in_only_tasks_without_players(scaling, retries):
    """Players leave at night: the load falls below the scale-in line, tasks go, but never below
    what the remaining players occupy, and never below the minimum."""
    c = session_capacity()
    players = [0.6 * 10 * c] * 10 + [0.1 * 10 * c] * 60
    timeline = replay(scaling, players=players, start_tasks=10, retries=retries)
    assert first(timeline, "in") == 10 + scaling.in_alarm.evaluation_periods - 1
    assert timeline[-1]["desired"] >= scaling.low
    assert all(r["refused"] == 0 and r["dropped"] == 0 for r in timeline)


# --- REST and TTS work ---

def test_burst_goes_straight_to_what_the_work_needs(scaling):
    per_task = _work_target(scaling)
    work = [3] * 10 + [6 * per_task] * 30 + [1] * 30  # calm, 6 tasks' worth, quiet
    timeline = replay(scaling, work=work, start_tasks=scaling.low)
    out_at = first(timeline, "out")
    assert out_at == 10 + TARGET_TRACKING_HIGH_DATAPOINTS - 1
    assert max(r["desired"] for r in timeline) == 6 == [r["desired"] for r in timeline if r["minute"] == out_at][0]
    assert first(timeline, "in") == 40 + scaling.in_alarm.evaluation_periods - 1
    assert timeline[-1]["desired"] == scaling.low


def test_slow_ramp_tracks_without_overshoot(scaling):
    per_task = _work_target(scaling)
    work = [per_task / 5 * m for m in range(50)] + [10 * per_task] * 20
    timeline = replay(scaling, work=work, start_tasks=scaling.low)
    for row in timeline:
        assert row["desired"] <= max(scaling.low, math.ceil(row["work"] / per_task))
    assert timeline[-1]["desired"] == 10 and first(timeline, "in") is None


def test_spot_loss_is_replaced_not_overreacted_to(scaling):
    per_task = _work_target(scaling)
    timeline = replay(scaling, work=[6 * per_task] * 30, start_tasks=6, lose={10: 2})
    assert {r["desired"] for r in timeline} == {6}
    assert [r["serving"] for r in timeline[9:11]] == [6, 4]
    assert timeline[10 + scaling.start_delay_min]["serving"] == 6


def test_a_blip_restarts_the_quiet_clock(scaling):
    per_task = _work_target(scaling)
    work = [0.1 * 4 * per_task] * 7 + [0.5 * 4 * per_task] + [0.1 * 4 * per_task] * 20
    timeline = replay(scaling, work=work, start_tasks=4)
    assert first(timeline, "out") is None
    assert first(timeline, "in") == 7 + scaling.in_alarm.evaluation_periods


def test_capacity_stays_within_min_and_max(scaling):
    per_task = _work_target(scaling)
    timeline = replay(scaling, work=[50 * per_task] * 60 + [0] * 120)
    assert max(r["desired"] for r in timeline) == scaling.high
    assert min(r["desired"] for r in timeline) >= scaling.low
    assert timeline[-1]["desired"] == scaling.low


def test_start_delay_comes_from_the_image_estimate(scaling, stack):
    from voxhost_stack.startup import estimate

    assert scaling.out_cooldown_s == estimate(stack.config).total_seconds == stack.config.start_seconds


SCENARIOS = {
    "full of live players (90% of 6 tasks' seats, no REST)": dict(players=[0.9 * 96] * 40, start_tasks=6),
    "reconnect storm (70% -> 130% of 4 tasks' seats)": dict(players=[0.7 * 64] * 10 + [1.3 * 64] * 30,
                                                           start_tasks=4),
    "quiet night (60% -> 10% of 10 tasks' seats)": dict(players=[0.6 * 160] * 10 + [0.1 * 160] * 40,
                                                        start_tasks=10),
    "REST burst (60 jobs)": dict(work=[3] * 10 + [60] * 30 + [1] * 30),
}


def print_timelines(template_json, pools=("combined",)) -> None:
    for pool in pools:
        s = read_scaling(template_json, pool)
        print(f"\n== pool {pool}: target {s.target:g}%, start delay {s.start_delay_min} min, scale in below "
              f"{s.in_alarm.threshold:g}% for {s.in_alarm.evaluation_periods} min")
        for name, kwargs in SCENARIOS.items():
            if "players" in kwargs and "seats" not in s.metrics:
                continue
            timeline = replay(s, **kwargs)
            print(f"\n{name}: minute players live refused work load% desired serving action")
            previous = None
            for r in timeline:
                key = (r["players"], r["live"], r["work"], r["desired"], r["serving"], tuple(r["actions"]))
                if key != previous or r["minute"] == len(timeline) - 1:
                    acts = ", ".join(f"{d} {n:+d}" for d, n in r["actions"])
                    print(f"  {r['minute']:3d} {r['players']:7g} {r['live']:5g} {r['refused']:5g} {r['work']:5g}"
                          f" {r['load']:6.1f} {r['desired']:4d} {r['serving']:4d} {acts}")
                previous = key


if __name__ == "__main__":
    import sys
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import FAKE_CERT, synth

    print_timelines(synth(Path(tempfile.mkdtemp()), nag=False, certificate_arn=FAKE_CERT)[1])
