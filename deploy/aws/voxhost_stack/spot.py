"""The spot rule: EventBridge on the interruption warning and the rebalance recommendation,
and the small Lambda (deploy/aws/lambdas/spot_drain) that takes the instance's tasks out of
the load balancer at once, so the servers drain inside the 2-minute notice."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, Fn, RemovalPolicy
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from voxhost_stack.config import StackConfig

CODE = Path(__file__).resolve().parents[1] / "lambdas" / "spot_drain"
DETAIL_TYPES = ["EC2 Spot Instance Interruption Warning", "EC2 Instance Rebalance Recommendation"]


def add_spot_drain(stack, cfg: StackConfig) -> None:
    cluster_name = stack.cluster.cluster_name
    group_arns = [tg.target_group_arn for tg in stack.target_groups]
    role = iam.Role(stack, "SpotDrainRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                    description="Spot notice: deregister the instance's task targets, drain the container instance")
    log_group = logs.LogGroup(stack, "SpotDrainLogs", retention=stack._retention(cfg.log_retention_days),
                              encryption_key=stack.key, removal_policy=RemovalPolicy.DESTROY)
    log_group.grant_write(role)
    # Least privilege: this cluster's container instances and tasks, these target groups.
    container_instances = stack.format_arn(service="ecs", resource="container-instance",
                                           resource_name=f"{cluster_name}/*")
    role.add_to_policy(iam.PolicyStatement(actions=["ecs:ListContainerInstances"],
                                           resources=[stack.cluster.cluster_arn]))
    role.add_to_policy(iam.PolicyStatement(actions=["ecs:ListTasks"], resources=[container_instances],
                                           conditions={"ArnEquals": {"ecs:cluster": stack.cluster.cluster_arn}}))
    role.add_to_policy(iam.PolicyStatement(
        actions=["ecs:DescribeTasks"], resources=[stack.format_arn(service="ecs", resource="task",
                                                                   resource_name=f"{cluster_name}/*")],
        conditions={"ArnEquals": {"ecs:cluster": stack.cluster.cluster_arn}}))
    role.add_to_policy(iam.PolicyStatement(actions=["ecs:UpdateContainerInstancesState"],
                                           resources=[container_instances],
                                           conditions={"ArnEquals": {"ecs:cluster": stack.cluster.cluster_arn}}))
    role.add_to_policy(iam.PolicyStatement(actions=["elasticloadbalancing:DeregisterTargets"],
                                           resources=group_arns))
    fn = lambda_.Function(
        stack, "SpotDrain", runtime=lambda_.Runtime.PYTHON_3_14, handler="handler.handler",
        code=lambda_.Code.from_asset(str(CODE)), role=role, log_group=log_group,
        timeout=Duration.seconds(30), memory_size=128,
        # Two notices at once are two instances; more would be a fleet-wide reclaim, still few.
        reserved_concurrent_executions=10,
        description="voxhost: on a spot interruption warning, deregister the instance's tasks at once",
        environment={"CLUSTER": cluster_name, "CONTAINER_PORT": str(cfg.container_port),
                     "TARGET_GROUP_ARNS": Fn.join(",", group_arns)})
    rule = events.Rule(stack, "SpotNotices", description="Spot interruption warnings and rebalance "
                       "recommendations for this region's instances: the Lambda ignores other clusters'",
                       event_pattern=events.EventPattern(source=["aws.ec2"], detail_type=DETAIL_TYPES))
    # Retries for 10 minutes at most: a notice older than its 2 minutes is moot anyway.
    rule.add_target(targets.LambdaFunction(fn, retry_attempts=2, max_event_age=Duration.minutes(10)))
    stack.spot_drain, stack.spot_rule = fn, rule
