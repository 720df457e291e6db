"""The spot rule: EventBridge pattern, the Lambda's least-privilege role, and the handler
itself against botocore's Stubber (the ECS and ELBv2 calls it makes, in order)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

HANDLER = Path(__file__).resolve().parents[2] / "deploy" / "aws" / "lambdas" / "spot_drain" / "handler.py"
CLUSTER = "voxhost-cluster"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vox/0123456789abcdef"
CI = "arn:aws:ecs:us-east-1:123456789012:container-instance/voxhost-cluster/abc"
TASK = "arn:aws:ecs:us-east-1:123456789012:task/voxhost-cluster/t1"
ENV = {"CLUSTER": CLUSTER, "CONTAINER_PORT": "8000", "TARGET_GROUP_ARNS": TG}


def _handler():
    spec = importlib.util.spec_from_file_location("spot_drain_handler", HANDLER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _event(kind: str, instance: str = "i-0abc") -> dict:
    return {"source": "aws.ec2", "detail-type": kind, "detail": {"instance-id": instance}}


def _clients():
    return (boto3.client("ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"),
            boto3.client("elbv2", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"))


def _instance_with_task(ecs_stub, ip="10.0.17.5"):
    ecs_stub.add_response("list_container_instances", {"containerInstanceArns": [CI]},
                          {"cluster": CLUSTER, "filter": "ec2InstanceId == i-0abc"})
    ecs_stub.add_response("list_tasks", {"taskArns": [TASK]}, {"cluster": CLUSTER, "containerInstance": CI})
    ecs_stub.add_response("describe_tasks", {"tasks": [{"taskArn": TASK, "attachments": [{
        "type": "ElasticNetworkInterface", "details": [
            {"name": "subnetId", "value": "subnet-1"}, {"name": "privateIPv4Address", "value": ip}]}]}]},
        {"cluster": CLUSTER, "tasks": [TASK]})


def test_interruption_deregisters_the_instances_targets_at_once_then_drains():
    h = _handler()
    ecs, elbv2 = _clients()
    with Stubber(ecs) as ecs_stub, Stubber(elbv2) as elb_stub:
        _instance_with_task(ecs_stub)
        elb_stub.add_response("deregister_targets", {}, {"TargetGroupArn": TG,
                                                          "Targets": [{"Id": "10.0.17.5", "Port": 8000}]})
        ecs_stub.add_response("update_container_instances_state", {"containerInstances": [], "failures": []},
                              {"cluster": CLUSTER, "containerInstances": [CI], "status": "DRAINING"})
        result = h.handler(_event(h.INTERRUPTION), ecs=ecs, elbv2=elbv2, environ=ENV)
        ecs_stub.assert_no_pending_responses()
        elb_stub.assert_no_pending_responses()
    assert result == {"action": "deregistered", "instance": "i-0abc", "targets": ["10.0.17.5"],
                      "target_groups": [TG]}


def test_rebalance_recommendation_drains_without_taking_seats_away():
    h = _handler()
    ecs, elbv2 = _clients()
    with Stubber(ecs) as ecs_stub, Stubber(elbv2) as elb_stub:
        _instance_with_task(ecs_stub)
        ecs_stub.add_response("update_container_instances_state", {"containerInstances": [], "failures": []},
                              {"cluster": CLUSTER, "containerInstances": [CI], "status": "DRAINING"})
        result = h.handler(_event(h.REBALANCE), ecs=ecs, elbv2=elbv2, environ=ENV)
        ecs_stub.assert_no_pending_responses()
        elb_stub.assert_no_pending_responses()  # no deregistration: ECS replaces first, then stops
    assert result["action"] == "draining"


def test_instances_of_other_clusters_and_other_events_are_ignored():
    h = _handler()
    ecs, elbv2 = _clients()
    with Stubber(ecs) as ecs_stub, Stubber(elbv2):
        ecs_stub.add_response("list_container_instances", {"containerInstanceArns": []},
                              {"cluster": CLUSTER, "filter": "ec2InstanceId == i-0abc"})
        assert h.handler(_event(h.INTERRUPTION), ecs=ecs, elbv2=elbv2, environ=ENV)["action"] == "not ours"
    assert h.handler({"detail-type": "EC2 Instance State-change Notification", "detail": {}},
                     ecs=ecs, elbv2=elbv2, environ=ENV)["action"] == "ignored"


# --- the template ---

def _of(template_json, kind):
    return {k: r for k, r in template_json["Resources"].items() if r["Type"] == kind}


def test_rule_matches_both_notices_and_targets_the_lambda(template_json):
    (rule,) = _of(template_json, "AWS::Events::Rule").values()
    pattern = rule["Properties"]["EventPattern"]
    assert pattern == {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning",
                                                             "EC2 Instance Rebalance Recommendation"]}
    (target,) = rule["Properties"]["Targets"]
    (fn_id,) = _of(template_json, "AWS::Lambda::Function").keys() - {
        k for k in _of(template_json, "AWS::Lambda::Function") if k.startswith("AWS679f53")}
    assert target["Arn"] == {"Fn::GetAtt": [fn_id, "Arn"]}
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == 600
    (permission,) = [p["Properties"] for p in _of(template_json, "AWS::Lambda::Permission").values()
                     if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [fn_id, "Arn"]}]
    assert permission["Principal"] == "events.amazonaws.com"
    assert permission["SourceArn"] == {"Fn::GetAtt": [next(iter(_of(template_json, "AWS::Events::Rule"))), "Arn"]}
    fn = template_json["Resources"][fn_id]["Properties"]
    env = fn["Environment"]["Variables"]
    assert env["CONTAINER_PORT"] == "8000" and env["CLUSTER"] == {"Ref": next(iter(_of(template_json,
                                                                                        "AWS::ECS::Cluster")))}


def test_lambda_role_is_least_privilege(template_json):
    policies = [r["Properties"] for k, r in _of(template_json, "AWS::IAM::Policy").items()
                if k.startswith("SpotDrainRole")]
    statements = [s for p in policies for s in p["PolicyDocument"]["Statement"]]
    actions = {a: s for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert set(actions) == {"ecs:ListContainerInstances", "ecs:ListTasks", "ecs:DescribeTasks",
                            "ecs:UpdateContainerInstancesState", "elasticloadbalancing:DeregisterTargets",
                            "logs:CreateLogStream", "logs:PutLogEvents"}
    assert all(s["Resource"] != "*" for s in statements)
    tg = next(iter(_of(template_json, "AWS::ElasticLoadBalancingV2::TargetGroup")))
    assert actions["elasticloadbalancing:DeregisterTargets"]["Resource"] == {"Ref": tg}
    for action in ("ecs:ListTasks", "ecs:DescribeTasks", "ecs:UpdateContainerInstancesState"):
        assert "ecs:cluster" in json.dumps(actions[action]["Condition"]), action
    assert not [p for p in _of(template_json, "AWS::IAM::Role").values()
                if "SpotDrain" in json.dumps(p) and "ManagedPolicyArns" in p["Properties"]]


@pytest.mark.parametrize("action", ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"])
def test_tasks_may_protect_only_themselves(template_json, action):
    task_policies = [r["Properties"] for k, r in _of(template_json, "AWS::IAM::Policy").items()
                     if k.startswith("TaskRole")]
    (statement,) = [s for p in task_policies for s in p["PolicyDocument"]["Statement"]
                    if action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])]
    assert ":task/" in json.dumps(statement["Resource"])
