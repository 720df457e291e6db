"""ops/cost.py, the one price list: per-request dollars and the fleet blend."""

from __future__ import annotations

import pytest

from voxhost.ops.cost import (
    CLOUD_PRICES,
    INSTANCE_GPUS,
    INSTANCE_PRICES_PER_HOUR,
    INSTANCE_VCPUS,
    RESERVED_DISCOUNT,
    SPOT_DISCOUNT,
    ComputeCost,
    blended_hourly,
    cloud_usd,
)


def test_request_cost_is_compute_time_at_the_hourly_price_shared_by_parallel_work():
    cost = ComputeCost("g4dn.xlarge")
    assert cost.hourly == INSTANCE_PRICES_PER_HOUR["g4dn.xlarge"]
    assert cost.request_usd(3600.0) == pytest.approx(cost.hourly)
    assert cost.request_usd(1.8, parallelism=4) == pytest.approx(1.8 * cost.hourly / 3600 / 4)
    assert cost.request_usd(1.0, parallelism=0) == cost.request_usd(1.0)  # never more than the whole machine


def test_an_explicit_price_overrides_the_table():
    assert ComputeCost("g4dn.xlarge", price_per_hour=1.0).request_usd(36.0) == pytest.approx(0.01)
    with pytest.raises(KeyError):
        ComputeCost("p5.48xlarge").hourly  # noqa: B018 - an unknown type is an error, not a silent $0


def test_blended_hourly():
    assert blended_hourly(1.0) == 1.0
    assert blended_hourly(1.0, spot_share=1.0) == pytest.approx(1 - SPOT_DISCOUNT)
    assert blended_hourly(1.0, reserved_share=1.0) == pytest.approx(1 - RESERVED_DISCOUNT)
    assert blended_hourly(2.0, spot_share=0.5, reserved_share=0.5) == pytest.approx(
        (1 - SPOT_DISCOUNT) + (1 - RESERVED_DISCOUNT))
    for bad in ({"spot_share": -0.1}, {"spot_share": 0.7, "reserved_share": 0.4}, {"reserved_share": 1.5}):
        with pytest.raises(ValueError):
            blended_hourly(1.0, **bad)


def test_every_priced_instance_has_its_gpu_and_vcpus():
    assert set(INSTANCE_PRICES_PER_HOUR) == set(INSTANCE_GPUS) == set(INSTANCE_VCPUS)
    assert all(p > 0 for p in INSTANCE_PRICES_PER_HOUR.values())


def test_cloud_prices_per_minute_of_audio_and_per_character():
    assert cloud_usd("transcriptions", "whisper-1", audio_seconds=90) == pytest.approx(1.5 * 0.006)
    assert cloud_usd("transcriptions", "gpt-4o-mini-transcribe", audio_seconds=60) == pytest.approx(0.003)
    assert cloud_usd("speech", "tts-1-hd", characters=1000) == pytest.approx(1000 * 30.0 / 1e6)
    # A name the cloud doesn't price (a local model) is priced as its cloud counterpart.
    assert cloud_usd("transcriptions", "whisper-base", audio_seconds=60) == CLOUD_PRICES["whisper-1_per_minute"]
    assert cloud_usd("speech", "kokoro", characters=10**6) == CLOUD_PRICES["tts-1_per_million_chars"]

