"""checkov findings that don't apply, skipped on the resource concerned, each with its reason.

checkov reads `Metadata: checkov: skip: [{id, comment}]` from each CloudFormation
resource; tests/deploy runs checkov on the synthesised templates and fails on any
other finding, or on a skip without a reason.
"""

from __future__ import annotations

from aws_cdk import CfnResource

from voxhost_stack.nag import SDK_CALL_PROVIDER

LAMBDA_REASON = ("aws-cdk-lib's AwsCustomResource provider: runs only when CloudFormation deletes the stack "
                 "(the group's force-delete); CloudFormation reports its failure, it calls only the "
                 "Auto Scaling API, and a DLQ, VPC or reserved concurrency would add nothing but resources.")


def _skip(resource: CfnResource, *checks: tuple[str, str]) -> None:
    existing = resource.get_metadata("checkov") or {"skip": []}
    existing["skip"].extend({"id": check, "comment": comment} for check, comment in checks)
    resource.add_metadata("checkov", existing)


def skip(stack) -> None:
    _skip(stack.instance_role.node.find_child("DefaultPolicy").node.default_child,
          ("CKV_AWS_111", "The ECS agent's own actions CDK grants (ecs:Submit*, scoped to this cluster's "
                          "instances) and cloudwatch:PutMetricData, limited to the voxhost/gpu namespace by a "
                          "condition checkov does not read; neither has resource-level permissions."))
    if stack.config.ecs_exec:
        _skip(stack.node.find_child("TaskRole").node.find_child("DefaultPolicy").node.default_child,
              ("CKV_AWS_111", "ECS Exec (ecs_exec, off by default): the ssmmessages channel actions CDK grants "
                              "have no resource-level permissions; on only while an operator validates."))
    provider = stack.node.find_child(SDK_CALL_PROVIDER).node.default_child
    _skip(provider, *[(check, LAMBDA_REASON) for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117")])
    _skip(stack.alb.connections.security_groups[0].node.default_child,
          ("CKV_AWS_260", "Port 80 only answers with a 301 to HTTPS (the listener's only action); game clients "
                          "that start on http:// are redirected rather than refused."))
    if stack.config.alb_access_logs:
        _skip(stack.node.find_child("AlbAccessLogs").node.default_child,
              ("CKV_AWS_18", "This bucket is the ALB's access-log destination; logging access to it would log "
                             "the logs."),
              ("CKV_AWS_21", "Access logs are written once and expire after 90 days; versions would only keep "
                             "expired logs (and any api_key they hold) longer."))
    else:
        _skip(stack.alb.node.default_child,
              ("CKV_AWS_91", "ALB access logs would store WebSocket clients' ?api_key= query strings; the WAF "
                             "log, with query string and Authorization redacted, is the request log."))
