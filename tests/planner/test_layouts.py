"""The layouts comparison, checked by hand against the same model's figures."""

from __future__ import annotations

import math

from voxhost.ops import cost
from voxhost.planner.inputs import PlanInputs
from voxhost.planner.layouts import cheapest, compare, layout_cost
from voxhost.planner.model import capacity


def test_combined_is_the_plans_fleet_at_the_stacks_floor():
    inputs = PlanInputs()
    for players in (50, 500, 5000):
        c = layout_cost(inputs, players)
        assert c.instances == {"GPU": max(2, capacity(inputs, players).gpus_peak)}


def test_dedicated_puts_tts_on_cpu_instances_sized_by_its_cpu():
    inputs = PlanInputs(tts_model="kokoro", usage={"tts_chars_per_player": 300_000})
    d = layout_cost(inputs, 5000, dedicated=True)
    tts = d.instances["TTS (c7i.xlarge)"]
    u = inputs.usage
    kokoro = inputs.throughput_for("tts", "kokoro", "cpu")  # its RTF is CPU s per audio s
    per_char = inputs.cpu.cpu_s_per_tts_char + kokoro.rtf / u.chars_per_audio_second
    vcpu = 5000 * u.tts_chars_per_player / (730 * 3600) * per_char * u.peak_to_average
    assert tts == math.ceil(round(vcpu / 4 / 0.7, 9))
    assert d.instances["STT (GPU)"] == capacity(inputs, 5000).gpu_bound  # the GPU load alone


def test_each_region_is_a_whole_stack_plus_global_routing():
    inputs = PlanInputs()
    one, two = layout_cost(inputs, 50), layout_cost(inputs, 50, regions=2)
    assert two.instances["GPU"] == 2 * one.instances["GPU"]  # each region its own floor
    p = cost.AWS_PRICES
    routing = p["route53_hosted_zone_per_month"] + 2 * p["route53_health_check_per_month"] + \
        50 * inputs.usage.requests_per_player / 1e6 * inputs.layout.dns_queries_per_request * \
        p["route53_latency_per_million_queries"]
    half = layout_cost(inputs, 25)  # each region serves half the players
    assert abs(two.on_demand - 2 * half.on_demand - routing) < 0.01


def test_cdn_moves_published_lines_from_the_fleet_to_cdn_egress():
    inputs = PlanInputs(tts_model="kokoro", usage={"tts_chars_per_player": 300_000})
    plain, cdn = layout_cost(inputs, 5000), layout_cost(inputs, 5000, cdn=True)
    assert cdn.instances["GPU"] < plain.instances["GPU"]  # half the characters no longer synthesised
    assert cdn.on_demand < plain.on_demand


def test_reserved_base_is_the_average_fleet_and_cheapest_is_named():
    inputs = PlanInputs()
    c = layout_cost(inputs, 5000)
    assert c.reserved_instances == max(2, capacity(inputs, 5000).gpus_average)
    assert c.reserved_base < c.spot_mix < c.on_demand
    rows = compare(inputs, [500])[500]
    assert cheapest(rows).name == min(rows, key=lambda r: r.spot_mix).name
