"""Planner arithmetic, checked against hand-worked figures."""

from __future__ import annotations

import pytest

from voxhost.ops.cost import CLOUD_PRICES, INSTANCE_PRICES_PER_HOUR, blended_hourly
from voxhost.planner.inputs import PlanInputs, Throughput, load_inputs
from voxhost.planner.model import SECONDS_PER_MONTH, capacity, check_claims, cloud_cost, plan, tier

EXAMPLE = "deploy/plan.example.yaml"


def test_example_file_is_the_defaults(repo_root):
    assert load_inputs(repo_root / EXAMPLE) == PlanInputs()


def test_cloud_api_column_reproduced_exactly():
    # 1,500 min x $0.006 = $9.00 and 850k chars x $15/1M = $12.75 per player.
    got = {t.players: (t.cloud_stt, t.cloud_tts, t.cloud) for t in plan(PlanInputs())}
    assert got == {
        50: (450.0, 637.5, 1087.5),
        500: (4500.0, 6375.0, 10875.0),
        5000: (45000.0, 63750.0, 108750.0),
    }


def test_cloud_prices_come_from_the_cost_model():
    inputs = PlanInputs()
    assert inputs.cloud.stt_per_minute == CLOUD_PRICES["whisper-1_per_minute"]
    assert inputs.fleet.hourly == INSTANCE_PRICES_PER_HOUR["g4dn.xlarge"]
    hd = inputs.model_copy(update={"cloud": inputs.cloud.model_copy(update={"tts_model": "tts-1-hd"})})
    assert cloud_cost(hd, 50) == (450.0, 1275.0)


def _hand_inputs(utilisation: float) -> PlanInputs:
    # 100 players x 438 min x 60 s = 2,628,000 s = one month: 1 audio-s/s on average.
    # 100 x 394,200 chars / 15 chars/s = 2,628,000 s of synthesis: 1 audio-s/s too.
    return PlanInputs.model_validate({
        "players": [100],
        "usage": {"stt_minutes_per_player": 438, "tts_chars_per_player": 394_200, "peak_to_average": 4,
                  "speech_share": 0.5, "chars_per_audio_second": 15},
        "fleet": {"target_utilisation": utilisation, "min_gpus": 1},
        "stt_model": "m-stt", "tts_model": "m-tts",
        "throughput": [
            {"model": "m-stt", "kind": "stt", "gpu": "T4", "rtf": 0.1, "source": "hand"},
            {"model": "m-tts", "kind": "tts", "gpu": "T4", "rtf": 0.25, "source": "hand"},
        ],
    })


def test_capacity_hand_checked():
    assert 100 * 438 * 60 == SECONDS_PER_MONTH
    cap = capacity(_hand_inputs(0.6), 100)
    # STT: 1 audio-s/s x 50% speech x 4 peak / 10 streams = 0.2 GPU; TTS: 1 x 4 / 4 streams = 1.0 GPU.
    assert cap.stt_gpu_load_peak == pytest.approx(0.2)
    assert cap.tts_gpu_load_peak == pytest.approx(1.0)
    assert cap.gpus_peak == 2  # 1.2 / 0.6 = 2.0 exactly: float noise must not buy a third GPU
    assert cap.gpus_average == 1  # 0.3 / 0.6 = 0.5 -> 1
    assert capacity(_hand_inputs(0.5), 100).gpus_peak == 3  # 2.4 -> 3


def test_capacity_scales_with_load_not_with_the_design_claims():
    inputs = PlanInputs()
    small, large = capacity(inputs, 50), capacity(inputs, 5000)
    assert large.gpu_load_peak == pytest.approx(100 * small.gpu_load_peak)
    # Published T4 figures: turbo RTF 0.064/2.7, XTTS-v2 RTF 0.25 (4 streams).
    assert small.stt_gpu_load_peak == pytest.approx(50 * 1500 * 60 * 0.5 / SECONDS_PER_MONTH * 3 * (0.064 / 2.7),
                                                    rel=1e-3)
    assert small.tts_gpu_load_peak == pytest.approx(50 * 850_000 / 15 / SECONDS_PER_MONTH * 3 / 4)
    assert (small.gpus_peak, large.gpus_peak) == (2, 125)


def test_measured_throughput_wins_over_published():
    inputs = PlanInputs.model_validate({"throughput": [
        {"model": "large-v3-turbo", "kind": "stt", "gpu": "t4", "rtf": 0.5, "streams": 3, "source": "measured"}]})
    row = inputs.throughput_for("stt", "large-v3-turbo")
    assert (row.source, row.capacity) == ("measured", 3)
    assert Throughput(model="x", kind="tts", gpu="T4", rtf=0.25, source="s").capacity == 4


def test_unknown_gpu_is_a_clear_error():
    inputs = PlanInputs.model_validate({"fleet": {"instance_type": "g5.xlarge"}})
    with pytest.raises(ValueError, match="no stt throughput for large-v3-turbo on A10G"):
        capacity(inputs, 50)


def test_self_hosted_cost_and_break_even_by_hand():
    inputs = PlanInputs.model_validate({"one_time_usd": {50: 1000, 500: 1, 5000: 1}})
    t = tier(inputs, 50)
    assert t.self_hosted.lines["GPU instances"] == pytest.approx(2 * 730 * 0.526)
    assert t.self_hosted.spot_mix == pytest.approx(t.self_hosted.on_demand - 2 * 730 * 0.526 * 0.5 * 0.6)
    saved = 1087.5 - t.self_hosted.on_demand
    assert t.break_even_months(t.self_hosted.on_demand) == pytest.approx(1000 / saved)
    assert t.tco_self(t.self_hosted.on_demand) == pytest.approx(1000 + 36 * t.self_hosted.on_demand)
    tiny = tier(PlanInputs(), 5)  # 5 players: a whole GPU costs more than the cloud bill
    assert tiny.break_even_months(tiny.self_hosted.on_demand) is None


def test_blended_hourly():
    assert blended_hourly(1.0, spot_share=0.5, spot_discount=0.6) == pytest.approx(0.7)
    assert blended_hourly(1.0, reserved_share=1.0, reserved_discount=0.37) == pytest.approx(0.63)
    with pytest.raises(ValueError):
        blended_hourly(1.0, spot_share=0.8, reserved_share=0.5)


def test_design_claims_checked():
    checks = {c.players: c for c in check_claims(PlanInputs())}
    assert {n: c.claimed_gpus for n, c in checks.items()} == {50: 1, 500: 3, 5000: 10}
    assert {n: c.needed_gpus for n, c in checks.items()} == {50: 2, 500: 13, 5000: 125}
    # Its own tables' 57-96% savings follow from pricing its claimed GPUs.
    assert round(checks[50].claimed_savings_pct) == 57 and round(checks[5000].claimed_savings_pct) == 96
    # Break-even months x monthly savings: about $1.5k, $10.6k and $42k.
    assert checks[50].implied_one_time == pytest.approx(1.5e3, rel=0.07)
    assert checks[500].implied_one_time == pytest.approx(10.6e3, rel=0.02)
    assert checks[5000].implied_one_time == pytest.approx(42e3, rel=0.02)
