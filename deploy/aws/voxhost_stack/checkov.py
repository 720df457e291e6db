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
    _skip(stack.spot_drain.node.default_child,
          ("CKV_AWS_116", "EventBridge invokes it asynchronously with 2 retries and a 10-minute event age; a spot "
                          "notice older than its 2 minutes is moot, so a dead-letter queue would only keep stale "
                          "notices. Failures are in its log group and Lambda's Errors metric."),
          ("CKV_AWS_117", "It calls only the ECS and ELB APIs; in the VPC it would need NAT or two more interface "
                          "endpoints to reach them and gain no isolation (it reads no data and opens no port)."),
          ("CKV_AWS_173", "Its environment holds the cluster name, a port and target-group ARNs: identifiers, "
                          "not secrets; Lambda encrypts environment variables at rest with its own key anyway."))
    provider = stack.node.find_child(SDK_CALL_PROVIDER).node.default_child
    _skip(provider, *[(check, LAMBDA_REASON) for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117")])
    _skip(stack.alb.connections.security_groups[0].node.default_child,
          ("CKV_AWS_260", "Port 80 only answers with a 301 to HTTPS (the listener's only action); game clients "
                          "that start on http:// are redirected rather than refused."))
    if getattr(stack, "voices_sync", None) is not None:
        _skip(stack.voices_sync.node.default_child,
              ("CKV_AWS_116", "Runs every minute from a schedule with no retries: a failed run is simply the next "
                              "minute's run; a dead-letter queue would hold nothing worth replaying."),
              ("CKV_AWS_173", "Its environment holds a bucket name, a region and a path: identifiers, not secrets; "
                              "Lambda encrypts environment variables at rest with its own key anyway."))
        _skip(stack.node.find_child("VoicesSyncRole").node.find_child("DefaultPolicy").node.default_child,
              ("CKV_AWS_111", "The only unconstrained writes are a VPC function's own network interfaces "
                              "(ec2:CreateNetworkInterface/DeleteNetworkInterface...), which have no resource-level "
                              "permissions; its S3 writes are limited to the voices/ prefix of one bucket."))
        if getattr(stack, "voices_bucket", None) is not None:
            _skip(stack.voices_bucket.node.default_child,
                  ("CKV_AWS_18", "Written and read only by the regions' voices sync every minute; CloudTrail records "
                                 "the API calls, access logs would log the sync itself."))
    if stack.config.cdn:
        _skip(stack.lines_bucket.node.default_child,
              ("CKV_AWS_18", "Written only by `voxhost cache publish`, read only by CloudFront through origin access "
                             "control; CloudTrail records the writes, access logs would only log cache fills."),
              ("CKV_AWS_21", "Every published file is content-addressed (its name is its sha256) and never "
                             "overwritten; versions would only duplicate manifest.json, whose history is kept "
                             "under manifests/<sha256>.json."))
        _skip(stack.lines_cdn.node.default_child,
              ("CKV_AWS_68", "Serves only immutable, content-addressed audio and manifests by GET/HEAD: no input to "
                             "filter; the API's WAF stays on the ALB."),
              ("CKV_AWS_86", "Access logs would store every player's IP per fetched bark; CloudFront's metrics cover "
                             "operations without keeping player data (docs/deploy.md retention)."),
              ("CKV_AWS_174", "The default *.cloudfront.net certificate fixes the viewer TLS policy; a studio domain "
                              "with its own certificate (TLSv1.2_2021) is the documented option."))
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
