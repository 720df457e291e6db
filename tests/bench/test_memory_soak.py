"""bench/memory_soak.py's verdict on synthetic series: the slope is per 10 minutes from the
chosen minute on (warm-up growth before it does not count), and "flat" and "within goal"
follow from it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from memory_soak import MB_PER_MIB, analyse  # noqa: E402


def series(minutes, rss):
    return [{"minute": m, "rss_mib": r, "hwm_mib": max(rss)} for m, r in zip(minutes, rss)]


def test_warm_up_growth_before_the_start_minute_does_not_count():
    minutes = [0.5 * i for i in range(61)]  # 0 .. 30 minutes
    rss = [600 + 30 * min(m, 5) / 5 for m in minutes]  # +30 MiB over warm-up, then flat at 630
    v = analyse(series(minutes, rss), from_minute=5)
    assert v["rss_from_mib"] == 630 and v["rss_end_mib"] == 630
    assert v["slope_mib_per_10min"] == pytest.approx(0, abs=1e-9)
    assert v["flat"] and v["within_goal"]


def test_a_steady_leak_is_its_rate_per_10_minutes_and_not_flat():
    minutes = list(range(31))
    rss = [700 + 1.0 * m for m in minutes]  # 1 MiB a minute
    v = analyse(series(minutes, rss), from_minute=5)
    assert v["slope_mib_per_10min"] == pytest.approx(10)
    assert v["slope_mb_per_10min"] == pytest.approx(10 * MB_PER_MIB)
    assert not v["flat"]
    assert v["rss_end_mb"] == pytest.approx(730 * MB_PER_MIB)  # 765 MB: within 800 MB
    assert v["within_goal"]


def test_the_goal_is_800_decimal_megabytes():
    assert analyse(series([0, 10], [762, 762]))["within_goal"]  # 799.0 MB
    assert not analyse(series([0, 10], [763, 763]))["within_goal"]  # 800.06 MB: over, though under 800 MiB


def test_the_goal_is_read_on_the_idle_server_after_warm_up_not_under_traffic():
    busy = series([0, 10, 20, 30], [820, 830, 815, 825])  # requests in flight hold buffers
    v = analyse(busy, from_minute=5, idle={"after_warm_up_mib": 700, "after_soak_mib": 702})
    assert v["within_goal"] and v["goal_read_on_mib"] == 700 and v["idle_after_soak_mib"] == 702
    assert not analyse(busy, from_minute=5)["within_goal"]  # without idle figures: the last sample
