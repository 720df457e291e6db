"""The synthesised CloudFormation: what the design promises is really in the template."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from voxhost_stack.config import StackConfig


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
    assert rules == ["AwsSolutions-AS3", "AwsSolutions-EC23", "AwsSolutions-EC26", "AwsSolutions-ECS2",
                     "AwsSolutions-IAM5[Action::ecs:Submit*]", "AwsSolutions-IAM5[Resource::*]",
                     "AwsSolutions-IAM5[Resource::*]", "AwsSolutions-S1", "AwsSolutions-SMG4"]
    assert all(len(reason) > 60 for reason in acknowledged.values())
    # Acknowledged on the construct concerned, never stack-wide.
    assert all(path != "Voxhost" for path, _ in acknowledged)


def test_cfn_lint_clean(template_json):
    from cfnlint.api import lint

    matches = lint(json.dumps(template_json), regions=["us-east-1"])
    assert [f"{m.rule.id}: {m.message}" for m in matches] == []


def test_gpu_capacity_mixed_spot_on_demand(template_json, template):
    asg = _one(template_json, "AWS::AutoScaling::AutoScalingGroup")
    policy = asg["MixedInstancesPolicy"]
    assert policy["InstancesDistribution"] == {
        "OnDemandBaseCapacity": 1, "OnDemandPercentageAboveBaseCapacity": 50,
        "SpotAllocationStrategy": "price-capacity-optimized"}
    assert [o["InstanceType"] for o in policy["LaunchTemplate"]["Overrides"]] == ["g4dn.xlarge"]
    assert (asg["MinSize"], asg["MaxSize"]) == ("1", "10")
    lt = _one(template_json, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]
    assert lt["MetadataOptions"]["HttpTokens"] == "required"
    assert lt["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda",
                                          "Ebs": {"Encrypted": True, "VolumeSize": 50, "VolumeType": "gp3"}}]
    ami_param = lt["ImageId"]["Ref"]
    assert template_json["Parameters"][ami_param]["Default"] == \
        "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"
    user_data = json.dumps(lt["UserData"])
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in user_data and "nvidia_gpu" in user_data
    template.has_resource_properties("AWS::ECS::CapacityProvider", {"AutoScalingGroupProvider": {
        "ManagedScaling": {"Status": "ENABLED", "TargetCapacity": 100},
        "ManagedTerminationProtection": "ENABLED"}})


def test_task_definition(template_json):
    td = _one(template_json, "AWS::ECS::TaskDefinition")
    assert td["NetworkMode"] == "awsvpc" and td["RequiresCompatibilities"] == ["EC2"]
    (c,) = td["ContainerDefinitions"]
    assert c["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    assert (c["Cpu"], c["Memory"]) == (4096, 15 * 1024)
    cfg = StackConfig()
    assert c["StopTimeout"] == cfg.stop_timeout_seconds == 35 <= 120
    env = {e["Name"]: e["Value"] for e in c["Environment"]}
    assert env["VOXHOST_DRAIN_TIMEOUT_S"] == "30" and env["VOXHOST_EMF_ENABLED"] == "true"
    assert env["VOXHOST_STT_MODELS"] == "large-v3-turbo"
    assert env["VOXHOST_STT_DOWNLOAD_ROOT"] == "/mnt/efs/models"
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
    (statement,) = [s for p in task for s in p["PolicyDocument"]["Statement"]]
    assert sorted(statement["Action"]) == ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
    assert statement["Resource"] != "*"


def test_alb_https_websockets_and_readiness(template_json, template):
    lb = _one(template_json, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    attrs = {a["Key"]: a["Value"] for a in lb["LoadBalancerAttributes"]}
    assert attrs["idle_timeout.timeout_seconds"] == "300"
    assert attrs["routing.http.drop_invalid_header_fields.enabled"] == "true"
    assert attrs["access_logs.s3.enabled"] == "true"
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
    assert tg_attrs["deregistration_delay.timeout_seconds"] == "30"


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
    assert crs["RuleActionOverrides"] == [{"Name": "SizeRestrictions_BODY", "ActionToUse": {"Count": {}}}]
    size = rules["BodySizeOutsideUploads"]
    assert size["Action"] == {"Block": {}}
    assert size["Priority"] > rules["AWSManagedRulesCommonRuleSet"]["Priority"]  # label exists by then
    label, negated = size["Statement"]["AndStatement"]["Statements"]
    assert label["LabelMatchStatement"]["Key"] == "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"
    paths = json.dumps(negated["NotStatement"])
    assert "/v1/audio/transcriptions" in paths and "/v1/audio/translations" in paths
    assoc = _one(template_json, "AWS::WAFv2::WebACLAssociation")
    assert "Ref" in assoc["ResourceArn"]


def test_scaling_alarms_read_the_servers_emf_metric(template_json):
    alarms = {r["Properties"].get("AlarmDescription", ""): r["Properties"]
              for r in template_json["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"}
    high = next(a for d, a in alarms.items() if d.startswith("Queue depth per task >"))
    low = next(a for d, a in alarms.items() if d.startswith("Queue depth per task <"))
    for alarm in (high, low):
        assert (alarm["Namespace"], alarm["MetricName"], alarm["Statistic"], alarm["Period"]) == \
            ("voxhost", "QueueDepth", "Average", 60)
        assert alarm["Dimensions"] == [{"Name": "ServiceName", "Value": "voxhost"}]
    assert (high["Threshold"], high["ComparisonOperator"]) == (10, "GreaterThanThreshold")
    assert (low["Threshold"], low["ComparisonOperator"], low["EvaluationPeriods"]) == (2, "LessThanThreshold", 10)
    errors = next(a for d, a in alarms.items() if d.startswith("More than 5%"))
    assert errors["Threshold"] == 5
    expression = next(m["Expression"] for m in errors["Metrics"] if "Expression" in m)
    assert "errors / requests" in expression
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in errors["Metrics"] if "MetricStat" in m}
    assert names == {"ErrorCount", "Requests"}


def test_dashboard_widgets(template_json):
    body = json.dumps(_one(template_json, "AWS::CloudWatch::Dashboard")["DashboardBody"])
    for expected in ("nvidia_smi_utilization_gpu", "Latency", "p95", "QueueDepth", "ErrorCount", "CostUSD",
                     "cost / requests", "STT target", "TTS target", "2000", "3000"):
        assert expected in body, expected


def test_endpoints_instead_of_nat(tmp_path, synth_stack):
    _, variant = synth_stack(tmp_path, nag=False, egress="endpoints")
    kinds = [r["Type"] for r in variant["Resources"].values()]
    assert "AWS::EC2::NatGateway" not in kinds
    services = json.dumps([r["Properties"]["ServiceName"] for r in variant["Resources"].values()
                           if r["Type"] == "AWS::EC2::VPCEndpoint"])
    for service in ("ecr.api", "ecr.dkr", "logs", "secretsmanager", "ecs-agent", "ecs-telemetry", ".s3"):
        assert service in services, service


def test_config_from_context_parses_cli_strings():
    class Node:
        def __init__(self, values):
            self.values = values

        def try_get_context(self, key):
            return self.values.get(key)

    cfg = StackConfig.from_context(Node({"instance_types": "g4dn.xlarge,g5.xlarge", "max_tasks": "20",
                                         "egress": "endpoints", "scale_out_queue_per_task": "8"}))
    assert cfg.instance_types == ("g4dn.xlarge", "g5.xlarge") and cfg.max_tasks == 20
    assert cfg.egress == "endpoints" and cfg.scale_out_queue_per_task == 8
    with pytest.raises(ValueError):
        StackConfig(min_tasks=5, max_tasks=2)
