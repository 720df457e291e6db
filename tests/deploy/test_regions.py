"""Two regions from one app (conftest.LAYOUTS "VoxhostGlobal", built by app.py's add_stacks):
a whole stack per region, latency records with health checks, API keys replicated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGIONS = ("us-east-1", "eu-west-1")


def _of(template, kind):
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def regional(layouts):
    return {r: layouts[f"VoxhostGlobal-{r}"] for r in REGIONS}


def test_each_region_is_a_whole_stack(regional):
    for region, (stack, template) in regional.items():
        assert stack.region == region
        for kind in ("AWS::EC2::VPC", "AWS::ElasticLoadBalancingV2::LoadBalancer", "AWS::ECS::Cluster",
                     "AWS::ECS::Service", "AWS::EFS::FileSystem", "AWS::WAFv2::WebACL", "AWS::SNS::Topic"):
            assert len(_of(template, kind)) == 1, (region, kind)
    primary, replica = regional["us-east-1"][0], regional["eu-west-1"][0]
    assert primary in [d for d in replica.dependencies]  # the primary deploys first


def test_latency_records_with_health_checks_per_region(regional):
    for region, (_, template) in regional.items():
        (record,) = _of(template, "AWS::Route53::RecordSet").values()
        (check_id, check), = _of(template, "AWS::Route53::HealthCheck").items()
        (alb_id,) = _of(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
        assert (record["Name"], record["Type"], record["SetIdentifier"], record["Region"]) == \
            ("voice.studio.example", "A", region, region)
        assert record["HealthCheckId"] == {"Fn::GetAtt": [check_id, "HealthCheckId"]}
        assert record["AliasTarget"]["EvaluateTargetHealth"] is True
        assert record["AliasTarget"]["DNSName"] == {"Fn::GetAtt": [alb_id, "DNSName"]}
        config = check["HealthCheckConfig"]
        assert (config["Type"], config["ResourcePath"], config["Port"]) == ("HTTPS", "/ready", 443)
        assert config["FullyQualifiedDomainName"] == {"Fn::GetAtt": [alb_id, "DNSName"]}


def test_api_keys_are_replicated_from_the_primary(regional):
    (secret,) = _of(regional["us-east-1"][1], "AWS::SecretsManager::Secret").values()
    assert secret["Name"] == "VoxhostGlobal/api-keys"
    assert secret["ReplicaRegions"] == [{"Region": "eu-west-1"}]
    assert not _of(regional["eu-west-1"][1], "AWS::SecretsManager::Secret")  # the replica, read by name
    (td,) = _of(regional["eu-west-1"][1], "AWS::ECS::TaskDefinition").values()
    (c,) = [c for c in td["ContainerDefinitions"] if c["Name"] == "voxhost"]
    arn = json.dumps(c["Secrets"][0]["ValueFrom"])
    assert "secret:VoxhostGlobal/api-keys" in arn and "eu-west-1" in arn


def test_cfn_lint_clean_in_every_region(regional):
    from cfnlint.api import lint

    for region, (_, template) in regional.items():
        matches = [m for m in lint(json.dumps(template), regions=[region])
                   if not (m.rule.id == "W3005" and ("AWS679f53fac002430cb0da5b7982bd2287" in m.message
                                                     or "/Properties/Role" in m.message))]
        assert [f"{m.rule.id}: {m.message}" for m in matches] == [], region  # checkov: test_stack

def test_cdn_private_bucket_behind_cloudfront_origin_access_control(regional, template_json):
    assert not _of(template_json, "AWS::CloudFront::Distribution")  # off by default
    _, template = regional["us-east-1"]
    (bucket_id, bucket), = [(k, b) for k, b in _of(template, "AWS::S3::Bucket").items() if k.startswith("Lines")]
    assert bucket["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                        "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    (oac_id, oac), = _of(template, "AWS::CloudFront::OriginAccessControl").items()
    assert oac["OriginAccessControlConfig"]["OriginAccessControlOriginType"] == "s3"
    assert oac["OriginAccessControlConfig"]["SigningBehavior"] == "always"
    (dist_id, dist), = _of(template, "AWS::CloudFront::Distribution").items()
    (origin,) = dist["DistributionConfig"]["Origins"]
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": [oac_id, "Id"]}
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}  # OAC, not the legacy OAI
    behavior = dist["DistributionConfig"]["DefaultCacheBehavior"]
    assert behavior["ViewerProtocolPolicy"] == "https-only" and behavior["AllowedMethods"] == ["GET", "HEAD"]
    (policy,) = [p for p in _of(template, "AWS::S3::BucketPolicy").values() if p["Bucket"] == {"Ref": bucket_id}]
    (read,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert read["Principal"] == {"Service": "cloudfront.amazonaws.com"} and read["Action"] == "s3:GetObject"
    assert dist_id in json.dumps(read["Condition"]["StringEquals"]["AWS:SourceArn"])
    outputs = regional["us-east-1"][1]["Outputs"]
    assert {"LinesBucketName", "LinesCdnDomain"} <= set(outputs)


def test_designed_voices_sync_through_the_primarys_bucket_every_minute(regional):
    (bucket_id, bucket), = [(k, b) for k, b in _of(regional["us-east-1"][1], "AWS::S3::Bucket").items()
                            if k.startswith("Voices")]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert not [k for k in _of(regional["eu-west-1"][1], "AWS::S3::Bucket") if k.startswith("Voices")]
    names = set()
    for _, template in regional.values():
        (fn,) = [f for k, f in _of(template, "AWS::Lambda::Function").items() if k.startswith("VoicesSync")]
        env = fn["Environment"]["Variables"]
        assert env["BUCKET_REGION"] == "us-east-1" and env["VOICES_DIR"] == "/mnt/efs/voices"
        names.add(json.dumps(env["BUCKET"]))
        (ap,) = _of(template, "AWS::EFS::AccessPoint")
        assert fn["FileSystemConfigs"][0]["LocalMountPath"] == "/mnt/efs"
        assert ap in json.dumps(fn["FileSystemConfigs"][0]["Arn"])  # the tasks' access point (uid 10001)
        assert fn["ReservedConcurrentExecutions"] == 1 and "VpcConfig" in fn
        (rule,) = [r for k, r in _of(template, "AWS::Events::Rule").items() if k.startswith("VoicesSync")]
        assert rule["ScheduleExpression"] == "rate(1 minute)"
        policy = json.dumps([p for k, p in _of(template, "AWS::IAM::Policy").items() if k.startswith("VoicesSync")])
        assert "voices/*" in policy and '"s3:*"' not in policy
    assert len(names) == 1  # every region syncs with the same bucket
    assert "voices-" in next(iter(names)) and json.dumps(bucket["BucketName"]) in names
