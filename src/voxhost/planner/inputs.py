"""Planner inputs: one YAML file, every field defaulted to a documented value.

Each default says where it comes from: `given` (the design document's own
figures), `published` (a public benchmark, not measured by us), `assumed`
(our choice, stated in docs/planner.md) or `measured` (`voxhost bench`).
Prices default to src/voxhost/ops/cost.py, the one source of truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from voxhost.ops import cost
from voxhost.ops.capacity import LIVE_CORES_PER_PLAYER


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Throughput(_Model):
    """One model's speed on one GPU.

    rtf: compute seconds per audio second at batch 1 (lower is faster).
    streams: real-time streams one GPU sustains (audio seconds processed per
    wall second at its best concurrency); defaults to 1 / rtf.
    """

    model: str
    kind: Literal["stt", "tts"]
    gpu: str
    rtf: float = Field(gt=0)
    streams: float | None = Field(default=None, gt=0)
    first_chunk_ms: float | None = None
    # Host CPU seconds per REST request (stt) or per character (tts) on this device,
    # measured by `voxhost bench` (process time of the request's engine path). On a
    # GPU it is the CPU side only; on "cpu" it includes the model. None: cpu.* defaults.
    cpu_s_per_request: float | None = Field(default=None, ge=0)
    cpu_s_per_char: float | None = Field(default=None, ge=0)
    source: str

    @property
    def capacity(self) -> float:
        return self.streams if self.streams is not None else 1.0 / self.rtf


# Published T4 figures (not measured here): see docs/planner.md for the links.
_LARGE_V3_T4_RTF = 0.064  # faster-whisper large-v3 fp16, batch 1, ~15.6x real time (whisper-jax #186)
PUBLISHED_THROUGHPUT = [
    Throughput(model="large-v3", kind="stt", gpu="T4", rtf=_LARGE_V3_T4_RTF,
               source="published: faster-whisper large-v3 on T4, batch 1, ~15.6x real time "
                      "(sanchit-gandhi/whisper-jax issue #186)"),
    Throughput(model="large-v3-turbo", kind="stt", gpu="T4", rtf=round(_LARGE_V3_T4_RTF / 2.7, 4),
               source="published: large-v3-turbo ~2.7x faster than large-v3 "
                      "(SYSTRAN/faster-whisper issue #1030)"),
    Throughput(model="xtts-v2", kind="tts", gpu="T4", rtf=0.25, first_chunk_ms=212,
               source="published: XTTS-v2 with DeepSpeed, first chunk 212 ms, RTF 0.25 "
                      "(coqui/XTTS-v2 model page, discussion #10)"),
    # The TTS engines the server runs, on the CPU; here RTF = CPU seconds per audio second.
    # hibari runs on one onnxruntime thread (docs/benchmarks.md, "Text-to-speech"). Kokoro runs
    # on a pool as wide as the cores, so its figure is the server's CPU per second of audio
    # delivered with the engine saturated, unpinned (bench/tts_vs_kokoro_onnx.py --capacity 2:
    # 0.685 and 0.686, the medians of two runs of three rounds with voxhost's Snake and Sin
    # kernels; 0.721-0.756 before them; the one-thread 0.547 of 2026-11-26 priced a default the
    # server no longer runs). It includes the server's own work per line, which
    # cpu_s_per_tts_char also counts: about 2% counted twice, on the safe side.
    Throughput(model="hibari", kind="tts", gpu="cpu", rtf=0.006,
               source="measured: docs/benchmarks.md, 2-core VM, 1 thread, 2026-11-26 (tts-1)"),
    Throughput(model="kokoro", kind="tts", gpu="cpu", rtf=0.686,
               source="measured: docs/benchmarks.md \"Kokoro's Snake and Sin on voxhost's kernels\", 2-core VM, "
                      "saturated, unpinned, 2026-12-07 (tts-1-hd)"),
]


class Usage(_Model):
    # given: the design document's cloud column, $1,080 / 50 players / $0.006 per minute.
    stt_minutes_per_player: float = 3600.0
    # given: its TTS line, $23 / 50 players / $15 per 1M characters (30,666.7, as it rounds).
    tts_chars_per_player: float = 30_667.0
    # assumed: share of STT minutes that arrive as live WebSocket sessions (each holds
    # CPU for VAD, resampling and JSON while it lasts); the rest are REST uploads.
    # The document prices whisper-1, a REST API, so none by default.
    live_share: float = Field(default=0.0, ge=0, le=1)
    peak_to_average: float = Field(default=3.0, ge=1.0)  # assumed: evening peak 3x the 24/7 mean
    speech_share: float = Field(default=0.5, gt=0, le=1)  # assumed: share of STT audio VAD keeps
    chars_per_audio_second: float = Field(default=15.0, gt=0)  # assumed: ~150 words/min English
    requests_per_player: float = 20_000.0  # assumed: utterances + TTS lines a month (WAF billing)
    # assumed: a REST push-to-talk upload's length (bench/capacity.py's clips average 3.3 s);
    # REST STT requests per second = REST audio seconds per second / this.
    rest_clip_seconds: float = Field(default=3.3, gt=0)
    # Wire formats: 16 kHz 16-bit mono WAV uploads (worst case; Opus is ~8x less),
    # 128 kbit/s MP3 replies (OpenAI's default response format).
    upload_bytes_per_audio_second: float = 32_000.0
    download_bytes_per_audio_second: float = 16_000.0


class CloudPricing(_Model):
    stt_model: str = "whisper-1"
    tts_model: str = "tts-1"
    prices: dict[str, float] = Field(default_factory=lambda: dict(cost.CLOUD_PRICES))

    @model_validator(mode="after")
    def _known(self) -> CloudPricing:
        for key in (f"{self.stt_model}_per_minute", f"{self.tts_model}_per_million_chars"):
            if key not in self.prices:
                raise ValueError(f"no cloud price '{key}' (known: {', '.join(self.prices)})")
        return self

    @property
    def stt_per_minute(self) -> float:
        return self.prices[f"{self.stt_model}_per_minute"]

    @property
    def tts_per_million_chars(self) -> float:
        return self.prices[f"{self.tts_model}_per_million_chars"]


class CpuCost(_Model):
    """What the server spends on the CPU outside the models (a model on the CPU adds
    its own, from its throughput row). A measured throughput row's `cpu_s_per_request`
    / `cpu_s_per_char` wins over the REST and TTS defaults here."""

    # measured: a live session's server CPU outside the model, unpinned on all cores as production
    # runs it (bench/capacity.py on the simulated GPU; docs/benchmarks.md "Live CPU per player,
    # unpinned"); the same figure sizes the server's default session capacity (ops/capacity.py).
    vcpu_per_live_stream: float = Field(default=LIVE_CORES_PER_PLAYER["cuda"], ge=0)
    # measured: the same benchmark's REST stage, server CPU per ~3.3 s push-to-talk clip outside
    # the model, unpinned (docs/benchmarks.md "Live CPU per player, unpinned").
    cpu_s_per_rest_request: float = Field(default=0.013, ge=0)
    # REST CPU that grows with the clip, on top of the per-request figure (which
    # already covers a rest_clip_seconds clip): 0 unless measured apart.
    cpu_s_per_stt_audio_s: float = Field(default=0.0, ge=0)
    # derived: the same run's TTS stages, 0.9 server CPU s per hibari stream-minute,
    # less hibari's own 0.36 (RTF 0.006 x 60 s): 0.54 CPU s per 60 s x 15 chars/s.
    cpu_s_per_tts_char: float = Field(default=0.0006, ge=0)
    target_utilisation: float = Field(default=0.7, gt=0, le=1)
    source: str = "defaults: docs/planner.md, CPU budget"


class MemoryCost(_Model):
    """What the server holds in host memory: each worker process its models, each live session its buffers."""

    # The default server (all models) after warm-up, VmHWM: docs/benchmarks.md, "Text-to-speech".
    server_gb: float = Field(default=0.965, gt=0)
    workers: int = Field(default=1, ge=1)  # VOXHOST_WORKERS: each loads its own models
    # assumed: a live session's audio ring, turn buffers and decoder state (30 s of
    # 16 kHz float32 is 2 MB; x4 for copies in flight).
    gb_per_live_stream: float = Field(default=0.008, ge=0)
    reserved_gb: float = Field(default=1.5, ge=0)  # OS, ECS agent, page cache for the image
    target_utilisation: float = Field(default=0.9, gt=0, le=1)


class Fleet(_Model):
    instance_type: str = "g4dn.xlarge"
    on_demand_per_hour: float | None = None  # None: cost.INSTANCE_PRICES_PER_HOUR
    gpus_per_instance: int = 1
    vcpus_per_instance: int | None = None  # None: cost.INSTANCE_VCPUS
    # The stack's mix (deploy/aws config.py, same defaults): this many instances
    # on demand, then this percentage of the rest; the remainder runs on spot.
    on_demand_base: int = Field(default=1, ge=0)
    on_demand_percent_above_base: float = Field(default=50.0, ge=0, le=100)
    spot_discount: float = Field(default=cost.SPOT_DISCOUNT, ge=0, lt=1)
    reserved_discount: float = Field(default=cost.RESERVED_DISCOUNT, ge=0, lt=1)
    target_utilisation: float = Field(default=0.7, gt=0, le=1)  # headroom for latency targets
    min_gpus: int = Field(default=1, ge=1)
    ebs_gb_per_instance: float = 50.0  # ECS GPU AMI root volume + image layers
    memory_gb_per_instance: float | None = None  # None: cost.INSTANCE_MEMORY_GB

    @property
    def gpu(self) -> str:
        return cost.INSTANCE_GPUS.get(self.instance_type, self.instance_type)

    @property
    def vcpus(self) -> int:
        if self.vcpus_per_instance is not None:
            return self.vcpus_per_instance
        try:
            return cost.INSTANCE_VCPUS[self.instance_type]
        except KeyError:
            raise ValueError(f"no vCPU count for {self.instance_type}; set fleet.vcpus_per_instance") from None

    @property
    def memory_gb(self) -> float:
        if self.memory_gb_per_instance is not None:
            return self.memory_gb_per_instance
        try:
            return cost.INSTANCE_MEMORY_GB[self.instance_type]
        except KeyError:
            raise ValueError(f"no memory size for {self.instance_type}; set fleet.memory_gb_per_instance") from None

    def spot_share(self, instances: int) -> float:
        """Share of `instances` the stack's Auto Scaling group runs on spot."""
        if instances <= 0:
            return 0.0
        above = max(0, instances - self.on_demand_base)
        return above * (1.0 - self.on_demand_percent_above_base / 100.0) / instances

    @property
    def hourly(self) -> float:
        if self.on_demand_per_hour is not None:
            return self.on_demand_per_hour
        try:
            return cost.INSTANCE_PRICES_PER_HOUR[self.instance_type]
        except KeyError:
            raise ValueError(f"no price for {self.instance_type}; set fleet.on_demand_per_hour") from None


class Platform(_Model):
    """The fixed AWS pieces the CDK stack creates (keep in step with deploy/aws)."""

    egress: Literal["nat", "endpoints"] = "nat"  # CDK context `egress`
    nat_gateways: int = 3  # one per AZ (the stack's nat_per_az): an AZ outage keeps the others' egress
    azs: int = 3  # the stack's max_azs
    interface_endpoints: int = 8  # ecr.api, ecr.dkr, logs, monitoring, secretsmanager, ecs, ecs-agent, ecs-telemetry
    egress_gb_per_month: float = 50.0  # image pulls, model downloads, logs (assumed)
    efs_gb: float = 10.0  # large-v3-turbo (1.6 GB) + TTS voices + headroom
    log_gb_per_month: float = 5.0
    custom_metrics: int = 10  # EMF metrics x dimension sets at the service level
    # ours (error rate, 5xx x2, no healthy targets, scale-in, p95 x2, refusals, GPU) + 2 of target tracking
    alarms: int = 11
    waf_rules: int = 5  # rate limit, 3 managed groups, the body-size rule (deploy/aws edge.py)
    secrets: int = 1
    kms_keys: int = 1
    prices: dict[str, float] = Field(default_factory=lambda: dict(cost.AWS_PRICES))


class Layout(_Model):
    """What `voxhost plan` compares across deployment layouts (planner/layouts.py; deploy/aws context
    `pools`, `regions`, `cdn`)."""

    tts_instance_type: str = "c7i.xlarge"  # the dedicated layout's TTS pool (deploy/aws tts_instance_types)
    min_tasks_per_pool: int = Field(default=2, ge=1)  # the stack's floor: two tasks in two AZs, per pool
    # assumed: share of TTS characters that are fixed lines (barks, scripted dialogue) published to
    # the CDN with `voxhost cache publish`, fetched by the game instead of synthesised.
    cdn_share: float = Field(default=0.5, ge=0, le=1)
    cdn_catalogue_gb: float = Field(default=5.0, ge=0)  # the published lines kept in S3 (assumed)
    chars_per_line: float = Field(default=60.0, gt=0)  # assumed: a bark or a line of dialogue
    dns_queries_per_request: float = Field(default=0.05, ge=0)  # assumed: clients reuse connections (TTL 60 s)


class DesignClaims(_Model):
    """What the design document states; the report checks it against its inputs."""

    gpus: dict[int, int] = Field(default_factory=lambda: {50: 1, 500: 3, 5000: 10})
    break_even_months: dict[int, float] = Field(default_factory=lambda: {50: 2.3, 500: 1.1, 5000: 0.4})
    # Its cloud column, and its self-hosted totals (GPUs at 720 h, ALB, EBS, transfer).
    cloud_stt: dict[int, float] = Field(default_factory=lambda: {50: 1080.0, 500: 10_800.0, 5000: 108_000.0})
    cloud_tts: dict[int, float] = Field(default_factory=lambda: {50: 23.0, 500: 230.0, 5000: 2300.0})
    self_hosted: dict[int, float] = Field(default_factory=lambda: {50: 471.0, 500: 1367.0, 5000: 4549.0})
    table_savings_pct: tuple[float, float] = (57.0, 96.0)
    summary_savings_pct: tuple[float, float] = (60.0, 85.0)

    def implied_one_time(self, players: int) -> float | None:
        """Break-even months x the document's own monthly savings (its cloud - its self-hosted)."""
        if any(players not in d for d in (self.break_even_months, self.self_hosted, self.cloud_stt,
                                          self.cloud_tts)):
            return None
        return self.break_even_months[players] * self.savings(players)

    def savings(self, players: int) -> float:
        return self.cloud_stt[players] + self.cloud_tts[players] - self.self_hosted[players]


class PlanInputs(_Model):
    players: list[int] = Field(default_factory=lambda: [50, 500, 5000])
    usage: Usage = Field(default_factory=Usage)
    cloud: CloudPricing = Field(default_factory=CloudPricing)
    fleet: Fleet = Field(default_factory=Fleet)
    platform: Platform = Field(default_factory=Platform)
    stt_model: str = "large-v3-turbo"
    tts_model: str = "hibari"  # what tts-1 runs on the server (VOXHOST_TTS_MODEL_ALIASES), on the CPU
    cpu: CpuCost = Field(default_factory=CpuCost)
    layout: Layout = Field(default_factory=Layout)
    memory: MemoryCost = Field(default_factory=MemoryCost)
    # AWS bills 730 h a month; the design document prices 720 h (30 days). Both are shown.
    hours_per_month: float = Field(default=cost.HOURS_PER_MONTH, gt=0)
    # The deployed stack's `max_tasks` (deploy/aws/cdk.json): the plan warns when a tier needs more.
    stack_max_tasks: int = Field(default=10, ge=1)
    # Measured entries (voxhost bench) win over published ones for the same model and GPU.
    throughput: list[Throughput] = Field(default_factory=list)
    # One-time cost (migration, engineering): a number, or one per player count.
    # None: what the design document implies (its break-even months x its savings).
    one_time_usd: float | dict[int, float] | None = None
    tco_months: int = 36
    design: DesignClaims = Field(default_factory=DesignClaims)

    def one_time(self, players: int) -> float:
        if self.one_time_usd is None:
            implied = self.design.implied_one_time(players)
            if implied is None:
                raise ValueError(f"no one_time_usd for {players} players and no design claim to imply one")
            return implied
        if isinstance(self.one_time_usd, dict):
            if players not in self.one_time_usd:
                raise ValueError(f"one_time_usd has no entry for {players} players")
            return self.one_time_usd[players]
        return self.one_time_usd

    def throughput_for(self, kind: str, model: str, gpu: str | None = None) -> Throughput:
        gpu = gpu or self.fleet.gpu
        for row in [*self.throughput, *PUBLISHED_THROUGHPUT]:  # measured first
            if row.kind == kind and row.model == model and row.gpu.lower() == gpu.lower():
                return row
        known = sorted({f"{r.model}@{r.gpu}" for r in [*self.throughput, *PUBLISHED_THROUGHPUT] if r.kind == kind})
        raise ValueError(f"no {kind} throughput for {model} on {gpu}; known: {', '.join(known)}. "
                         "Run `voxhost bench` on that GPU or add a `throughput` entry.")


def _merge(base: dict, extra: dict) -> dict:
    """Deep merge; `throughput` lists concatenate so a bench file adds to a plan."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif key == "throughput" and isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = [*value, *out[key]]  # later files (fresher measurements) first
        else:
            out[key] = value
    return out


def load_inputs(paths: list[Path] | Path | None = None) -> PlanInputs:
    """Defaults, overridden by each YAML file in turn (e.g. a plan, then bench output)."""
    if paths is None:
        paths = []
    elif isinstance(paths, (str, Path)):
        paths = [Path(paths)]
    merged: dict = {}
    for path in paths:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
        merged = _merge(merged, raw)
    return PlanInputs.model_validate(merged)
