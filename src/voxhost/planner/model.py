"""The planner's arithmetic: load -> GPUs at the peak -> monthly cost -> savings.

Pure functions over PlanInputs; no I/O. Every figure the report prints comes
from here so the tests can check it by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from voxhost.ops.cost import blended_hourly
from voxhost.planner.inputs import PlanInputs

GB = 1e9


@dataclass(frozen=True)
class Capacity:
    players: int
    stt_audio_s_per_s: float  # average speech seconds arriving per wall second (after VAD)
    tts_audio_s_per_s: float  # average synthesised seconds per wall second
    stt_gpu_load_peak: float  # GPUs busy with STT at the peak (at 100% utilisation)
    tts_gpu_load_peak: float  # GPUs busy with TTS at the peak: 0 when TTS runs on the CPU
    vcpu_peak: float  # vCPUs busy at the peak: TTS on the CPU, live sessions, REST requests
    gpu_bound: int  # instances the GPU load needs at the peak, at the target utilisation
    cpu_bound: int  # instances the CPU load needs at the peak, at the CPU target utilisation
    gpus_peak: int  # instances (one GPU each) at the peak: the largest bound, never a floor hiding another
    gpus_average: int  # instances the average load needs (autoscaling's floor)
    live_streams_peak: float = 0.0  # live sessions open at the peak
    memory_bound: int = 0  # instances the live sessions' memory needs beside each instance's servers

    @property
    def gpu_load_peak(self) -> float:
        return self.stt_gpu_load_peak + self.tts_gpu_load_peak

    @property
    def limited_by(self) -> str:
        """The resource that runs out first (on a tie the GPU, the one the plan buys)."""
        bounds = {"GPU": self.gpu_bound, "CPU": self.cpu_bound, "memory": self.memory_bound}
        return max(bounds, key=lambda name: bounds[name])  # first of equals wins: GPU


@dataclass
class SelfHostedCost:
    gpus: int
    lines: dict[str, float] = field(default_factory=dict)  # on-demand fleet, by component
    spot_share: float = 0.0  # the stack's mix at this fleet size (on-demand base + share above it)
    compute_spot_mix: float = 0.0
    compute_reserved: float = 0.0

    @property
    def on_demand(self) -> float:
        return sum(self.lines.values())

    @property
    def spot_mix(self) -> float:
        return self.on_demand - self.lines["GPU instances"] + self.compute_spot_mix

    @property
    def reserved(self) -> float:
        return self.on_demand - self.lines["GPU instances"] + self.compute_reserved


@dataclass(frozen=True)
class Tier:
    players: int
    cloud_stt: float
    cloud_tts: float
    capacity: Capacity
    self_hosted: SelfHostedCost
    one_time: float
    tco_months: int

    @property
    def cloud(self) -> float:
        return self.cloud_stt + self.cloud_tts

    def savings(self, self_monthly: float) -> float:
        return self.cloud - self_monthly

    def savings_pct(self, self_monthly: float) -> float:
        return 100.0 * self.savings(self_monthly) / self.cloud if self.cloud else 0.0

    def break_even_months(self, self_monthly: float) -> float | None:
        """Months until the one-time cost is paid back; None if it never is."""
        saved = self.savings(self_monthly)
        if saved <= 0:
            return None
        return self.one_time / saved

    def tco_cloud(self) -> float:
        return self.tco_months * self.cloud

    def tco_self(self, self_monthly: float) -> float:
        return self.one_time + self.tco_months * self_monthly


def cloud_cost(inputs: PlanInputs, players: int) -> tuple[float, float]:
    """Monthly cloud API bill (STT, TTS): every minute sent is billed, silence included."""
    u, c = inputs.usage, inputs.cloud
    stt = players * u.stt_minutes_per_player * c.stt_per_minute
    tts = players * u.tts_chars_per_player / 1e6 * c.tts_per_million_chars
    return stt, tts


def seconds_per_month(inputs: PlanInputs) -> float:
    return inputs.hours_per_month * 3600.0


def tts_on_cpu(inputs: PlanInputs):
    """The TTS throughput row and whether it runs on the CPU: a row for the fleet's
    GPU (e.g. xtts-v2 on T4) prices it there, otherwise the server's CPU engines."""
    try:
        return inputs.throughput_for("tts", inputs.tts_model), False
    except ValueError:
        return inputs.throughput_for("tts", inputs.tts_model, gpu="cpu"), True


def cpu_per_unit(inputs: PlanInputs) -> tuple[float, float]:
    """Host CPU seconds per REST STT request and per TTS character: a measured
    throughput row's figure (`voxhost bench`) if it has one, else the `cpu` defaults
    (non-model work) plus, for a TTS model on the CPU, the model's own (its RTF)."""
    u, c = inputs.usage, inputs.cpu
    stt = inputs.throughput_for("stt", inputs.stt_model)
    tts, tts_cpu = tts_on_cpu(inputs)
    per_request = stt.cpu_s_per_request if stt.cpu_s_per_request is not None else c.cpu_s_per_rest_request
    if tts.cpu_s_per_char is not None:
        per_char = tts.cpu_s_per_char
    else:  # a CPU engine's RTF is CPU seconds per audio second (planner/inputs.py)
        per_char = c.cpu_s_per_tts_char + (tts.rtf / u.chars_per_audio_second if tts_cpu else 0.0)
    return per_request, per_char


def capacity(inputs: PlanInputs, players: int, gpus_override: int | None = None) -> Capacity:
    u, f, c, m = inputs.usage, inputs.fleet, inputs.cpu, inputs.memory
    month_s = seconds_per_month(inputs)
    stt = inputs.throughput_for("stt", inputs.stt_model)
    tts, tts_cpu = tts_on_cpu(inputs)
    audio_rate = players * u.stt_minutes_per_player * 60.0 / month_s  # all audio sent, silence included
    stt_rate = audio_rate * u.speech_share
    tts_rate = players * u.tts_chars_per_player / u.chars_per_audio_second / month_s
    stt_load = stt_rate * u.peak_to_average / stt.capacity
    tts_load = 0.0 if tts_cpu else tts_rate * u.peak_to_average / tts.capacity
    # CPU seconds per wall second. Each live session holds CPU for its whole length;
    # each REST upload (a rest_clip_seconds clip) and each character costs its share.
    per_request, per_char = cpu_per_unit(inputs)
    rest_audio_rate = audio_rate * (1.0 - u.live_share)
    vcpu = audio_rate * u.live_share * c.vcpu_per_live_stream \
        + rest_audio_rate / u.rest_clip_seconds * per_request + rest_audio_rate * c.cpu_s_per_stt_audio_s \
        + tts_rate * u.chars_per_audio_second * per_char
    vcpu_peak = vcpu * u.peak_to_average
    gpu_bound = instances_needed(stt_load + tts_load, f.target_utilisation, f.min_gpus)
    cpu_bound = instances_needed(vcpu_peak / f.vcpus, c.target_utilisation, f.min_gpus)
    # Memory: each instance's servers (one per worker) first, live sessions in the rest.
    live_peak = audio_rate * u.live_share * u.peak_to_average
    free_gb = f.memory_gb - f.gpus_per_instance * m.workers * m.server_gb - m.reserved_gb
    if free_gb <= 0:
        raise ValueError(f"{f.instance_type} has {f.memory_gb:g} GB: no room beside {m.workers} server(s) of "
                         f"{m.server_gb:g} GB and {m.reserved_gb:g} GB reserved")
    memory_bound = instances_needed(live_peak * m.gb_per_live_stream / free_gb * f.gpus_per_instance, m.target_utilisation,
                         f.min_gpus)
    average = max(instances_needed((stt_load + tts_load) / u.peak_to_average, f.target_utilisation, f.min_gpus),
                  instances_needed(vcpu / f.vcpus, c.target_utilisation, f.min_gpus),
                  instances_needed(live_peak / u.peak_to_average * m.gb_per_live_stream / free_gb * f.gpus_per_instance,
                        m.target_utilisation, f.min_gpus))
    peak = max(gpu_bound, cpu_bound, memory_bound)
    return Capacity(players, stt_rate, tts_rate, stt_load, tts_load, vcpu_peak, gpu_bound, cpu_bound,
                    gpus_override if gpus_override is not None else peak, average, live_peak, memory_bound)


def instances_needed(load: float, utilisation: float, minimum: int) -> int:
    # round() first so 2.0000000001 from float noise does not buy a third GPU
    return max(minimum, math.ceil(round(load / utilisation, 9)))


def self_hosted_cost(inputs: PlanInputs, cap: Capacity) -> SelfHostedCost:
    """Monthly bill of the CDK stack with `cap.gpus_peak` GPUs running all month."""
    u, f, p = inputs.usage, inputs.fleet, inputs.platform
    price = p.prices
    month_h = inputs.hours_per_month
    month_s = seconds_per_month(inputs)
    instances = math.ceil(cap.gpus_peak / f.gpus_per_instance)
    hours = instances * month_h

    upload_gb = cap.stt_audio_s_per_s / u.speech_share * month_s * u.upload_bytes_per_audio_second / GB
    download_gb = cap.tts_audio_s_per_s * month_s * u.download_bytes_per_audio_second / GB
    lcus = (upload_gb + download_gb) / month_h  # average GB/h through the ALB
    if p.egress == "nat":
        egress = p.nat_gateways * month_h * price["nat_gateway_per_hour"] + \
            p.egress_gb_per_month * price["nat_per_gb"]
    else:
        egress = p.interface_endpoints * p.azs * month_h * price["vpc_interface_endpoint_per_az_hour"] + \
            p.egress_gb_per_month * price["vpc_endpoint_per_gb"]
    requests = cap.players * u.requests_per_player
    lines = {
        "GPU instances": hours * f.hourly,
        "EBS (instance volumes)": instances * f.ebs_gb_per_instance * price["ebs_gp3_per_gb_month"],
        "ALB": month_h * (price["alb_per_hour"] + lcus * price["alb_per_lcu_hour"]),
        "Data transfer out": download_gb * price["data_transfer_out_per_gb"],
        f"Egress ({'NAT' if p.egress == 'nat' else 'VPC endpoints'})": egress,
        "EFS (models, voices)": p.efs_gb * price["efs_standard_per_gb_month"],
        "WAF": price["waf_web_acl_per_month"] + p.waf_rules * price["waf_rule_per_month"]
        + requests / 1e6 * price["waf_per_million_requests"],
        "CloudWatch": price["cloudwatch_dashboard_per_month"] + p.alarms * price["cloudwatch_alarm_per_month"]
        + p.custom_metrics * price["cloudwatch_metric_per_month"]
        + p.log_gb_per_month * price["cloudwatch_logs_ingest_per_gb"],
        "Secrets Manager, KMS": p.secrets * price["secrets_manager_per_secret_month"]
        + p.kms_keys * price["kms_key_per_month"],
    }
    return SelfHostedCost(
        gpus=cap.gpus_peak,
        lines=lines,
        spot_share=f.spot_share(instances),
        compute_spot_mix=hours * blended_hourly(f.hourly, spot_share=f.spot_share(instances),
                                                spot_discount=f.spot_discount),
        compute_reserved=hours * blended_hourly(f.hourly, reserved_share=1.0, reserved_discount=f.reserved_discount),
    )


def tier(inputs: PlanInputs, players: int, gpus_override: int | None = None,
         one_time: float | None = None) -> Tier:
    stt, tts = cloud_cost(inputs, players)
    cap = capacity(inputs, players, gpus_override)
    return Tier(players, stt, tts, cap, self_hosted_cost(inputs, cap),
                inputs.one_time(players) if one_time is None else one_time, inputs.tco_months)


def plan(inputs: PlanInputs) -> list[Tier]:
    return [tier(inputs, n) for n in inputs.players]


@dataclass(frozen=True)
class ClaimCheck:
    """The design document's figures next to what its inputs give."""

    players: int
    claimed_gpus: int
    needed_gpus: int
    limited_by: str  # what sets needed_gpus: "GPU" or "CPU"
    claimed_break_even: float | None
    claimed_savings_pct: float  # its method: claimed GPUs, on demand, our prices
    implied_one_time: float | None  # claimed break-even x its own monthly savings
    break_even_from_implied: float | None  # that one-time cost / its own savings: its months back
    break_even_needed: float | None  # that one-time cost / savings with the GPUs the load needs


def check_claims(inputs: PlanInputs) -> list[ClaimCheck]:
    rows = []
    d = inputs.design
    for players, claimed in sorted(d.gpus.items()):
        as_claimed = tier(inputs, players, gpus_override=claimed, one_time=0.0)
        cap = capacity(inputs, players)
        implied = d.implied_one_time(players)
        needed = tier(inputs, players, one_time=implied or 0.0)
        rows.append(ClaimCheck(
            players, claimed, cap.gpus_peak, cap.limited_by, d.break_even_months.get(players),
            as_claimed.savings_pct(as_claimed.self_hosted.on_demand), implied,
            implied / d.savings(players) if implied is not None else None,
            needed.break_even_months(needed.self_hosted.on_demand) if implied is not None else None))
    return rows
