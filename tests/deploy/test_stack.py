"""The synthesised CloudFormation: what the design promises is really in the template."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match
from voxhost_stack.config import StackConfig

FAKE_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000"


def _one(template_json: dict, kind: str, where=lambda props: True) -> dict:
    found = [r["Properties"] for r in template_json["Resources"].values()
             if r["Type"] == kind and where(r.get("Properties", {}))]
    assert len(found) == 1, f"{len(found)} {kind}"
    return found[0]


def test_cdk_nag_passes_and_can_fail(tmp_path):
    """The session synth ran AwsSolutionsChecks; prove the plugin really fails on a finding."""
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    bad = cdk.Stack(app, "Bad")
    sg = ec2.CfnSecurityGroup(bad, "Open", group_description="open", security_group_ingress=[
        ec2.CfnSecurityGroup.IngressProperty(ip_protocol="tcp", from_port=22, to_port=22, cidr_ip="0.0.0.0/0")])
    assert sg is not None
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(RuntimeError, match="AwsSolutions-EC23"):
        app.synth()


def test_every_nag_acknowledgement_has_a_reason(stack):
    acknowledged = {}
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == "aws:cdk:acknowledged-rules":
                for rule, reason in entry.data.items():
                    if rule.startswith("AwsSolutions::"):
                        acknowledged[(construct.node.path, rule)] = reason
    rules = sorted(rule.split("::", 1)[1] for _, rule in acknowledged)
    assert sorted(rule.split("[")[0] for rule in rules) == [
        "AwsSolutions-AS3", "AwsSolutions-EC23", "AwsSolutions-EC26", "AwsSolutions-ECS2",
        "AwsSolutions-ELB2",  # no ALB access logs: they would keep ?api_key= query strings
        "AwsSolutions-IAM4",  # the teardown's custom-resource Lambda (basic execution role)
        # instance role, execution role, teardown's group ARN, the task role's DescribeTargetHealth and its
        # own protection (this cluster's tasks), the spot Lambda's tasks and container instances
        *["AwsSolutions-IAM5"] * 8, "AwsSolutions-SMG4"]
    assert all(len(reason) > 60 for reason in acknowledged.values())
    # Acknowledged on the construct concerned, never stack-wide.
    assert all(path != "Voxhost" for path, _ in acknowledged)


def test_cfn_lint_clean(template_json):
    from cfnlint.api import lint

    matches = lint(json.dumps(template_json), regions=["us-east-1"])
    # aws-cdk-lib's own AwsCustomResource Lambda (the teardown) carries a redundant
    # DependsOn on its role: a warning about CDK's code, not ours.
    cdk_own = "Resources/AWS679f53fac002430cb0da5b7982bd2287"
    # aws-cdk-lib's lambda.Function likewise adds a DependsOn on its role (the spot Lambda).
    matches = [m for m in matches if not (m.rule.id == "W3005" and (cdk_own in m.message or (
        "Role" in m.message and "/Properties/Role" in m.message)))]
    assert [f"{m.rule.id}: {m.message}" for m in matches] == []


def test_gpu_capacity_mixed_spot_on_demand(template_json, template):
    asg = _one(template_json, "AWS::AutoScaling::AutoScalingGroup")
    policy = asg["MixedInstancesPolicy"]
    assert policy["InstancesDistribution"] == {
        "OnDemandBaseCapacity": 1, "OnDemandPercentageAboveBaseCapacity": 50,
        "OnDemandAllocationStrategy": "prioritized",  # the base on the first type (reserved capacity's)
        "SpotAllocationStrategy": "price-capacity-optimized"}
    # Mixed types against spot interruption: one GPU each, same vCPU and memory.
    assert [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]] == \
        ["g4dn.xlarge", "g5.xlarge", "g6.xlarge"]
    lt = _one(template_json, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert lt["MetadataOptions"]["HttpTokens"] == "required"
    assert lt["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda",
                                          "Ebs": {"Encrypted": True, "Throughput": 125, "VolumeSize": 50,
                                                  "VolumeType": "gp3"}}]
    ami_param = lt["ImageId"]["Ref"]
    # Amazon Linux 2 reached end of support on 2026-06-30.
    assert template_json["Parameters"][ami_param]["Default"] == \
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
    user_data = json.dumps(lt["UserData"])
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in user_data and "nvidia_gpu" in user_data
    # Tasks can't take the instance role's credentials from instance metadata.
    assert "ECS_AWSVPC_BLOCK_IMDS=true" in user_data
    template.has_resource_properties("AWS::ECS::CapacityProvider", {"AutoScalingGroupProvider": {
        "ManagedScaling": {"Status": "ENABLED", "TargetCapacity": 100},
        "ManagedTerminationProtection": "ENABLED"}})


def test_task_definition(template_json):
    td = _one(template_json, "AWS::ECS::TaskDefinition")
    assert td["NetworkMode"] == "awsvpc" and td["RequiresCompatibilities"] == ["EC2"]
    (c,) = td["ContainerDefinitions"]
    assert c["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    cfg0 = StackConfig()
    assert (c["Cpu"], c["Memory"], c["MemoryReservation"]) == \
        (4096, cfg0.memory_limit_mib(), cfg0.memory_reservation_mib())
    cfg = StackConfig()
    assert c["StopTimeout"] == cfg.stop_timeout_seconds == 35 <= 120
    assert c["Image"]["Fn::Join"][1][-1] == {"Ref": "ImageTag"}  # asked at deploy time, never "latest"
    assert "Default" not in template_json["Parameters"]["ImageTag"]
    env = {e["Name"]: e["Value"] for e in c["Environment"]}
    assert env["VOXHOST_DRAIN_TIMEOUT_S"] == "30" and env["VOXHOST_EMF_ENABLED"] == "true"
    assert env["VOXHOST_STT_MODELS"] == "large-v3-turbo"
    assert env["VOXHOST_STT_DOWNLOAD_ROOT"] == "/mnt/efs/models"
    assert env["VOXHOST_INSTANCE_TYPE"] == "auto"  # mixed types: priced from the GPU the task sees
    assert [s["Name"] for s in c["Secrets"]] == ["VOXHOST_API_KEYS"]
    assert c["LogConfiguration"]["LogDriver"] == "awslogs"
    assert c["MountPoints"] == [{"ContainerPath": "/mnt/efs", "ReadOnly": False, "SourceVolume": "models"}]
    (vol,) = td["Volumes"]
    efs = vol["EFSVolumeConfiguration"]
    assert efs["TransitEncryption"] == "ENABLED" and efs["AuthorizationConfig"]["IAM"] == "ENABLED"
    assert "AccessPointId" in efs["AuthorizationConfig"]


def test_drain_matches_the_server_setting():
    from voxhost.ops.settings import Settings

    # The serving area's VOXHOST_DRAIN_TIMEOUT_S; 30 s until its branch lands.
    server_drain = getattr(Settings(), "drain_timeout_s", 30.0)
    assert StackConfig().drain_seconds == server_drain
    with pytest.raises(ValueError, match="stopTimeout"):
        StackConfig(drain_seconds=118)


def test_encryption_at_rest(template_json):
    key = _one(template_json, "AWS::KMS::Key")
    assert key["EnableKeyRotation"] is True
    fs = _one(template_json, "AWS::EFS::FileSystem")
    assert fs["Encrypted"] is True and "KmsKeyId" in fs
    deny = fs["FileSystemPolicy"]["Statement"]
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in deny)
    ap = _one(template_json, "AWS::EFS::AccessPoint")
    assert ap["PosixUser"] == {"Gid": "10001", "Uid": "10001"}
    for lg in [r["Properties"] for r in template_json["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]:
        assert "KmsKeyId" in lg
    assert "KmsKeyId" in _one(template_json, "AWS::SecretsManager::Secret")
    assert "KmsMasterKeyId" in _one(template_json, "AWS::SNS::Topic")


def test_task_role_is_least_privilege(template_json):
    policies = [r["Properties"] for r in template_json["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    task = [p for p in policies if any("TaskRole" in ref.get("Ref", "") for ref in p["Roles"])]
    efs, protection, target_health = [s for p in task for s in p["PolicyDocument"]["Statement"]]
    # Its own scale-in protection, through the agent: this cluster's tasks only.
    assert sorted(protection["Action"]) == ["ecs:GetTaskProtection", "ecs:UpdateTaskProtection"]
    assert ":task/" in json.dumps(protection["Resource"]) and protection["Resource"] != "*"
    assert sorted(efs["Action"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert efs["Resource"] != "*"
    # The drain watcher reads its own target's health; the action has no resource-level permissions.
    assert target_health == {"Action": "elasticloadbalancing:DescribeTargetHealth", "Effect": "Allow",
                             "Resource": "*"}


def test_alb_https_websockets_and_readiness(template_json, template):
    lb = _one(template_json, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    attrs = {a["Key"]: a["Value"] for a in lb["LoadBalancerAttributes"]}
    assert attrs["idle_timeout.timeout_seconds"] == "300"
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    # No ALB access logs: they would keep WebSocket clients' ?api_key= (test_request_log_redacts_keys).
    assert "access_logs.s3.enabled" not in attrs
    assert lb["Scheme"] == "internet-facing"
    template.has_resource_properties("AWS::ElasticLoadBalancingV2::Listener", {
        "Port": 443, "Protocol": "HTTPS", "Certificates": [{"CertificateArn": Match.string_like_regexp("arn:aws:acm")}],
        "SslPolicy": Match.string_like_regexp("TLS13")})
    template.has_resource_properties("AWS::ElasticLoadBalancingV2::Listener", {
        "Port": 80, "DefaultActions": [{"Type": "redirect", "RedirectConfig": Match.object_like(
            {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"})}]})
    tg = _one(template_json, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert tg["HealthCheckPath"] == "/ready" and tg["TargetType"] == "ip" and tg["Port"] == 8000
    tg_attrs = {a["Key"]: a["Value"] for a in tg["TargetGroupAttributes"]}
    assert tg_attrs["deregistration_delay.timeout_seconds"] == "60"


def test_tasks_reachable_only_from_the_alb(template_json):
    ingress = [r["Properties"] for r in template_json["Resources"].values()
               if r["Type"] == "AWS::EC2::SecurityGroupIngress"]
    to_tasks = [i for i in ingress if i.get("FromPort") == 8000]
    assert len(to_tasks) == 1 and "SourceSecurityGroupId" in to_tasks[0]
    assert all("CidrIp" not in i for i in ingress)


def test_waf_keeps_audio_uploads_out_of_the_8kb_body_rule(template_json):
    acl = _one(template_json, "AWS::WAFv2::WebACL")
    rules = {r["Name"]: r for r in acl["Rules"]}
    assert {"AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
            "AWSManagedRulesAmazonIpReputationList", "RateLimitPerIp", "BodySizeOutsideUploads"} == set(rules)
    crs = rules["AWSManagedRulesCommonRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    # Game-engine HTTP clients often send no User-Agent: that rule only counts by default.
    assert crs["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}},
                                          {"Name": "NoUserAgent_HEADER", "ActionToUse": {"Count": {}}}]
    rate = rules["RateLimitPerIp"]["Statement"]["RateBasedStatement"]
    assert rate["Limit"] == StackConfig().waf_rate_limit_per_5min == 20_000  # a studio backend is one IP
    size = rules["BodySizeOutsideUploads"]
    assert size["Action"] == {"Block": {}}
    assert size["Priority"] > rules["AWSManagedRulesCommonRuleSet"]["Priority"]  # label exists by then
    label, negated = size["Statement"]["AndStatement"]["Statements"]
    assert label["LabelMatchStatement"]["Key"] == "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"
    paths = json.dumps(negated["NotStatement"])
    # TTS too: 4,096 Japanese characters are ~12 KB of JSON.
    for path in ("/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/speech"):
        assert path in paths, path
    assoc = _one(template_json, "AWS::WAFv2::WebACLAssociation")
    assert "Ref" in assoc["ResourceArn"]


def test_scaling_on_the_larger_of_sessions_and_work(template_json):
    """Target tracking on MAX(sessions per seat, work per task) in % of target, per *desired* task;
    scale-in only on the same expression staying low, so both must be low."""
    policies = [r["Properties"] for r in template_json["Resources"].values()
                if r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"]
    (tracking,) = [p["TargetTrackingScalingPolicyConfiguration"] for p in policies
                   if p["PolicyType"] == "TargetTrackingScaling"]
    assert tracking["TargetValue"] == 100 and tracking["DisableScaleIn"] is True
    assert tracking["ScaleOutCooldown"] == StackConfig().start_seconds  # the image + model start estimate
    queries = {q["Id"]: q for q in tracking["CustomizedMetricSpecification"]["Metrics"]}
    stats = {i: (q["MetricStat"]["Metric"]["MetricName"], q["MetricStat"]["Stat"]) for i, q in queries.items()
             if "MetricStat" in q}
    assert stats == {"live": ("LiveSessions", "Sum"), "refused": ("LiveSessionsRefused", "Sum"),
                     "seats": ("LiveSessionCapacity", "Maximum"), "workq": ("QueueDepth", "Sum"),
                     "workr": ("InFlight", "Sum"), "tasks": ("DesiredTaskCount", "Average")}
    assert queries["live"]["MetricStat"]["Metric"]["Dimensions"] == [{"Name": "ServiceName", "Value": "voxhost"}]
    assert queries["load"]["Expression"] == "MAX([sessions, work])" and queries["load"]["ReturnData"]
    assert "/ 0.7" in queries["sessions"]["Expression"]  # sessions held at 70% of the seats
    alarms = {r["Properties"].get("AlarmDescription", ""): r["Properties"]
              for r in template_json["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    low = next(a for d, a in alarms.items() if d.startswith("load (larger of sessions and work"))
    assert (low["Threshold"], low["ComparisonOperator"], low["EvaluationPeriods"]) == (40, "LessThanThreshold", 10)
    assert next(m for m in low["Metrics"] if m.get("ReturnData", True))["Expression"] == "MAX([sessions, work])"
    errors = next(a for d, a in alarms.items() if d.startswith("More than 5%"))
    assert errors["Threshold"] == 5
    expression = next(m["Expression"] for m in errors["Metrics"] if "Expression" in m)
    assert "errors / requests" in expression
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in errors["Metrics"] if "MetricStat" in m}
    assert names == {"ErrorCount", "Requests"}


def test_dashboard_widgets(template_json):
    body = json.dumps(_one(template_json, "AWS::CloudWatch::Dashboard")["DashboardBody"])
    for expected in ("nvidia_smi_utilization_gpu", "Latency", "p95", "LiveSessions", "ErrorCount", "CostUSD",
                     "cost / requests", "STT target", "TTS target", "2000", "3000"):
        assert expected in body, expected
    # STT and TTS latency apart, by the server's Route dimension.
    assert '\\"Route\\",\\"/v1/audio/transcriptions\\"' in body and '\\"Route\\",\\"/v1/audio/speech\\"' in body


def test_endpoints_instead_of_nat_with_models_from_s3(layouts, template_json):
    """No internet: every AWS call has an endpoint, and models reach EFS from S3 before the
    server starts, which then never asks a model hub (cdk-nag runs on this variant too)."""
    variant = layouts["VoxhostEndpoints"][1]
    kinds = [r["Type"] for r in variant["Resources"].values()]
    assert "AWS::EC2::NatGateway" not in kinds
    services = json.dumps([r["Properties"]["ServiceName"] for r in variant["Resources"].values()
                           if r["Type"] == "AWS::EC2::VPCEndpoint"])
    for service in ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "ecs-agent", "ecs-telemetry", ".s3",
                    "elasticloadbalancing",  # the drain watcher's DescribeTargetHealth
                    "ssmmessages"):  # ECS Exec (runbook step 10) works without internet too
        assert service in services, service
    assert _one(variant, "AWS::ECS::Service")["EnableExecuteCommand"] is True
    assert "EnableExecuteCommand" not in json.dumps(_one(template_json, "AWS::ECS::Service")) or \
        _one(template_json, "AWS::ECS::Service")["EnableExecuteCommand"] is False  # off by default
    (td,) = [r["Properties"] for r in variant["Resources"].values() if r["Type"] == "AWS::ECS::TaskDefinition"]
    containers = {c["Name"]: c for c in td["ContainerDefinitions"]}
    sync, server = containers["models-sync"], containers["voxhost"]
    assert sync["Essential"] is False and sync["User"] == "10001:10001"
    # A models version: its own directory, synced from its own prefix, checked against its manifest at start.
    assert sync["Command"][:4] == ["s3", "sync", "s3://studio-models/models/2026-12-06/",
                                   "/mnt/efs/models/2026-12-06"]
    assert "ecr" in json.dumps(sync["Image"])  # this account's ECR: public registries are out of reach
    assert server["DependsOn"] == [{"ContainerName": "models-sync", "Condition": "SUCCESS"}]
    env = {e["Name"]: e["Value"] for e in server["Environment"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["VOXHOST_STT_DOWNLOAD_ROOT"] == "/mnt/efs/models/2026-12-06"
    assert env["VOXHOST_MODELS_MANIFEST"] == "/mnt/efs/models/2026-12-06/manifest.json"
    task_policy = json.dumps([r["Properties"] for k, r in variant["Resources"].items()
                              if r["Type"] == "AWS::IAM::Policy" and k.startswith("TaskRole")])
    assert "s3:GetObject" in task_policy and "studio-models/models/*" in task_policy
    assert "s3:PutObject" not in task_policy and "s3:*" not in task_policy


def test_config_from_context_parses_cli_strings():
    class Node:
        def __init__(self, values):
            self.values = values

        def try_get_context(self, key):
            return self.values.get(key)

    cfg = StackConfig.from_context(Node({"instance_types": "g4dn.xlarge,g5.xlarge", "max_tasks": "20",
                                         "egress": "endpoints", "scale_out_work_per_task": "8"}))
    assert cfg.instance_types == ("g4dn.xlarge", "g5.xlarge") and cfg.max_tasks == 20
    assert cfg.egress == "endpoints" and cfg.scale_out_work_per_task == 8
    with pytest.raises(ValueError):
        StackConfig(min_tasks=5, max_tasks=2)


# --- issue 11: what a first real deployment hits ---

def _logical_id(template_json: dict, kind: str) -> str:
    (found,) = [k for k, r in template_json["Resources"].items() if r["Type"] == kind]
    return found


def test_service_is_created_after_the_capacity_provider_association(template_json):
    """Otherwise creation races the association and `cdk destroy` strands it (aws-cdk#14732)."""
    service = template_json["Resources"][_logical_id(template_json, "AWS::ECS::Service")]
    association = _logical_id(template_json, "AWS::ECS::ClusterCapacityProviderAssociations")
    assert association in service["DependsOn"]


def test_teardown_force_deletes_the_group_after_the_service(template_json):
    resources = template_json["Resources"]
    asg = _logical_id(template_json, "AWS::AutoScaling::AutoScalingGroup")
    (force_id,) = [k for k, r in resources.items() if r["Type"] == "Custom::AWS"
                   and "deleteAutoScalingGroup" in json.dumps(r["Properties"].get("Delete"))]
    force = resources[force_id]
    call = json.loads("".join(p if isinstance(p, str) else "<asg>"
                              for p in force["Properties"]["Delete"]["Fn::Join"][1]))
    assert call["parameters"] == {"AutoScalingGroupName": "<asg>", "ForceDelete": True}
    assert {"Ref": asg} in force["Properties"]["Delete"]["Fn::Join"][1]
    assert "Create" not in force["Properties"] and "Update" not in force["Properties"]  # teardown only
    # Deleted after the service (which depends on it), before the group (which it depends on).
    assert force_id in resources[_logical_id(template_json, "AWS::ECS::Service")]["DependsOn"]
    assert asg not in force.get("DependsOn", [])  # the Ref orders it already (cfn-lint W3005)


def test_group_starts_empty_with_headroom_for_deploys(template_json):
    asg = _one(template_json, "AWS::AutoScaling::AutoScalingGroup")
    (target,) = [r["Properties"] for r in template_json["Resources"].values()
                 if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"]
    cfg = StackConfig()
    # Empty at creation: managed scaling adds instances for the tasks it places.
    assert asg["MinSize"] == "0" and "DesiredCapacity" not in asg
    # A 100/200% deploy (or a spot replacement) at max_tasks needs twice the GPUs.
    assert target["MaxCapacity"] == cfg.max_tasks == 10
    assert asg["MaxSize"] == str(2 * cfg.max_tasks)
    assert StackConfig(max_tasks=7, instance_headroom=1.5).max_instances == 10
    with pytest.raises(ValueError, match="instance_headroom"):
        StackConfig(instance_headroom=0.5)


def test_server_keepalive_outlives_the_alb_idle_timeout(template_json):
    """A server closing an idle connection the ALB is about to reuse is the classic 502."""
    lb = _one(template_json, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    idle = int({a["Key"]: a["Value"] for a in lb["LoadBalancerAttributes"]}["idle_timeout.timeout_seconds"])
    (c,) = _one(template_json, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in c["Environment"]}
    assert int(env["VOXHOST_KEEPALIVE_TIMEOUT_S"]) > idle == 300


def test_alarms_on_the_albs_own_5xx(template_json):
    alarms = [r["Properties"] for r in template_json["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    topic = _logical_id(template_json, "AWS::SNS::Topic")
    for metric in ("HTTPCode_ELB_5XX_Count", "HTTPCode_Target_5XX_Count"):
        (alarm,) = [a for a in alarms if a.get("MetricName") == metric]
        assert alarm["Namespace"] == "AWS/ApplicationELB" and alarm["Statistic"] == "Sum"
        assert alarm["AlarmActions"] == [{"Ref": topic}]


def test_stop_sequence_fits_the_spot_notice(template_json):
    """ECS stops a task in sequence: deregistration delay, SIGTERM, drain, SIGKILL at stopTimeout.
    The server drains early, on its target's `draining` state: within one poll of the
    deregistration, and done (live sessions closed) before the ALB cuts connections."""
    tg = _one(template_json, "AWS::ElasticLoadBalancingV2::TargetGroup")
    delay = int({a["Key"]: a["Value"] for a in tg["TargetGroupAttributes"]}["deregistration_delay.timeout_seconds"])
    (c,) = _one(template_json, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in c["Environment"]}
    drain = float(env["VOXHOST_DRAIN_TIMEOUT_S"])
    poll = float(env["VOXHOST_DRAIN_POLL_INTERVAL_S"])
    assert drain < c["StopTimeout"]  # the server's drain ends before SIGKILL
    assert poll + drain + 5 <= delay  # noticed and drained while the ALB still holds the live sessions
    assert delay + c["StopTimeout"] <= 120 - 10  # inside the 2-minute notice, less its delivery
    with pytest.raises(ValueError, match="spot notice"):
        StackConfig(deregistration_delay_seconds=90)
    with pytest.raises(ValueError, match="live sessions must close"):
        StackConfig(deregistration_delay_seconds=39)


def test_container_watches_its_own_target_group(template_json):
    (c,) = _one(template_json, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    env = {e["Name"]: e["Value"] for e in c["Environment"]}
    assert env["VOXHOST_DRAIN_TARGET_GROUP_ARN"] == {"Ref": _logical_id(template_json, "AWS::ElasticLoadBalancingV2::TargetGroup")}
    assert env["VOXHOST_DRAIN_POLL_INTERVAL_S"] == "5"


def test_outputs_for_the_runbook(template_json):
    outputs = template_json["Outputs"]
    for name in ("AlbDnsName", "ApiKeysSecretArn", "ClusterName", "ServiceName", "DashboardUrl",
                 "ModelsFileSystemId"):
        assert name in outputs, name
    assert "#dashboards:name=" in json.dumps(outputs["DashboardUrl"])


def test_gpu_widget_can_resolve_its_group_dimension(template_json):
    policies = [r["Properties"] for k, r in template_json["Resources"].items()
                if r["Type"] == "AWS::IAM::Policy" and k.startswith("InstanceRole")]
    actions = {a for p in policies for s in p["PolicyDocument"]["Statement"]
               for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert "ec2:DescribeTags" in actions


def test_s3_gateway_endpoint_and_kms_alias_follow_the_stack(template_json):
    endpoints = [r["Properties"] for r in template_json["Resources"].values()
                 if r["Type"] == "AWS::EC2::VPCEndpoint"]
    assert any(".s3" in json.dumps(e["ServiceName"]) and e.get("VpcEndpointType", "Gateway") == "Gateway"
               for e in endpoints)  # image layers skip the NAT gateway's per-GB charge
    assert _one(template_json, "AWS::KMS::Alias")["AliasName"] == "alias/Voxhost"


def test_monthly_budget_alerts_the_alarm_topic(template_json):
    budget = _one(template_json, "AWS::Budgets::Budget")
    assert budget["Budget"]["BudgetLimit"] == {"Amount": 1000, "Unit": "USD"}
    kinds = {n["Notification"]["NotificationType"] for n in budget["NotificationsWithSubscribers"]}
    assert kinds == {"ACTUAL", "FORECASTED"}
    assert all(s["SubscriptionType"] == "SNS" for n in budget["NotificationsWithSubscribers"]
               for s in n["Subscribers"])


def test_request_log_redacts_keys(template_json):
    """The WAF log is the request log: query string (`?api_key=`) and Authorization redacted."""
    config = _one(template_json, "AWS::WAFv2::LoggingConfiguration")
    assert {"QueryString": {}} in config["RedactedFields"]
    assert {"SingleHeader": {"Name": "authorization"}} in config["RedactedFields"]
    destination = json.dumps(config["LogDestinationConfigs"])
    assert "log-group:aws-waf-logs-Voxhost" in destination and not destination.endswith(':*"]')
    assert not [r for r in template_json["Resources"].values() if r["Type"] == "AWS::S3::Bucket"]


@pytest.mark.parametrize("layout", ["Voxhost", "VoxhostEndpoints", "VoxhostDedicated", "VoxhostGlobal-us-east-1",
                                    "VoxhostGlobal-eu-west-1"])
def test_checkov_clean(checkov_report, layout):
    """checkov on every synthesised layout: no finding but those skipped, each with a reason."""
    failed, skipped = checkov_report[layout]
    assert [f"{c['check_id']} {c['resource']}" for c in failed] == []
    assert skipped and all(len(c["check_result"].get("suppress_comment", "")) > 60 for c in skipped)


def test_runbook_synth_runs_app_py_as_the_cdk_cli_does(tmp_path):
    """Runbook step 7 offline: `make deploy-synth` -> the CDK CLI runs cdk.json's `app` with
    the context in CDK_CONTEXT_JSON and writes to CDK_OUTDIR. cdk.json's command is the
    Makefile's venv, so it works from a fresh clone after `make install`."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cdk = json.loads((root / "deploy/aws/cdk.json").read_text())
    venv = re.search(r"^VENV \?= (\S+)", (root / "Makefile").read_text(), re.M)[1]
    assert cdk["app"] == f"../../{venv}/bin/python app.py"
    # The environment file (deploy/aws/env/example.json) carries the settings; -c still overrides one.
    context = {**cdk["context"], "env": "example", "image_tag": "v1.2.3"}
    # With an account, the CLI looks the region's AZs up into cdk.context.json; given here.
    context["availability-zones:account=123456789012:region=us-east-1"] = ["us-east-1a", "us-east-1b", "us-east-1c"]
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(tmp_path),
           "CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(root / "src")}
    result = subprocess.run([sys.executable, "app.py"], cwd=root / "deploy/aws", env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    env = json.loads((root / "deploy/aws/env/example.json").read_text())
    template = json.loads((tmp_path / f"{env['stack_name']}.template.json").read_text())
    (target,) = [r["Properties"] for r in template["Resources"].values()
                 if r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget"]
    assert target["MaxCapacity"] == env["max_tasks"] == 3  # the plan's max_tasks reaches the stack
    # A redeploy with nothing but the environment keeps the alarm email and the budget.
    (subscription,) = [r["Properties"] for r in template["Resources"].values()
                       if r["Type"] == "AWS::SNS::Subscription"]
    assert subscription == {**subscription, "Protocol": "email", "Endpoint": env["alarm_email"]}
    (budget,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::Budgets::Budget"]
    assert budget["Budget"]["BudgetLimit"]["Amount"] == env["budget_usd_per_month"] == 1500
    assert json.dumps([r for r in template["Resources"].values() if r["Type"] == "AWS::ACM::Certificate"]) == "[]"
    assert env["certificate_arn"] in json.dumps(template)
    (c,) = _one(template, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    assert json.dumps(c["Image"]).endswith(':v1.2.3"]]}')
    # Three AZs for the GPU group: more spot pools for the mixed types.
    asg = _one(template, "AWS::AutoScaling::AutoScalingGroup")
    assert len(asg["VPCZoneIdentifier"]) == 3
