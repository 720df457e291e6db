"""Deployment layouts priced side by side: combined against dedicated pools, one region against
several, pre-rendered lines on a CDN, and on-demand / spot mix / reserved base.

Every price comes from ops/cost.py through the plan's inputs (the one cost model); the
capacity arithmetic is model.py's, applied per pool and per region:

- **combined**: one service, STT and TTS on each GPU instance (model.capacity).
- **dedicated**: the STT pool on GPU instances, sized by the STT GPU load, live sessions'
  and REST requests' CPU; the TTS pool on CPU instances (`layout.tts_instance_type`),
  sized by TTS's CPU (engines on the CPU, as the server runs them). Each pool at least
  the stack's floor of tasks.
- **regions**: the load split evenly over N regions, each a whole stack (its floor, its
  NAT gateways, ALB, WAF, EFS...) sized for its share at the same peak (coincident peaks:
  the conservative case), plus Route 53 latency records and a health check per region.
- **CDN**: `layout.cdn_share` of the TTS characters are published lines fetched from
  CloudFront: their audio leaves the GPU/CPU fleet and the ALB, and is billed as CDN
  egress and requests instead, plus the published catalogue in S3.
- **reserved base**: the instances that run all month at the average load (the
  autoscaling floor) on 1-year reserved prices, the rest at the stack's spot mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from voxhost.ops import cost
from voxhost.planner.inputs import PlanInputs
from voxhost.planner.model import GB, capacity, cpu_per_unit, instances_needed, seconds_per_month, self_hosted_cost


@dataclass(frozen=True)
class LayoutCost:
    name: str
    instances: dict[str, int]  # pool -> instances at the peak
    on_demand: float
    spot_mix: float
    reserved_base: float  # the floor on 1-year reserved, the rest at the spot mix
    reserved_instances: int

    @property
    def total_instances(self) -> int:
        return sum(self.instances.values())


def _with_tts_share(inputs: PlanInputs, tts_share: float) -> PlanInputs:
    """The same plan with a share of the TTS characters synthesised (the rest come from the CDN)."""
    usage = inputs.usage.model_copy(update={"tts_chars_per_player": inputs.usage.tts_chars_per_player * tts_share})
    return inputs.model_copy(update={"usage": usage})


def _fleet_costs(inputs: PlanInputs, hourly: float, instances: int, average: int, fleet) -> tuple[float, float, float]:
    hours = inputs.hours_per_month
    on_demand = instances * hours * hourly
    spot = instances * hours * cost.blended_hourly(hourly, spot_share=fleet.spot_share(instances),
                                                    spot_discount=fleet.spot_discount)
    base = min(average, instances)
    rest = instances - base
    reserved = base * hours * hourly * (1 - fleet.reserved_discount) + rest * hours * cost.blended_hourly(
        hourly, spot_share=fleet.spot_share(rest) if rest else 0.0, spot_discount=fleet.spot_discount)
    return on_demand, spot, reserved


def _region(inputs: PlanInputs, players: float, dedicated: bool, floor: int) -> tuple[dict[str, int], dict, float,
                                                                                      int]:
    """One region's pools for `players`: (instances per pool, {pool: (on demand, spot, reserved)},
    platform cost without the GPU line, reserved-base instances)."""
    n = max(1, math.ceil(players))
    cap = capacity(inputs, n)
    platform = self_hosted_cost(inputs, cap)
    fixed = platform.on_demand - platform.lines["GPU instances"]
    f = inputs.fleet
    if not dedicated:
        instances = max(floor, cap.gpus_peak)
        average = max(floor, cap.gpus_average)
        return {"GPU": instances}, {"GPU": _fleet_costs(inputs, f.hourly, instances, average, f)}, fixed, average
    # Dedicated: STT pool = the GPU load and the STT side's CPU (live sessions, REST requests);
    # TTS pool = TTS's CPU on the TTS instance type.
    u, c = inputs.usage, inputs.cpu
    month_s = seconds_per_month(inputs)
    audio_rate = n * u.stt_minutes_per_player * 60.0 / month_s
    per_request, per_char = cpu_per_unit(inputs)
    rest_audio = audio_rate * (1.0 - u.live_share)
    stt_vcpu = (audio_rate * u.live_share * c.vcpu_per_live_stream + rest_audio / u.rest_clip_seconds * per_request
                + rest_audio * c.cpu_s_per_stt_audio_s) * u.peak_to_average
    tts_vcpu = (n * u.tts_chars_per_player / month_s) * per_char * u.peak_to_average
    stt = max(floor, cap.gpu_bound, instances_needed(stt_vcpu / f.vcpus, c.target_utilisation, 1), cap.memory_bound)
    stt_avg = max(floor, cap.gpus_average)
    tts_type = inputs.layout.tts_instance_type
    tts_vcpus = cost.INSTANCE_VCPUS[tts_type]
    tts = max(floor, instances_needed(tts_vcpu / tts_vcpus, c.target_utilisation, 1))
    tts_avg = max(floor, instances_needed(tts_vcpu / u.peak_to_average / tts_vcpus, c.target_utilisation, 1))
    tts_hourly = cost.INSTANCE_PRICES_PER_HOUR[tts_type]
    ebs = tts * 30 * inputs.platform.prices["ebs_gp3_per_gb_month"]  # the CPU group's 30 GB root volumes
    return ({"STT (GPU)": stt, f"TTS ({tts_type})": tts},
            {"STT (GPU)": _fleet_costs(inputs, f.hourly, stt, stt_avg, f),
             f"TTS ({tts_type})": _fleet_costs(inputs, tts_hourly, tts, tts_avg, f)},
            fixed + ebs, stt_avg + tts_avg)


def layout_cost(inputs: PlanInputs, players: int, *, dedicated: bool = False, regions: int = 1,
                cdn: bool = False) -> LayoutCost:
    lay = inputs.layout
    p = inputs.platform.prices
    tts_share = 1.0 - (lay.cdn_share if cdn else 0.0)
    regional = _with_tts_share(inputs, tts_share)  # each region sized for players / regions below
    instances: dict[str, int] = {}
    on_demand = spot = reserved = 0.0
    reserved_count = 0
    for _ in range(regions):
        pools, costs, fixed, base = _region(regional, players / regions, dedicated, lay.min_tasks_per_pool)
        for pool, count in pools.items():
            instances[pool] = instances.get(pool, 0) + count
        for od, sp, rs in costs.values():
            on_demand += od
            spot += sp
            reserved += rs
        on_demand += fixed
        spot += fixed
        reserved += fixed
        reserved_count += base
    extra = 0.0
    if regions > 1:  # latency records, one health check per region
        queries = players * inputs.usage.requests_per_player / 1e6 * lay.dns_queries_per_request
        extra += p["route53_hosted_zone_per_month"] + queries * p["route53_latency_per_million_queries"] \
            + regions * p["route53_health_check_per_month"]
    if cdn:
        u = inputs.usage
        chars = players * u.tts_chars_per_player * lay.cdn_share
        gb = chars / u.chars_per_audio_second * u.download_bytes_per_audio_second / GB
        requests = players * u.requests_per_player * lay.cdn_share * _tts_request_share(inputs)
        extra += gb * p["cloudfront_per_gb"] + requests / 1e4 * p["cloudfront_per_10k_requests"] \
            + lay.cdn_catalogue_gb * p["s3_standard_per_gb_month"]
    name = ("dedicated" if dedicated else "combined") + (f", {regions} regions" if regions > 1 else "") + \
        (", CDN" if cdn else "")
    return LayoutCost(name, instances, on_demand + extra, spot + extra, reserved + extra, reserved_count)


def _tts_request_share(inputs: PlanInputs) -> float:
    """Share of requests that are TTS lines: characters / characters per line against STT uploads."""
    u = inputs.usage
    lines = u.tts_chars_per_player / inputs.layout.chars_per_line
    uploads = u.stt_minutes_per_player * 60.0 * (1 - u.live_share) / u.rest_clip_seconds
    return lines / (lines + uploads) if lines + uploads else 0.0


LAYOUTS: list[dict[str, Any]] = [dict(), dict(dedicated=True), dict(regions=2), dict(dedicated=True, regions=2), dict(cdn=True)]


def compare(inputs: PlanInputs, players: list[int] | None = None) -> dict[int, list[LayoutCost]]:
    return {n: [layout_cost(inputs, n, **kw) for kw in LAYOUTS] for n in (players or inputs.players)}


def cheapest(costs: list[LayoutCost], field: str = "spot_mix") -> LayoutCost:
    return min(costs, key=lambda c: getattr(c, field))
