"""What a first deployment from an empty account hit, each checked on the synthesised template
(or the real files) so that it cannot come back."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from voxhost_stack.config import StackConfig

ROOT = Path(__file__).resolve().parents[2]


def _of(template_json, kind):
    return {k: r["Properties"] for k, r in template_json["Resources"].items() if r["Type"] == kind}


def _one(template_json, kind):
    (found,) = _of(template_json, kind).values()
    return found


def _env(template_json) -> dict:
    (c,) = [c for c in _one(template_json, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
            if c["Name"] == "voxhost"]
    return {e["Name"]: e["Value"] for e in c["Environment"]}


def test_waf_log_group_name_is_unique_per_stack_instance(template_json):
    """A fixed, retained `aws-waf-logs-Voxhost` made a rolled-back first create (or a redeploy after
    a teardown) fail with AlreadyExists."""
    (waf_logs,) = [(k, g) for k, g in _of(template_json, "AWS::Logs::LogGroup").items() if k.startswith("WafLogs")]
    name = waf_logs[1]["LogGroupName"]
    assert not isinstance(name, str)  # not a constant: it carries this stack instance's id
    assert "AWS::StackId" in json.dumps(name) and '"aws-waf-logs-Voxhost-"' in json.dumps(name)
    assert waf_logs[1]["RetentionInDays"] == StackConfig().log_retention_days
    destination = json.dumps(_one(template_json, "AWS::WAFv2::LoggingConfiguration")["LogDestinationConfigs"])
    assert "AWS::StackId" in destination and "aws-waf-logs-Voxhost-" in destination


def test_designed_voices_and_consents_live_on_efs(template_json):
    env = _env(template_json)
    (c,) = [c for c in _one(template_json, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
            if c["Name"] == "voxhost"]
    mounts = [m["ContainerPath"] for m in c["MountPoints"]]
    assert any(env["VOXHOST_VOICES_DIR"].startswith(m + "/") for m in mounts)
    from voxhost.ops.settings import Settings  # the setting the server reads (consents live beside voices)

    assert Settings(voices_dir=env["VOXHOST_VOICES_DIR"]).designs_dir == Path("/mnt/efs/voices")


def test_memory_limit_leaves_the_host_its_share(template_json):
    """15,360 MiB hard on a 16 GiB host left ~0.5 GiB for the OS, dockerd and the agents."""
    cfg = StackConfig()
    (c,) = [c for c in _one(template_json, "AWS::ECS::TaskDefinition")["ContainerDefinitions"]
            if c["Name"] == "voxhost"]
    lt = json.dumps(_one(template_json, "AWS::EC2::LaunchTemplate")["LaunchTemplateData"]["UserData"])
    reserved = int(re.search(r"ECS_RESERVED_MEMORY=(\d+)", lt)[1])
    assert reserved >= 1024
    for itype in cfg.instance_types:
        installed = {"g4dn.xlarge": 16, "g5.xlarge": 16, "g6.xlarge": 16}[itype] * 1024
        assert c["Memory"] <= installed * 0.975 - reserved  # AWS's own registration ratio, less the reserve
    from voxhost.planner.inputs import MemoryCost

    measured = MemoryCost()
    assert c["MemoryReservation"] * 2**20 >= measured.server_gb * measured.workers * 1e9  # the measured server
    assert c["MemoryReservation"] < c["Memory"]
    with pytest.raises(ValueError, match="must exceed"):
        StackConfig(task_memory_mib=2048)


def test_a_nat_gateway_per_az(template_json):
    """One NAT gateway for three AZs: an AZ outage cut every task off from ECR, logs and the hub."""
    nats = _of(template_json, "AWS::EC2::NatGateway")
    azs = [k for k in _of(template_json, "AWS::EC2::Subnet") if k.startswith("Vpctasks")]
    assert len(nats) == len(azs) >= 2  # without an account CDK plans 2 AZs; with one, max_azs (3)
    private_routes = [r for r in _of(template_json, "AWS::EC2::Route").values() if "NatGatewayId" in r]
    assert len({json.dumps(r["NatGatewayId"]) for r in private_routes}) == len(azs)  # each AZ its own


def test_task_egress_is_https_and_nfs_only(template_json):
    (task_sg_id,) = [k for k, g in _of(template_json, "AWS::EC2::SecurityGroup").items()
                     if g["GroupDescription"] == "voxhost tasks"]
    sg = _of(template_json, "AWS::EC2::SecurityGroup")[task_sg_id]
    inline = sg.get("SecurityGroupEgress", [])
    separate = [e for e in _of(template_json, "AWS::EC2::SecurityGroupEgress").values()
                if e["GroupId"] == {"Fn::GetAtt": [task_sg_id, "GroupId"]}]
    rules = inline + separate
    assert not [r for r in rules if r.get("IpProtocol") == "-1"]  # no "all traffic"
    assert sorted((r["FromPort"], r["ToPort"]) for r in rules) == [(443, 443), (2049, 2049)]
    nfs = next(r for r in rules if r["FromPort"] == 2049)
    assert "DestinationSecurityGroupId" in nfs  # to EFS only


def test_error_rate_and_5xx_alarms_roll_a_deployment_back(template_json):
    service = _one(template_json, "AWS::ECS::Service")
    config = service["DeploymentConfiguration"]
    assert config["DeploymentCircuitBreaker"] == {"Enable": True, "Rollback": True}
    assert config["Alarms"]["Enable"] is True and config["Alarms"]["Rollback"] is True
    names = {json.dumps(a.get("AlarmName")): a for a in _of(template_json, "AWS::CloudWatch::Alarm").values()}
    watched = [json.dumps(n) for n in config["Alarms"]["AlarmNames"]]
    for alarm in ("ErrorRateHigh", "AlbTarget5xx", "AlbElb5xx"):
        (name,) = [n for n in watched if alarm in n]
        assert name in names, alarm  # the service watches alarms the stack really creates
    error = names[next(n for n in watched if "ErrorRateHigh" in n)]
    assert error["Threshold"] == 5 and error["ComparisonOperator"] == "GreaterThanThreshold"


def test_two_tasks_in_two_azs_and_sessions_placed_by_load(template_json):
    service = _one(template_json, "AWS::ECS::Service")
    assert service["DesiredCount"] == 2
    (target,) = _of(template_json, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert target["MinCapacity"] == 2
    assert service["PlacementStrategies"][0] == {"Type": "spread", "Field": "attribute:ecs.availability-zone"}
    tg = _one(template_json, "AWS::ElasticLoadBalancingV2::TargetGroup")
    attrs = {a["Key"]: a["Value"] for a in tg["TargetGroupAttributes"]}
    assert attrs["load_balancing.algorithm.type"] == "least_outstanding_requests"


def test_gpu_extra_installs_cudnn_without_a_second_cublas():
    """`pip install .[gpu]` resolved onnxruntime-gpu[cudnn] -> nvidia-cudnn-cu12 -> nvidia-cublas-cu12 (and
    NVRTC): 1.1 GB the CUDA base image already has."""
    out = subprocess.run(["make", "-n", "install", "EXTRAS=piper,espeak,aws,gpu"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    pip = [line for line in out.splitlines() if "pip install" in line]
    assert any("-e '.[piper,espeak,aws]'" in line for line in pip)  # gpu never goes through the resolver
    (gpu,) = [line for line in pip if "onnxruntime-gpu" in line]
    assert "--no-deps" in gpu and "nvidia-cudnn-cu12" in gpu and "cublas" not in out and "nvrtc" not in out
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "onnxruntime-gpu[cudnn]" not in pyproject


def test_extras_default_agrees_between_dockerfile_and_docs():
    docker = re.search(r"^ARG EXTRAS=(\S+)", (ROOT / "deploy/docker/Dockerfile").read_text(), re.M)[1]
    docs = re.search(r"^\| `EXTRAS` \| `([^`]+)` \|", (ROOT / "docs/deploy.md").read_text(), re.M)[1]
    assert docker == docs == "piper,espeak,aws,gpu"
    comment = (ROOT / "deploy/docker/Dockerfile").read_text()
    assert "cuDNN layer is gone" not in comment and "no second" in comment


def test_environment_file_is_validated(tmp_path, monkeypatch):
    from voxhost_stack import environment

    monkeypatch.setattr(environment, "ENV_DIR", tmp_path)
    (tmp_path / "prod.json").write_text(json.dumps({"max_tasks": 4, "alarm_emial": "typo@studio.example"}))
    with pytest.raises(ValueError, match="alarm_emial"):
        environment.load_environment("prod")
    with pytest.raises(FileNotFoundError, match="prod"):
        environment.load_environment("staging")
    with pytest.raises(ValueError):
        environment.environment_file("../etc/passwd")


def test_alerting_on_the_design_targets_reaches_the_topic(template_json):
    alarms = {a["AlarmName"] if isinstance(a.get("AlarmName"), str) else json.dumps(a.get("AlarmName")): a
              for a in _of(template_json, "AWS::CloudWatch::Alarm").values()}
    (topic,) = _of(template_json, "AWS::SNS::Topic")

    def find(name):
        (alarm,) = [a for n, a in alarms.items() if name in n]
        assert alarm["AlarmActions"] == [{"Ref": topic}], name
        return alarm

    for name, route, target in [("SttLatencyP95", "/v1/audio/transcriptions", 2000),
                                ("TtsLatencyP95", "/v1/audio/speech", 3000)]:
        a = find(name)
        assert (a["ExtendedStatistic"], a["MetricName"], a["Threshold"]) == ("p95", "Latency", target)
        assert {"Name": "Route", "Value": route} in a["Dimensions"]
    refused = find("LiveSessionsRefused")
    assert refused["MetricName"] == "LiveSessionsRefused" and refused["Period"] == 300
    gpu = find("GpuBusy")
    assert (gpu["MetricName"], gpu["Threshold"], gpu["EvaluationPeriods"], gpu["Period"]) == \
        ("nvidia_smi_utilization_gpu", 90, 15, 60)
    assert find("ErrorRateHigh")["Threshold"] == 5
    # Every alarm but the scale-in ones (which act on scaling) notifies the topic.
    silent = [n for n, a in alarms.items() if {"Ref": topic} not in a.get("AlarmActions", [])]
    assert all("scaling" in json.dumps(alarms[n].get("AlarmActions")).lower() for n in silent)

