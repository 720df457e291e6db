"""Autoscaling on what a task really holds: live sessions and REST/TTS work.

Each pool (the combined service, or the STT and TTS services of the dedicated
layout) has its own scalable target and its own policies, on its own signal:

    load (% of target) = MAX(sessions load, work load)
    sessions load = (live sessions + refused / refusals_per_waiting_player)
                    / (desired tasks x one task's session capacity) / session_target
    work load     = (jobs queued + running) / desired tasks / work_per_task

(from the EMF each task publishes, ops/emf.py). Scale-out is target tracking on the
load at 100%: it goes straight to the tasks the larger need asks for, whichever it
is. Target tracking would also scale in on the same metric as soon as *one* need
falls, so its scale-in is disabled; a step policy removes tasks only when the load,
the larger of the two, has stayed below `scale_in_load_percent` for
`scale_in_minutes`: a fleet full of live players is never quiet, however few REST
requests it sees. Dividing by the *desired* count counts tasks still starting as
capacity, so a scale-out does not keep adding while GPU tasks load their models.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_ecs as ecs

from voxhost_stack.config import StackConfig

MINUTE = Duration.minutes(1)


@dataclass
class Pool:
    """One ECS service that scales on its own: what it serves and which EMF series measure it."""

    name: str  # "combined", "stt" or "tts"
    prefix: str  # construct-id prefix: "" keeps the combined layout's ids
    service: ecs.Ec2Service
    emf_service_name: str  # the EMF ServiceName dimension its tasks publish
    sessions: bool  # live sessions count toward its load (they land on STT)
    work: tuple[str, str]  # EMF series of its work: queued, running
    min_tasks: int
    max_tasks: int

    @property
    def label(self) -> str:
        return {"combined": "", "stt": "STT ", "tts": "TTS "}[self.name]


def load_queries(stack, cfg: StackConfig, pool: Pool) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """The load's inputs ({id: (metric, statistic)}) and expressions ({id: expression}), in order;
    `load` is the result, in % of target. Shared by the target-tracking policy and the alarms."""
    metrics = {"workq": (pool.work[0], "Sum"), "workr": (pool.work[1], "Sum"), "tasks": ("DesiredTaskCount", "Average")}
    per_task = "IF(tasks > 0, tasks, 1)"
    expressions = {"work": f"100 * (FILL(workq, 0) + FILL(workr, 0)) / {per_task} / {cfg.scale_out_work_per_task:g}"}
    if pool.sessions:
        metrics.update({"live": ("LiveSessions", "Sum"), "refused": ("LiveSessionsRefused", "Sum"),
                        "seats": ("LiveSessionCapacity", "Maximum")})
        expressions["sessions"] = (
            f"IF(FILL(seats, 0) > 0, 100 * (FILL(live, 0) + FILL(refused, 0) / {cfg.refusals_per_waiting_player:g})"
            f" / ({per_task} * seats) / {cfg.session_target_percent / 100.0:g}, 0)")
        expressions["load"] = "MAX([sessions, work])"
    else:
        expressions["load"] = "work"
    return metrics, expressions


def _metric(stack, cfg: StackConfig, pool: Pool, name: str, statistic: str) -> cw.Metric:
    if name == "DesiredTaskCount":
        return cw.Metric(namespace="ECS/ContainerInsights", metric_name=name, statistic=statistic, period=MINUTE,
                         dimensions_map={"ClusterName": stack.cluster.cluster_name,
                                         "ServiceName": pool.service.service_name})
    return cw.Metric(namespace=cfg.metric_namespace, metric_name=name, statistic=statistic, period=MINUTE,
                     dimensions_map={"ServiceName": pool.emf_service_name})


def load_expression(stack, cfg: StackConfig, pool: Pool) -> cw.MathExpression:
    """The load as a CloudWatch math expression (alarms, dashboard)."""
    metrics, expressions = load_queries(stack, cfg, pool)
    using = {i: _metric(stack, cfg, pool, name, stat) for i, (name, stat) in metrics.items()}
    for i, expression in expressions.items():
        if i != "load":
            using[i] = cw.MathExpression(expression=expression, using_metrics=dict(using), period=MINUTE,
                                         label=i)
    return cw.MathExpression(expression=expressions["load"], using_metrics=using, period=MINUTE,
                             label=f"{pool.label}load (% of target)")


def add_scaling(stack, cfg: StackConfig, pool: Pool) -> tuple[cw.MathExpression, cw.Alarm]:
    p = pool.prefix
    scalable = appscaling.ScalableTarget(
        stack, f"{p}TaskCount", service_namespace=appscaling.ServiceNamespace.ECS,
        resource_id=f"service/{stack.cluster.cluster_name}/{pool.service.service_name}",
        scalable_dimension="ecs:service:DesiredCount", min_capacity=pool.min_tasks, max_capacity=pool.max_tasks)
    metrics, expressions = load_queries(stack, cfg, pool)
    stat = appscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty
    metric = appscaling.CfnScalingPolicy.TargetTrackingMetricProperty
    dim = appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty
    query = appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty

    def stat_query(i: str, name: str, statistic: str):
        if name == "DesiredTaskCount":
            m = metric(namespace="ECS/ContainerInsights", metric_name=name, dimensions=[
                dim(name="ClusterName", value=stack.cluster.cluster_name),
                dim(name="ServiceName", value=pool.service.service_name)])
        else:
            m = metric(namespace=cfg.metric_namespace, metric_name=name,
                       dimensions=[dim(name="ServiceName", value=pool.emf_service_name)])
        return query(id=i, return_data=False, metric_stat=stat(stat=statistic, metric=m))

    queries = [stat_query(i, name, statistic) for i, (name, statistic) in metrics.items()]
    queries += [query(id=i, expression=e, label=f"{pool.label}{i} (% of target)", return_data=i == "load")
                for i, e in expressions.items()]
    policy = appscaling.CfnScalingPolicy(
        stack, f"{p}ScaleOutOnLoad", policy_name=f"{stack.stack_name}-{pool.name}-load",
        policy_type="TargetTrackingScaling", scaling_target_id=scalable.scalable_target_id,
        target_tracking_scaling_policy_configuration=(
            appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=100.0,
                scale_out_cooldown=cfg.start_seconds,
                disable_scale_in=True,  # scale-in is the step policy below: only when every need is low
                customized_metric_specification=appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(
                    metrics=queries))))
    load = load_expression(stack, cfg, pool)
    scale_in = appscaling.StepScalingAction(
        stack, f"{p}ScaleInWhenQuiet", scaling_target=scalable,
        adjustment_type=appscaling.AdjustmentType.PERCENT_CHANGE_IN_CAPACITY, min_adjustment_magnitude=1,
        cooldown=Duration.seconds(cfg.scale_in_cooldown_seconds),
        metric_aggregation_type=appscaling.MetricAggregationType.AVERAGE)
    scale_in.add_adjustment(adjustment=-cfg.scale_in_percent, upper_bound=0)
    quiet = cw.Alarm(
        stack, f"{p}LoadLow", metric=load, threshold=cfg.scale_in_load_percent,
        comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluation_periods=cfg.scale_in_minutes, datapoints_to_alarm=cfg.scale_in_minutes,
        # No data (EMF not arriving) is not evidence of quiet: never scale in on it.
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description=f"{pool.label}load (larger of sessions and work, % of target) < "
                          f"{cfg.scale_in_load_percent:g} for {cfg.scale_in_minutes} min: remove "
                          f"{cfg.scale_in_percent}% of tasks (tasks holding live sessions are scale-in protected)")
    quiet.add_alarm_action(cw_actions.ApplicationScalingAction(scale_in))
    pool.scale_out_policy, pool.scale_in_alarm, pool.load = policy, quiet, load
    return load, quiet
