"""cdk-nag (AwsSolutionsChecks) acknowledgements: each says why the finding doesn't apply.

cdk-nag v3 reports through CDK's policy validation (synth fails on any finding
not acknowledged here); tests/deploy runs it on every test session.
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, Token, Validations

PLUGIN = "AwsSolutions::"
SDK_CALL_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"  # aws-cdk-lib's fixed id for AwsCustomResource's Lambda


def _ack(construct, rule: str, reason: str) -> None:
    Validations.of(construct).acknowledge(Acknowledgment(id=PLUGIN + rule, reason=reason))


def suppress(stack) -> None:
    instance_policy = stack.node.find_child("InstanceRole").node.find_child("DefaultPolicy")
    _ack(instance_policy, "AwsSolutions-IAM5[Resource::*]",
         "ECS container-instance actions CDK grants (ecs:DiscoverPollEndpoint, ecr:GetAuthorizationToken, "
         "cloudwatch:PutMetricData) have no resource-level permissions; PutMetricData is limited to the "
         "voxhost/gpu namespace by condition.")
    _ack(instance_policy, "AwsSolutions-IAM5[Action::ecs:Submit*]",
         "ecs:Submit* (container/task state changes) is the ECS agent's own reporting, scoped to this cluster's "
         "container instances by CDK.")
    dedicated = stack.config.pools == "dedicated"
    task_definitions = [stack.task_definition, *([stack.tts_task_definition] if dedicated else [])]
    for td in task_definitions:
        _ack(td.obtain_execution_role().node.find_child("DefaultPolicy"), "AwsSolutions-IAM5[Resource::*]",
             "ecr:GetAuthorizationToken has no resource-level permissions; image pulls, logs and the secret are "
             "scoped to their ARNs.")
        _ack(td, "AwsSolutions-ECS2",
             "The environment holds non-secret configuration only (model ids, ports, metric names); the API keys "
             "come from Secrets Manager via `secrets`.")
    groups = [(stack.asg, stack.force_delete)]
    if dedicated and stack.tts_asg is not stack.asg:
        groups.append((stack.tts_asg, stack.tts_force_delete))
    for asg, _ in groups:
        _ack(asg, "AwsSolutions-EC26",
             "The rule can't read EBS settings through a launch template; the template's only block device is "
             "gp3 with Encrypted: true (asserted in tests/deploy).")
        _ack(asg, "AwsSolutions-AS3",
             "ECS managed scaling owns this group's size; the service's own alarms (load, errors, no healthy "
             "targets, refusals) notify the alarm topic, where ops act.")
    _ack(stack.api_keys, "AwsSolutions-SMG4",
         "The secret holds SHA-256 hashes of client API keys issued by operators; a rotation Lambda cannot "
         "re-issue keys to game clients. Rotation is an operator runbook step (docs/deploy.md).")
    _ack(stack.alb.connections.security_groups[0], "AwsSolutions-EC23",
         "A public API for game clients: HTTPS (and HTTP, redirected) from anywhere is the point; WAF filters "
         "in front of it.")

    # How cdk-nag spells the ARN: concrete region and account when the stack has them
    # (a real `cdk deploy` does), their pseudo parameters otherwise (CI).
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    for asg, force_delete in groups:
        asg_id = stack.resolve(stack.get_logical_id(asg.node.default_child))
        _ack(force_delete.node.find_child("CustomResourcePolicy"),
             f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:{region}:"
             f"{account}:autoScalingGroup/*:autoScalingGroupName/<{asg_id}>]",
             "The group's ARN carries a generated id unknown until creation; the name part pins it to this stack's "
             "group, and the only action is DeleteAutoScalingGroup, run at stack deletion.")
    _ack(stack.node.find_child(SDK_CALL_PROVIDER).node.find_child("ServiceRole"),
         "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
         "CDK's AwsCustomResource provider (the teardown's force-delete) writes its own logs with the basic "
         "execution role; it holds no other permission.")
    _ack(stack.node.find_child("TaskRole").node.find_child("DefaultPolicy"), "AwsSolutions-IAM5[Resource::*]",
         "elasticloadbalancing:DescribeTargetHealth (the server drains when its own target starts draining) "
         "has no resource-level permissions and is read-only"
         + ("; ECS Exec (ecs_exec, off by default): the ssmmessages channel actions CDK grants have none "
            "either, on only while an operator validates a deployment." if stack.config.ecs_exec else "."))
    cluster_id = stack.resolve(stack.get_logical_id(stack.cluster.node.default_child))
    ecs_arn = f"arn:<AWS::Partition>:ecs:{region}:{account}"
    tasks = f"AwsSolutions-IAM5[Resource::{ecs_arn}:task/<{cluster_id}>/*]"
    _ack(stack.node.find_child("TaskRole").node.find_child("DefaultPolicy"), tasks,
         "ecs:UpdateTaskProtection/GetTaskProtection for the task itself (scale-in protection while it holds live "
         "sessions): a task's id exists only once it runs, so the ARN is this cluster's tasks, no wider.")
    spot_policy = stack.node.find_child("SpotDrainRole").node.find_child("DefaultPolicy")
    _ack(spot_policy, tasks,
         "The spot Lambda describes the tasks on the doomed instance; their ids are only known at the notice, so "
         "the ARN is this cluster's tasks (and an ecs:cluster condition), read-only.")
    _ack(spot_policy, f"AwsSolutions-IAM5[Resource::{ecs_arn}:container-instance/<{cluster_id}>/*]",
         "The spot Lambda lists the tasks on, and drains, the container instance named in the notice; instances "
         "come and go with the group, so the ARN is this cluster's container instances (and an ecs:cluster "
         "condition), nothing outside it.")
    if stack.config.models_bucket:
        _ack(stack.node.find_child("TaskRole").node.find_child("DefaultPolicy"),
             f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{stack.config.models_bucket}/models/*]",
             "The models sync reads every object under the bucket's models/ prefix (model files are many and "
             "named by the hub); GetObject only, that prefix only.")
    for endpoint in stack.interface_endpoints:
        _ack(endpoint.connections.security_groups[0], "AwsSolutions-EC23",
             "CDK's interface-endpoint security group admits 443 from the VPC's own CIDR (an Fn::GetAtt the rule "
             "can't resolve), not from the internet.")
    if getattr(stack, "voices_sync", None) is not None:
        policy = stack.node.find_child("VoicesSyncRole").node.find_child("DefaultPolicy")
        _ack(policy, "AwsSolutions-IAM5[Resource::*]",
             "A Lambda function in a VPC creates, describes and deletes its own network interfaces; those EC2 "
             "actions have no resource-level permissions (AWS's own AWSLambdaVPCAccessExecutionRole is the same).")
        _ack(policy, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{stack.base_name.lower()}-voices-"
             f"{account}/voices/*]",
             "The sync reads, writes and deletes the designed-voice documents under the voices/ prefix of the "
             "primary region's voices bucket; each voice is its own object, named by the studio.")
        if getattr(stack, "voices_bucket", None) is not None:
            _ack(stack.voices_bucket, "AwsSolutions-S1",
                 "Written and read only by the regions' voices sync (versioned, 30 days of old versions); "
                 "CloudTrail records API calls, and access logs would log the sync every minute.")
    if stack.config.cdn:
        _ack(stack.lines_bucket, "AwsSolutions-S1",
             "The published-lines bucket is written only by `voxhost cache publish` (operators) and read only by "
             "CloudFront through origin access control; CloudTrail records the writes, and access logs would "
             "only log CloudFront's cache fills.")
        for rule, reason in [
            ("AwsSolutions-CFR1", "Game clients worldwide fetch published barks; the lines are game content "
                                  "shipped to every player anyway, so no country is excluded."),
            ("AwsSolutions-CFR2", "The distribution serves only immutable, content-addressed audio files and "
                                  "manifests by GET/HEAD; there is no input to filter, and the API's own WAF "
                                  "stays on the ALB."),
            ("AwsSolutions-CFR3", "Access logs would record every player's IP per fetched bark; CloudFront's "
                                  "own metrics (requests, bytes, error rates) cover operations without storing "
                                  "player data (docs/deploy.md retention)."),
            ("AwsSolutions-CFR4", "The default *.cloudfront.net certificate fixes the viewer TLS policy; a studio "
                                  "domain with its own ACM certificate (TLSv1.2_2021) is a documented option, "
                                  "and the files are public game content either way."),
        ]:
            _ack(stack.lines_cdn, rule, reason)
    if stack.config.alb_access_logs:
        _ack(stack.node.find_child("AlbAccessLogs"), "AwsSolutions-S1",
             "This bucket is the ALB's access-log destination; logging access to it would log the logs.")
    else:
        _ack(stack.alb, "AwsSolutions-ELB2",
             "ALB access logs would store WebSocket clients' ?api_key= query strings (no ALB setting redacts "
             "them); the WAF log, with query string and Authorization redacted, is the request log "
             "(alb_access_logs=true turns them on).")
