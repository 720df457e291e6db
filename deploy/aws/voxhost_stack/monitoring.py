"""Autoscaling (scaling.py, per pool), alarms, the budget and the dashboard.

The server publishes EMF metrics (ops/emf.py): namespace `voxhost`, dimension set
[ServiceName] (plus [ServiceName, TaskId]), one datapoint per task per minute.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs

from voxhost_stack.config import StackConfig
from voxhost_stack.scaling import add_scaling

MINUTE = Duration.minutes(1)


def emf_metric(cfg: StackConfig, name: str, statistic: str, period: Duration = MINUTE,
               service: str | None = None) -> cw.Metric:
    return cw.Metric(namespace=cfg.metric_namespace, metric_name=name,
                     dimensions_map={"ServiceName": service or cfg.service_name}, statistic=statistic, period=period)


def add_monitoring(stack, cfg: StackConfig) -> None:
    for pool in stack.pools:
        add_scaling(stack, cfg, pool)

    # Errors: 5xx share of requests (429/503 back-pressure is counted apart, as RejectedCount).
    five = Duration.minutes(5)
    error_rate = cw.MathExpression(
        expression="IF(requests > 0, 100 * errors / requests, 0)", label="error rate (%)", period=five,
        using_metrics={"errors": emf_metric(cfg, cfg.errors_metric, "Sum", five),
                       "requests": emf_metric(cfg, cfg.requests_metric, "Sum", five)})
    topic = sns.Topic(stack, "Alarms", master_key=stack.key, enforce_ssl=True, display_name="voxhost alarms")
    stack.key.add_to_resource_policy(iam.PolicyStatement(
        principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
        actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"]))
    if cfg.alarm_email:
        topic.add_subscription(subs.EmailSubscription(cfg.alarm_email))
    stack.error_alarm = cw.Alarm(
        stack, "ErrorRateHigh", alarm_name=stack.alarm_name("ErrorRateHigh"), metric=error_rate, threshold=cfg.error_rate_percent,
        comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD, evaluation_periods=1,
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description=f"More than {cfg.error_rate_percent:g}% of requests failed (5xx) over 5 minutes")
    stack.error_alarm.add_alarm_action(cw_actions.SnsAction(topic))
    unhealthy = cw.Alarm(
        stack, "NoHealthyTargets", metric=stack.target_group.metrics.healthy_host_count(period=MINUTE),
        threshold=1, comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD, evaluation_periods=3,
        treat_missing_data=cw.TreatMissingData.BREACHING,
        alarm_description="No task has passed /ready for 3 minutes")
    unhealthy.add_alarm_action(cw_actions.SnsAction(topic))
    # 5xx the app never sees: the ALB's own (502/503/504: no target, a closed
    # keep-alive, a timeout) and the targets' as the ALB counts them (a task that
    # crashed mid-request records nothing itself).
    stack.edge_5xx_alarms = []
    for name, metric, what in [
        ("AlbElb5xx", stack.alb.metrics.http_code_elb(elbv2.HttpCodeElb.ELB_5XX_COUNT, period=five),
         "the load balancer itself returned 5xx (HTTPCode_ELB_5XX_Count)"),
        ("AlbTarget5xx", stack.alb.metrics.http_code_target(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, period=five),
         "targets returned 5xx as the ALB saw it (HTTPCode_Target_5XX_Count)"),
    ]:
        alarm = cw.Alarm(stack, name, alarm_name=stack.alarm_name(name), metric=metric, threshold=cfg.alb_5xx_per_5min,
                         comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD, evaluation_periods=1,
                         treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                         alarm_description=f"More than {cfg.alb_5xx_per_5min} in 5 minutes: {what}")
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
        stack.edge_5xx_alarms.append(alarm)
    stack.alarm_topic = topic
    stack.slo_alarms = _slo_alarms(stack, cfg, topic)
    _budget(stack, cfg, topic)

    _dashboard(stack, cfg, error_rate)


def _slo_alarms(stack, cfg: StackConfig, topic: sns.Topic) -> list[cw.Alarm]:
    """The design's targets as alarms, each to the alarm topic: p95 latency per route (STT < 2 s,
    TTS < 3 s), live sessions refused for want of a slot, a GPU busy above 90% for 15 minutes."""
    alarms = []

    def alarm(name: str, metric: cw.IMetric, threshold: float, minutes: int, what: str) -> None:
        a = cw.Alarm(stack, name, alarm_name=stack.alarm_name(name), metric=metric, threshold=threshold,
                     comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                     evaluation_periods=minutes, datapoints_to_alarm=minutes,
                     treat_missing_data=cw.TreatMissingData.NOT_BREACHING, alarm_description=what)
        a.add_alarm_action(cw_actions.SnsAction(topic))
        alarms.append(a)

    for name, route, target in [("SttLatencyP95", "/v1/audio/transcriptions", cfg.stt_latency_target_ms),
                                ("TtsLatencyP95", "/v1/audio/speech", cfg.tts_latency_target_ms)]:
        metric = cw.Metric(namespace=cfg.metric_namespace, metric_name=cfg.latency_metric, statistic="p95",
                           period=Duration.minutes(1),
                           dimensions_map={"ServiceName": cfg.service_name, "Route": route})
        for pool in stack.pools:  # the dedicated layout: each route is served by its own pool
            if pool.name in ("combined", "stt" if route.endswith("transcriptions") else "tts"):
                metric = metric.with_(dimensions_map={"ServiceName": pool.emf_service_name, "Route": route})
        alarm(name, metric, target, cfg.latency_alarm_minutes,
              f"p95 of {route} above {target:g} ms (the design's target) for {cfg.latency_alarm_minutes} min")
    for pool in stack.pools:
        if pool.sessions:
            alarm(f"{pool.prefix}LiveSessionsRefused", emf_metric(cfg, "LiveSessionsRefused", "Sum",
                                                                 Duration.minutes(5), service=pool.emf_service_name),
                  cfg.sessions_refused_per_5min, 1,
                  f"More than {cfg.sessions_refused_per_5min} live sessions refused for want of a slot in 5 "
                  "minutes: the fleet is full faster than it scales (max_tasks, quota, or start time)")
    for asg_name, label in stack.gpu_groups:
        gpu = cw.Metric(namespace=f"{cfg.metric_namespace}/gpu", metric_name="nvidia_smi_utilization_gpu",
                        dimensions_map={"AutoScalingGroupName": asg_name}, statistic="Average",
                        period=Duration.minutes(1))
        alarm(f"{label}GpuBusy", gpu, cfg.gpu_busy_percent, cfg.gpu_busy_minutes,
              f"{label or 'The '}GPU fleet above {cfg.gpu_busy_percent:g}% busy on average for "
              f"{cfg.gpu_busy_minutes} min: latency targets are at risk (max_tasks, or the plan's GPU count)")
    return alarms


def _budget(stack, cfg: StackConfig, topic: sns.Topic) -> None:
    """The design's "cost budgets and alerts": a monthly cost budget on the account,
    alerting the alarm topic at 80% of actual spend and 100% of the forecast."""
    principal = iam.ServicePrincipal("budgets.amazonaws.com")
    topic.add_to_resource_policy(iam.PolicyStatement(principals=[principal], actions=["sns:Publish"],
                                                     resources=[topic.topic_arn]))
    stack.key.add_to_resource_policy(iam.PolicyStatement(
        principals=[principal], actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"]))
    subscribers = [budgets.CfnBudget.SubscriberProperty(subscription_type="SNS", address=topic.topic_arn)]
    stack.budget = budgets.CfnBudget(
        stack, "Budget",
        budget=budgets.CfnBudget.BudgetDataProperty(
            budget_name=f"{stack.stack_name}-monthly", budget_type="COST", time_unit="MONTHLY",
            budget_limit=budgets.CfnBudget.SpendProperty(amount=cfg.budget_usd_per_month, unit="USD")),
        notifications_with_subscribers=[
            budgets.CfnBudget.NotificationWithSubscribersProperty(
                notification=budgets.CfnBudget.NotificationProperty(
                    notification_type=kind, comparison_operator="GREATER_THAN", threshold=percent,
                    threshold_type="PERCENTAGE"),
                subscribers=subscribers)
            for kind, percent in (("ACTUAL", 80), ("FORECASTED", 100))])


def _dashboard(stack, cfg: StackConfig, error_rate: cw.MathExpression) -> None:
    gpu = cw.Metric(namespace=f"{cfg.metric_namespace}/gpu", metric_name="nvidia_smi_utilization_gpu",
                    dimensions_map={"AutoScalingGroupName": stack.asg.auto_scaling_group_name},
                    statistic="Average", period=MINUTE, label="GPU utilisation (mean)")
    # The server's per-route series ([ServiceName, Route]; WebSocket sessions left out).
    def route_latency(route: str, what: str) -> list[cw.Metric]:
        return [cw.Metric(namespace=cfg.metric_namespace, metric_name=cfg.latency_metric, statistic=stat,
                          dimensions_map={"ServiceName": cfg.service_name, "Route": route}, period=MINUTE,
                          label=f"{what} {stat}") for stat in ("p50", "p95", "p99")]
    tasks = cw.Metric(namespace="ECS/ContainerInsights", metric_name="RunningTaskCount",
                      dimensions_map={"ClusterName": stack.cluster.cluster_name,
                                      "ServiceName": stack.service.service_name},
                      statistic="Average", period=MINUTE, label="running tasks")
    cost_per_request = cw.MathExpression(
        expression="IF(requests > 0, cost / requests, 0)", label="USD per request", period=Duration.minutes(5),
        using_metrics={"cost": emf_metric(cfg, cfg.cost_metric, "Sum", Duration.minutes(5)),
                       "requests": emf_metric(cfg, cfg.requests_metric, "Sum", Duration.minutes(5))})
    board = stack.dashboard = cw.Dashboard(stack, "Dashboard",
                                           dashboard_name=f"{cfg.service_name}-{stack.stack_name}")
    board.add_widgets(
        cw.GraphWidget(title="GPU utilisation (%)", left=[gpu, gpu.with_(statistic="Maximum", label="max")],
                       left_y_axis=cw.YAxisProps(min=0, max=100), width=12),
        cw.GraphWidget(title="STT latency (ms), REST transcriptions", width=6,
                       left=route_latency("/v1/audio/transcriptions", "STT"),
                       left_annotations=[cw.HorizontalAnnotation(value=cfg.stt_latency_target_ms,
                                                                 label="STT target")]),
        cw.GraphWidget(title="TTS latency (ms)", width=6, left=route_latency("/v1/audio/speech", "TTS"),
                       left_annotations=[cw.HorizontalAnnotation(value=cfg.tts_latency_target_ms,
                                                                 label="TTS target")]),
        *[cw.GraphWidget(title=f"{pool.label}load (% of target: larger of sessions and work), tasks",
                         left=[pool.load], right=[tasks.with_(dimensions_map={
                             "ClusterName": stack.cluster.cluster_name, "ServiceName": pool.service.service_name},
                             label=f"{pool.label}running tasks")], width=12, left_annotations=[
                             cw.HorizontalAnnotation(value=100, label="scale out above"),
                             cw.HorizontalAnnotation(value=cfg.scale_in_load_percent, label="scale in below")])
          for pool in stack.pools],
        cw.GraphWidget(title="Live sessions and capacity", width=12, left=[
            emf_metric(cfg, "LiveSessions", "Sum", service=pool.emf_service_name).with_(label="live sessions")
            for pool in stack.pools if pool.sessions] + [
            emf_metric(cfg, "LiveSessionsRefused", "Sum", service=pool.emf_service_name).with_(
                label="refused (no slot)") for pool in stack.pools if pool.sessions]),
        cw.GraphWidget(title="Errors", left=[emf_metric(cfg, cfg.errors_metric, "Sum").with_(label="5xx"),
                                             emf_metric(cfg, "RejectedCount", "Sum").with_(label="429/503")],
                       right=[error_rate], width=12, right_annotations=[
                           cw.HorizontalAnnotation(value=cfg.error_rate_percent, label="alarm")]),
        cw.GraphWidget(title="Cost per request (USD)", left=[cost_per_request],
                       right=[emf_metric(cfg, cfg.requests_metric, "Sum").with_(label="requests/min")], width=12),
        cw.AlarmStatusWidget(title="Alarms", alarms=[*[pool.scale_in_alarm for pool in stack.pools],
                                                     *stack.slo_alarms,
                                                     stack.error_alarm, *stack.edge_5xx_alarms], width=12),
    )
