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
    execution_policy = stack.task_definition.obtain_execution_role().node.find_child("DefaultPolicy")
    _ack(execution_policy, "AwsSolutions-IAM5[Resource::*]",
         "ecr:GetAuthorizationToken has no resource-level permissions; image pulls, logs and the secret are "
         "scoped to their ARNs.")
    asg = stack.asg
    _ack(asg, "AwsSolutions-EC26",
         "The rule can't read EBS settings through a launch template; the template's only block device is "
         "gp3 with Encrypted: true (asserted in tests/deploy).")
    _ack(asg, "AwsSolutions-AS3",
         "ECS managed scaling owns this group's size; the service's own alarms (queue depth, errors, no healthy "
         "targets) notify the alarm topic, where ops act.")
    _ack(stack.api_keys, "AwsSolutions-SMG4",
         "The secret holds SHA-256 hashes of client API keys issued by operators; a rotation Lambda cannot "
         "re-issue keys to game clients. Rotation is an operator runbook step (docs/deploy.md).")
    _ack(stack.task_definition, "AwsSolutions-ECS2",
         "The environment holds non-secret configuration only (model ids, ports, metric names); the API keys "
         "come from Secrets Manager via `secrets`.")
    _ack(stack.alb.connections.security_groups[0], "AwsSolutions-EC23",
         "A public API for game clients: HTTPS (and HTTP, redirected) from anywhere is the point; WAF filters "
         "in front of it.")
    force_delete_policy = stack.force_delete.node.find_child("CustomResourcePolicy")
    # How cdk-nag spells the ARN: concrete region and account when the stack has them
    # (a real `cdk deploy` does), their pseudo parameters otherwise (CI).
    region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
    asg_id = stack.resolve(stack.get_logical_id(stack.asg.node.default_child))
    _ack(force_delete_policy, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:{region}:"
         f"{account}:autoScalingGroup/*:autoScalingGroupName/<{asg_id}>]",
         "The group's ARN carries a generated id unknown until creation; the name part pins it to this stack's "
         "GPU group, and the only action is DeleteAutoScalingGroup, run at stack deletion.")
    _ack(stack.node.find_child(SDK_CALL_PROVIDER).node.find_child("ServiceRole"),
         "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
         "CDK's AwsCustomResource provider (the teardown's force-delete) writes its own logs with the basic "
         "execution role; it holds no other permission.")
    _ack(stack.node.find_child("TaskRole").node.find_child("DefaultPolicy"), "AwsSolutions-IAM5[Resource::*]",
         "elasticloadbalancing:DescribeTargetHealth (the server drains when its own target starts draining) "
         "has no resource-level permissions and is read-only"
         + ("; ECS Exec (ecs_exec, off by default): the ssmmessages channel actions CDK grants have none "
            "either, on only while an operator validates a deployment." if stack.config.ecs_exec else "."))
    if stack.config.models_bucket:
        _ack(stack.node.find_child("TaskRole").node.find_child("DefaultPolicy"),
             f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{stack.config.models_bucket}/models/*]",
             "The models sync reads every object under the bucket's models/ prefix (model files are many and "
             "named by the hub); GetObject only, that prefix only.")
    for endpoint in stack.interface_endpoints:
        _ack(endpoint.connections.security_groups[0], "AwsSolutions-EC23",
             "CDK's interface-endpoint security group admits 443 from the VPC's own CIDR (an Fn::GetAtt the rule "
             "can't resolve), not from the internet.")
    if stack.config.alb_access_logs:
        _ack(stack.node.find_child("AlbAccessLogs"), "AwsSolutions-S1",
             "This bucket is the ALB's access-log destination; logging access to it would log the logs.")
    else:
        _ack(stack.alb, "AwsSolutions-ELB2",
             "ALB access logs would store WebSocket clients' ?api_key= query strings (no ALB setting redacts "
             "them); the WAF log, with query string and Authorization redacted, is the request log "
             "(alb_access_logs=true turns them on).")
