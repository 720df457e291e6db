"""The other layouts, synthesised once per session beside the default (conftest.LAYOUTS): dedicated
STT and TTS pools. Each is checked as the default is: cfn-lint, checkov (cdk-nag ran at synthesis),
and what makes it that layout."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_autoscaling_replay import first, read_scaling, replay, session_capacity  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _of(template, kind):
    return {k: r["Properties"] for k, r in template["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def dedicated(layouts):
    return layouts["VoxhostDedicated"][1]


def _containers(template):
    return {td_id: {c["Name"]: c for c in td["ContainerDefinitions"]}["voxhost"]
            for td_id, td in _of(template, "AWS::ECS::TaskDefinition").items()}


def test_alb_routes_speech_and_voices_to_tts_the_rest_to_stt(dedicated):
    groups = _of(dedicated, "AWS::ElasticLoadBalancingV2::TargetGroup")
    tts_tg = next(k for k in groups if k.startswith("TtsTargets"))
    stt_tg = next(k for k in groups if k.startswith("Targets"))
    rules = {}
    for rule in _of(dedicated, "AWS::ElasticLoadBalancingV2::ListenerRule").values():
        (condition,) = rule["Conditions"]
        (action,) = rule["Actions"]
        for path in condition["PathPatternConfig"]["Values"]:
            rules[path] = action["TargetGroupArn"]["Ref"]
    assert {p for p, tg in rules.items() if tg == tts_tg} == {"/v1/audio/speech", "/v1/audio/speech/*",
                                                              "/v1/audio/voices", "/v1/audio/voices/*"}
    assert {p for p, tg in rules.items() if tg == stt_tg} >= {"/v1/audio/transcriptions", "/v1/audio/translations",
                                                              "/v1/realtime"}
    (https,) = [li for li in _of(dedicated, "AWS::ElasticLoadBalancingV2::Listener").values() if li["Port"] == 443]
    assert https["DefaultActions"][0]["TargetGroupArn"] == {"Ref": stt_tg}  # models, health, console


def test_each_pool_runs_only_its_engines_on_its_instances(dedicated):
    containers = _containers(dedicated)
    stt = next(c for k, c in containers.items() if k.startswith("Task"))
    tts = next(c for k, c in containers.items() if k.startswith("TtsTask"))
    stt_env = {e["Name"]: e["Value"] for e in stt["Environment"]}
    tts_env = {e["Name"]: e["Value"] for e in tts["Environment"]}
    assert stt_env["VOXHOST_TTS_ENGINES"] == "" and stt_env["VOXHOST_STT_MODELS"] == "large-v3-turbo"
    assert tts_env["VOXHOST_STT_MODELS"] == "" and tts_env["VOXHOST_TTS_DEVICE"] == "cpu"
    assert (stt_env["VOXHOST_EMF_SERVICE_NAME"], tts_env["VOXHOST_EMF_SERVICE_NAME"]) == ("voxhost-stt", "voxhost-tts")
    assert stt["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}] and "ResourceRequirements" not in tts
    assert json.dumps(tts["Image"]).endswith('-cpu"]]}')  # the CPU image on CPU instances
    assert tts["Memory"] < stt["Memory"] and tts["Memory"] <= 8 * 1024 * 0.95 - 1024  # c7i/c6i.xlarge: 8 GiB
    assert tts_env["VOXHOST_VOICES_DIR"] == "/mnt/efs/voices"  # designed voices: the TTS pool's, on EFS
    groups = {k: g for k, g in _of(dedicated, "AWS::AutoScaling::AutoScalingGroup").items()}
    cpu = next(g for k, g in groups.items() if k.startswith("CpuAsg"))
    assert [o["InstanceType"] for o in cpu["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"]] == \
        ["c7i.xlarge", "c6i.xlarge"]
    services = _of(dedicated, "AWS::ECS::Service")
    assert len(services) == 2 and all(s["DeploymentConfiguration"]["Alarms"]["Rollback"] for s in services.values())


def test_each_pool_scales_on_its_own_signal(dedicated):
    stt, tts = read_scaling(dedicated, "stt"), read_scaling(dedicated, "tts")
    assert {m for m, _ in stt.metrics.values()} == {"LiveSessions", "LiveSessionsRefused", "LiveSessionCapacity",
                                                     "SttQueued", "SttInFlight", "DesiredTaskCount"}
    assert {m for m, _ in tts.metrics.values()} == {"TtsQueued", "TtsInFlight", "DesiredTaskCount"}
    targets = _of(dedicated, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(targets) == 2 and len({json.dumps(t["ResourceId"]) for t in targets.values()}) == 2
    # A TTS burst scales the TTS pool only; a room full of live players, the STT pool only.
    burst = replay(tts, work=[2] * 5 + [80] * 20)
    assert first(burst, "out") == 7 and first(replay(stt, work=[0] * 25), "out") is None
    c = session_capacity()
    players = replay(stt, players=[0.95 * stt.low * c] * 25)
    assert first(players, "out") == 2


def test_spot_rule_covers_both_pools(dedicated):
    (fn,) = [f for k, f in _of(dedicated, "AWS::Lambda::Function").items() if k.startswith("SpotDrain")]
    groups = json.dumps(fn["Environment"]["Variables"]["TARGET_GROUP_ARNS"])
    assert "TtsTargets" in groups and '"Targets' in groups


def test_cfn_lint_clean(dedicated):
    from cfnlint.api import lint

    matches = [m for m in lint(json.dumps(dedicated), regions=["us-east-1"])
               if not (m.rule.id == "W3005" and ("AWS679f53fac002430cb0da5b7982bd2287" in m.message
                                                 or "/Properties/Role" in m.message))]
    assert [f"{m.rule.id}: {m.message}" for m in matches] == []  # checkov: test_stack.test_checkov_clean

def test_reserved_base_stays_on_demand_and_running(dedicated):
    """reserved_base=3 (this layout): the first type on demand for 3 instances, the group's minimum,
    the STT service's floor; spot above it as before."""
    gpu = next(g for k, g in _of(dedicated, "AWS::AutoScaling::AutoScalingGroup").items() if k.startswith("GpuAsg"))
    dist = gpu["MixedInstancesPolicy"]["InstancesDistribution"]
    assert dist["OnDemandBaseCapacity"] == 3 and dist["OnDemandAllocationStrategy"] == "prioritized"
    assert gpu["MinSize"] == "3"
    assert gpu["MixedInstancesPolicy"]["LaunchTemplate"]["Overrides"][0]["InstanceType"] == "g4dn.xlarge"
    stt = read_scaling(dedicated, "stt")
    assert stt.low == 3
