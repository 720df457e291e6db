"""One app, one stack per region (context `regions`), and the global pieces between them.

Global routing is Route 53 latency records, one per region, each an alias to that region's
ALB with an HTTPS health check on /ready (and the alias's own target-health evaluation),
rather than Global Accelerator: game clients hold WebSockets for minutes and re-resolve on
every reconnect (the DNS TTL of an alias is 60 s), so anycast's faster failover buys little
over a health check failing a region out of DNS; and Accelerator bills a premium on every GB
through it (audio both ways) plus its hourly fee, where Route 53 bills cents per million
queries. Each record lives in its own region's stack: no cross-region references.

API keys: the primary (first) region's stack owns the secret and Secrets Manager replicates
it to every other region within seconds of a change; the other stacks read the replica by
name, and deploy after the primary.

Designed voices: S3 in the primary region is the source of truth; every region runs a small
function each minute (deploy/aws/lambdas/voices_sync) that reconciles its EFS voices
directory with it, both ways, so a voice made in one region is in every other within a
minute, and one deleted stays deleted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import Aws, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_s3 as s3

from voxhost_stack.config import StackConfig


def stack_id(name: str, region: str, regions: tuple[str, ...]) -> str:
    return f"{name}-{region}" if len(regions) > 1 else name


def add_stacks(app, name: str, config: StackConfig, *, account: str | None, region: str | None) -> list:
    from voxhost_stack.stack import VoxhostStack

    regions = config.regions or ((region,) if region else ())
    stacks = []
    for r in regions or (None,):
        cfg = dataclasses.replace(config, regions=tuple(regions)) if regions else config
        stack = VoxhostStack(app, stack_id(name, r, tuple(regions)) if r else name, config=cfg, base_name=name,
                             env=cdk.Environment(account=account, region=r),
                             description="voxhost: self-hosted OpenAI-compatible speech (STT + TTS) on ECS GPU "
                                         "instances" + (f" ({r})" if len(regions) > 1 else ""))
        if stacks:
            stack.add_stack_dependency(stacks[0])  # the replicas' secret exists once the primary is deployed
        stacks.append(stack)
    return stacks


def api_keys_secret_name(base_name: str) -> str:
    return f"{base_name}/api-keys"


def is_primary(stack) -> bool:
    regions = stack.config.regions
    return len(regions) <= 1 or stack.region == regions[0]


def add_latency_record(stack, cfg: StackConfig) -> None:
    """This region's latency record for the API's name, failed out of DNS when /ready fails."""
    if not cfg.domain_name:
        return
    check = route53.CfnHealthCheck(
        stack, "RegionHealth", health_check_config=route53.CfnHealthCheck.HealthCheckConfigProperty(
            type="HTTPS", fully_qualified_domain_name=stack.alb.load_balancer_dns_name, port=443,
            resource_path="/ready", request_interval=30, failure_threshold=3, enable_sni=True),
        health_check_tags=[route53.CfnHealthCheck.HealthCheckTagProperty(key="Name",
                                                                         value=f"{cfg.domain_name} {stack.region}")])
    route53.CfnRecordSet(
        stack, "LatencyRecord", hosted_zone_id=cfg.hosted_zone_id, name=cfg.domain_name, type="A",
        set_identifier=stack.region, region=stack.region, health_check_id=check.attr_health_check_id,
        alias_target=route53.CfnRecordSet.AliasTargetProperty(
            dns_name=stack.alb.load_balancer_dns_name, hosted_zone_id=stack.alb.load_balancer_canonical_hosted_zone_id,
            evaluate_target_health=True))
    stack.health_check = check


VOICES_SYNC_CODE = Path(__file__).resolve().parents[1] / "lambdas" / "voices_sync"


def voices_bucket_name(base_name: str) -> str:
    """The primary region's voices bucket, named so every region's stack can address it."""
    return f"{base_name.lower()}-voices-{Aws.ACCOUNT_ID}"


def add_voices_sync(stack, cfg: StackConfig) -> None:
    """Several regions: the voices bucket (primary) and each region's minute-by-minute sync."""
    if len(cfg.regions) <= 1:
        return
    name = voices_bucket_name(stack.base_name)
    primary = cfg.regions[0]
    if is_primary(stack):
        stack.voices_bucket = s3.Bucket(
            stack, "Voices", bucket_name=name, versioned=True,  # a bad edit or sync can be undone
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))])
    bucket_arn = f"arn:{Aws.PARTITION}:s3:::{name}"
    sg = ec2.SecurityGroup(stack, "VoicesSyncSg", vpc=stack.vpc, allow_all_outbound=False,
                           description="voices sync: NFS to EFS, HTTPS to S3")
    sg.add_egress_rule(stack.efs_sg, ec2.Port.tcp(2049), "NFS (TLS) to EFS")
    sg.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to S3 (the primary region's)")
    stack.efs_sg.add_ingress_rule(sg, ec2.Port.tcp(2049), "NFS (TLS) from the voices sync")
    role = iam.Role(stack, "VoicesSyncRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                    description="voices sync: this region's EFS voices <-> the primary's voices bucket")
    role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket_arn],
                                           conditions={"StringLike": {"s3:prefix": ["voices/*"]}}))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                                           resources=[f"{bucket_arn}/voices/*"]))
    # A function in a VPC manages its own network interfaces (these actions have no resource scope).
    role.add_to_policy(iam.PolicyStatement(
        actions=["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
                 "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"], resources=["*"]))
    log_group = logs.LogGroup(stack, "VoicesSyncLogs", retention=stack._retention(cfg.log_retention_days),
                              encryption_key=stack.key, removal_policy=RemovalPolicy.DESTROY)
    log_group.grant_write(role)
    fn = lambda_.Function(
        stack, "VoicesSync", runtime=lambda_.Runtime.PYTHON_3_14, handler="handler.handler",
        code=lambda_.Code.from_asset(str(VOICES_SYNC_CODE)), role=role, log_group=log_group,
        timeout=Duration.seconds(50), memory_size=256, reserved_concurrent_executions=1,  # one run at a time
        vpc=stack.vpc, vpc_subnets=ec2.SubnetSelection(subnet_group_name="tasks"), security_groups=[sg],
        filesystem=lambda_.FileSystem.from_efs_access_point(stack.access_point, "/mnt/efs"),
        environment={"BUCKET": name, "BUCKET_REGION": primary, "VOICES_DIR": "/mnt/efs/voices"},
        description="voxhost: designed voices and consents, this region's EFS <-> the primary's bucket")
    events.Rule(stack, "VoicesSyncEveryMinute", schedule=events.Schedule.rate(Duration.minutes(1)),
                targets=[targets.LambdaFunction(fn, retry_attempts=0)])
    stack.voices_sync = fn
