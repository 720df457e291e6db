"""Backlog autoscaling, alarms, the budget and the dashboard.

The server publishes EMF metrics (serving area, ops/emf.py): namespace `voxhost`,
dimension set [ServiceName] (plus [ServiceName, TaskId]), one datapoint per task
per minute. `Sum` of QueueDepth over [ServiceName] is the service's backlog;
divided by the desired task count (Container Insights) it is the backlog per task.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_budgets as budgets
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subs

from voxhost_stack.config import StackConfig

MINUTE = Duration.minutes(1)


def backlog_per_task(stack, cfg: StackConfig) -> cw.MathExpression:
    """Jobs queued across the service / tasks the service *wants*. Against the desired
    count (not the running one), tasks still starting already count as capacity, so
    the metric doesn't keep asking for more while they load a model (minutes on a GPU)."""
    return cw.MathExpression(
        expression="IF(tasks > 0, queue / tasks, queue)", label="backlog per task", period=MINUTE,
        using_metrics={"queue": emf_metric(cfg, cfg.queue_metric, "Sum"), "tasks": desired_tasks(stack)})


def desired_tasks(stack) -> cw.Metric:
    return cw.Metric(namespace="ECS/ContainerInsights", metric_name="DesiredTaskCount",
                     dimensions_map={"ClusterName": stack.cluster.cluster_name,
                                     "ServiceName": stack.service.service_name},
                     statistic="Average", period=MINUTE)


def _scaling(stack, cfg: StackConfig) -> cw.MathExpression:
    """Scale-out: target tracking on backlog per task, so the service goes straight to
    backlog / target tasks (60 queued, target 10: 6 tasks), with a cooldown as long as a
    task takes to start. Scale-in: the design's rule (below 2 per task for 10 minutes),
    halving the surplus each cooldown rather than 10% at a time."""
    scalable = appscaling.ScalableTarget(
        stack, "TaskCount", service_namespace=appscaling.ServiceNamespace.ECS,
        resource_id=f"service/{stack.cluster.cluster_name}/{stack.service.service_name}",
        scalable_dimension="ecs:service:DesiredCount", min_capacity=cfg.min_tasks, max_capacity=cfg.max_tasks)
    backlog = backlog_per_task(stack, cfg)
    metric_stat = appscaling.CfnScalingPolicy.TargetTrackingMetricStatProperty
    metric = appscaling.CfnScalingPolicy.TargetTrackingMetricProperty
    dims = appscaling.CfnScalingPolicy.TargetTrackingMetricDimensionProperty
    query = appscaling.CfnScalingPolicy.TargetTrackingMetricDataQueryProperty
    stack.scale_out_policy = appscaling.CfnScalingPolicy(
        stack, "ScaleOutOnBacklog", policy_name=f"{stack.stack_name}-backlog-per-task",
        policy_type="TargetTrackingScaling", scaling_target_id=scalable.scalable_target_id,
        target_tracking_scaling_policy_configuration=(
            appscaling.CfnScalingPolicy.TargetTrackingScalingPolicyConfigurationProperty(
                target_value=cfg.scale_out_queue_per_task,
                scale_out_cooldown=cfg.task_start_seconds,
                disable_scale_in=True,  # scale-in is the step policy below
                customized_metric_specification=appscaling.CfnScalingPolicy.CustomizedMetricSpecificationProperty(
                    metrics=[
                        query(id="queue", return_data=False, metric_stat=metric_stat(stat="Sum", metric=metric(
                            namespace=cfg.metric_namespace, metric_name=cfg.queue_metric,
                            dimensions=[dims(name="ServiceName", value=cfg.service_name)]))),
                        query(id="tasks", return_data=False, metric_stat=metric_stat(stat="Average", metric=metric(
                            namespace="ECS/ContainerInsights", metric_name="DesiredTaskCount",
                            dimensions=[dims(name="ClusterName", value=stack.cluster.cluster_name),
                                        dims(name="ServiceName", value=stack.service.service_name)]))),
                        query(id="backlog", expression="IF(tasks > 0, queue / tasks, queue)",
                              label="backlog per task", return_data=True),
                    ]))))

    scale_in = appscaling.StepScalingAction(
        stack, "ScaleInOnBacklog", scaling_target=scalable,
        adjustment_type=appscaling.AdjustmentType.PERCENT_CHANGE_IN_CAPACITY, min_adjustment_magnitude=1,
        cooldown=Duration.seconds(cfg.scale_in_cooldown_seconds),
        metric_aggregation_type=appscaling.MetricAggregationType.AVERAGE)
    scale_in.add_adjustment(adjustment=-cfg.scale_in_percent, upper_bound=0)
    stack.scale_in_alarm = cw.Alarm(
        stack, "BacklogLow", metric=backlog, threshold=cfg.scale_in_queue_per_task,
        comparison_operator=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
        evaluation_periods=cfg.scale_in_minutes, datapoints_to_alarm=cfg.scale_in_minutes,
        # No data (EMF not arriving) is not evidence of quiet: never scale in on it.
        treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        alarm_description=f"Backlog per task < {cfg.scale_in_queue_per_task:g} for "
                          f"{cfg.scale_in_minutes} min: remove {cfg.scale_in_percent}% of tasks")
    stack.scale_in_alarm.add_alarm_action(cw_actions.ApplicationScalingAction(scale_in))
    return backlog


def emf_metric(cfg: StackConfig, name: str, statistic: str, period: Duration = MINUTE) -> cw.Metric:
    return cw.Metric(namespace=cfg.metric_namespace, metric_name=name,
                     dimensions_map={"ServiceName": cfg.service_name}, statistic=statistic, period=period)


def add_monitoring(stack, cfg: StackConfig) -> None:
    backlog = _scaling(stack, cfg)

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
        stack, "ErrorRateHigh", metric=error_rate, threshold=cfg.error_rate_percent,
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
        alarm = cw.Alarm(stack, name, metric=metric, threshold=cfg.alb_5xx_per_5min,
                         comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD, evaluation_periods=1,
                         treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
                         alarm_description=f"More than {cfg.alb_5xx_per_5min} in 5 minutes: {what}")
        alarm.add_alarm_action(cw_actions.SnsAction(topic))
        stack.edge_5xx_alarms.append(alarm)
    stack.alarm_topic = topic
    _budget(stack, cfg, topic)

    _dashboard(stack, cfg, backlog, error_rate)


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


def _dashboard(stack, cfg: StackConfig, queue: cw.MathExpression, error_rate: cw.MathExpression) -> None:
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
        cw.GraphWidget(title="Backlog per task (desired), tasks", left=[queue],
                       right=[tasks], width=12, left_annotations=[
                           cw.HorizontalAnnotation(value=cfg.scale_out_queue_per_task, label="scale out"),
                           cw.HorizontalAnnotation(value=cfg.scale_in_queue_per_task, label="scale in")]),
        cw.GraphWidget(title="Errors", left=[emf_metric(cfg, cfg.errors_metric, "Sum").with_(label="5xx"),
                                             emf_metric(cfg, "RejectedCount", "Sum").with_(label="429/503")],
                       right=[error_rate], width=12, right_annotations=[
                           cw.HorizontalAnnotation(value=cfg.error_rate_percent, label="alarm")]),
        cw.GraphWidget(title="Cost per request (USD)", left=[cost_per_request],
                       right=[emf_metric(cfg, cfg.requests_metric, "Sum").with_(label="requests/min")], width=12),
        cw.AlarmStatusWidget(title="Alarms", alarms=[stack.scale_in_alarm,
                                                     stack.error_alarm, *stack.edge_5xx_alarms], width=12),
    )
