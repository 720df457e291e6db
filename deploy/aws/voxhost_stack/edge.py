"""The public edge: an HTTPS ALB in front of the tasks, and a WAF web ACL on it."""

from __future__ import annotations

from aws_cdk import ArnFormat, CfnParameter, Duration, Fn, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_wafv2 as wafv2

from voxhost_stack.config import StackConfig

# AWSManagedRulesCommonRuleSet's body-size rule blocks bodies over 8 KB; it
# adds this label when it matches (we count it, then block by label outside uploads).
SIZE_RULE = "SizeRestrictions_BODY"
NO_USER_AGENT_RULE = "NoUserAgent_HEADER"
SIZE_LABEL = "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"
# The dedicated layout's routing (ALB path patterns: at most 5 values per condition).
TTS_PATHS = ("/v1/audio/speech", "/v1/audio/speech/*", "/v1/audio/voices", "/v1/audio/voices/*")
STT_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations", "/v1/realtime", "/v1/realtime/*")


def add_edge(stack, cfg: StackConfig):
    alb_sg = ec2.SecurityGroup(stack, "AlbSg", vpc=stack.vpc, allow_all_outbound=False,
                               description="voxhost ALB: HTTPS (and HTTP, redirected) from the internet")
    alb_sg.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS")
    alb_sg.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(80), "HTTP, redirected to HTTPS")
    alb_sg.add_egress_rule(stack.task_sg, ec2.Port.tcp(cfg.container_port), "to voxhost tasks")
    stack.task_sg.add_ingress_rule(alb_sg, ec2.Port.tcp(cfg.container_port), "from the ALB only")

    alb = elbv2.ApplicationLoadBalancer(
        stack, "Alb", vpc=stack.vpc, internet_facing=True, security_group=alb_sg,
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
        # WebSockets: the ALB closes a connection after this long without a byte
        # either way. The server pings every 20 s, but a synchronous transcription
        # of a long upload sends nothing until it is done; 300 s covers a 1-hour
        # upload on a T4 with queueing, and idle clients that stop answering pings.
        idle_timeout=Duration.seconds(cfg.alb_idle_timeout_seconds),
        drop_invalid_header_fields=True,
    )
    if cfg.alb_access_logs:
        logs_bucket = s3.Bucket(
            stack, "AlbAccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,  # ALB logs can't use a CMK
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True, versioned=False,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
            removal_policy=RemovalPolicy.RETAIN, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED)
        alb.log_access_logs(logs_bucket, prefix="alb")

    target_group = _target_group(stack, cfg, "Targets", stack.service)
    if cfg.pools == "dedicated":
        stack.tts_target_group = _target_group(stack, cfg, "TtsTargets", stack.tts_service)

    cert_arn = cfg.certificate_arn or CfnParameter(
        stack, "CertificateArn", type="String", allowed_pattern=r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/.+",
        description="ACM certificate for the HTTPS listener (same region as the stack)").value_as_string
    certificate = acm.Certificate.from_certificate_arn(stack, "Certificate", cert_arn)
    https = alb.add_listener("Https", port=443, protocol=elbv2.ApplicationProtocol.HTTPS, certificates=[certificate],
                             ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS, open=False,
                             default_action=elbv2.ListenerAction.forward([target_group]))
    if cfg.pools == "dedicated":
        # Speech and designed voices to the TTS pool; transcriptions, translations and live
        # sessions to the STT pool, which is also the default (models, health, console, metrics).
        for priority, (name, group, paths) in enumerate([("Tts", stack.tts_target_group, TTS_PATHS),
                                                         ("Stt", target_group, STT_PATHS)], start=1):
            elbv2.ApplicationListenerRule(stack, f"{name}Routes", listener=https, priority=10 * priority,
                                          conditions=[elbv2.ListenerCondition.path_patterns(list(paths))],
                                          action=elbv2.ListenerAction.forward([group]))
    alb.add_listener("Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False,
                     default_action=elbv2.ListenerAction.redirect(protocol="HTTPS", port="443", permanent=True))

    web_acl = _web_acl(stack, cfg)
    wafv2.CfnWebACLAssociation(stack, "WafAlb", resource_arn=alb.load_balancer_arn,
                               web_acl_arn=web_acl.attr_arn)
    _waf_logging(stack, cfg, web_acl)
    return alb, target_group, web_acl


def _target_group(stack, cfg: StackConfig, construct_id: str, service) -> elbv2.ApplicationTargetGroup:
    target_group = elbv2.ApplicationTargetGroup(
        stack, construct_id, vpc=stack.vpc, port=cfg.container_port, protocol=elbv2.ApplicationProtocol.HTTP,
        target_type=elbv2.TargetType.IP,
        # First step of a task's stop, before SIGTERM: the ALB sends nothing new and
        # lets requests already sent finish (config.py: it plus stopTimeout fits the
        # spot notice). docs/deploy.md has the whole sequence.
        deregistration_delay=Duration.seconds(cfg.deregistration_delay_seconds),
        # Least outstanding requests, not round robin: the only load-aware ALB algorithm. Round
        # robin hands every task the same share of new sessions whatever it already holds, so one
        # task fills (and refuses with 1013) while others have room. AWS does not document whether
        # an upgraded WebSocket counts as outstanding, so the fleet also scales on sessions per seat
        # (scaling.py), keeping "full" rare. docs/deploy.md "Placing sessions".
        load_balancing_algorithm_type=elbv2.TargetGroupLoadBalancingAlgorithmType.LEAST_OUTSTANDING_REQUESTS,
        # Every 5 s, out after 2 failures: a dead or draining task (/ready 503) leaves the rotation in
        # ~10 s, not 30; with least outstanding requests a target that fails fast would otherwise draw
        # *more* new sessions.
        health_check=elbv2.HealthCheck(path="/ready", healthy_http_codes="200", interval=Duration.seconds(5),
                                       timeout=Duration.seconds(4), healthy_threshold_count=2,
                                       unhealthy_threshold_count=2),
    )
    service.attach_to_application_target_group(target_group)
    return target_group


def _waf_logging(stack, cfg: StackConfig, web_acl: wafv2.CfnWebACL) -> None:
    """The request log: every request WAF sees, with the query string (where a WebSocket
    client's `?api_key=` travels) and the Authorization header redacted."""
    # WAF requires the prefix. The name ends with this stack instance's id: the group is kept when
    # the stack goes (the request log outlives a teardown), so a fixed name would make the next
    # create of a stack with the same name (after a rollback or a teardown) fail with AlreadyExists.
    stack_uuid = Fn.select(2, Fn.split("/", stack.stack_id))
    name = f"aws-waf-logs-{stack.stack_name}-" + Fn.select(0, Fn.split("-", stack_uuid))
    group = logs.LogGroup(stack, "WafLogs", log_group_name=name, encryption_key=stack.key,
                          retention=stack._retention(cfg.log_retention_days), removal_policy=RemovalPolicy.RETAIN)
    field = wafv2.CfnLoggingConfiguration.FieldToMatchProperty
    stack.waf_logging = wafv2.CfnLoggingConfiguration(
        stack, "WafLogging", resource_arn=web_acl.attr_arn,
        # WAF wants the group's ARN without CloudWatch's trailing ":*".
        log_destination_configs=[stack.format_arn(service="logs", resource="log-group", resource_name=name,
                                                  arn_format=ArnFormat.COLON_RESOURCE_NAME)],
        redacted_fields=[field(query_string={}), field(single_header={"Name": "authorization"})])
    stack.waf_logging.node.add_dependency(group)


def _visibility(name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
    return wafv2.CfnWebACL.VisibilityConfigProperty(cloud_watch_metrics_enabled=True, metric_name=name,
                                                    sampled_requests_enabled=True)


def _managed(name: str, priority: int, overrides: list[str] = ()) -> wafv2.CfnWebACL.RuleProperty:
    return wafv2.CfnWebACL.RuleProperty(
        name=name, priority=priority, override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
        statement=wafv2.CfnWebACL.StatementProperty(managed_rule_group_statement=(
            wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                vendor_name="AWS", name=name,
                rule_action_overrides=[wafv2.CfnWebACL.RuleActionOverrideProperty(
                    name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={}))
                    for rule in overrides] or None))),
        visibility_config=_visibility(name))


def _web_acl(stack, cfg: StackConfig) -> wafv2.CfnWebACL:
    uploads = [wafv2.CfnWebACL.StatementProperty(byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
        field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}), positional_constraint="STARTS_WITH",
        search_string=path, text_transformations=[wafv2.CfnWebACL.TextTransformationProperty(
            priority=0, type="NONE")])) for path in cfg.body_size_exempt_paths]
    is_upload = uploads[0] if len(uploads) == 1 else wafv2.CfnWebACL.StatementProperty(
        or_statement=wafv2.CfnWebACL.OrStatementProperty(statements=uploads))
    rules = [
        wafv2.CfnWebACL.RuleProperty(
            name="RateLimitPerIp", priority=0, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(rate_based_statement=(
                wafv2.CfnWebACL.RateBasedStatementProperty(limit=cfg.waf_rate_limit_per_5min,
                                                           aggregate_key_type="IP"))),
            visibility_config=_visibility("RateLimitPerIp")),
        _managed("AWSManagedRulesAmazonIpReputationList", 1),
        _managed("AWSManagedRulesKnownBadInputsRuleSet", 2),
        # Audio uploads are multipart bodies up to 25 MB and TTS input can pass 8 KB:
        # the 8 KB body-size rule would block them. It only counts (and labels) here...
        _managed("AWSManagedRulesCommonRuleSet", 3, overrides=[
            SIZE_RULE, *([] if cfg.waf_block_missing_user_agent else [NO_USER_AGENT_RULE])]),
        # ...and this rule restores it everywhere except the exempt paths, whose
        # size the server itself caps (VOXHOST_MAX_UPLOAD_BYTES, VOXHOST_MAX_TEXT_CHARS).
        wafv2.CfnWebACL.RuleProperty(
            name="BodySizeOutsideUploads", priority=4, action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(and_statement=wafv2.CfnWebACL.AndStatementProperty(
                statements=[
                    wafv2.CfnWebACL.StatementProperty(label_match_statement=(
                        wafv2.CfnWebACL.LabelMatchStatementProperty(scope="LABEL", key=SIZE_LABEL))),
                    wafv2.CfnWebACL.StatementProperty(not_statement=wafv2.CfnWebACL.NotStatementProperty(
                        statement=is_upload)),
                ])),
            visibility_config=_visibility("BodySizeOutsideUploads")),
    ]
    return wafv2.CfnWebACL(stack, "WebAcl", scope="REGIONAL",
                           default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
                           visibility_config=_visibility("voxhost"), rules=rules)
