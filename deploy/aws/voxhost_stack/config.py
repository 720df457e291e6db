"""Every knob of the stack, read from CDK context (`cdk deploy -c key=value` or cdk.json).

Defaults follow the design: g4dn.xlarge (one T4), 4 vCPU / 15 GiB per task,
scale out above 10 queued jobs per task, in below 2 for 10 minutes.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

# The server's drain window (VOXHOST_DRAIN_TIMEOUT_S default): ECS stopTimeout
# is derived from it so the two agree.
DEFAULT_DRAIN_SECONDS = 30
ECS_MAX_STOP_TIMEOUT = 120  # ECS hard limit for stopTimeout
STOP_MARGIN_SECONDS = 5  # SIGKILL comes this long after the server's own drain deadline
# A task's stop runs in sequence: ALB deregistration delay, then SIGTERM, then the
# server's drain, then SIGKILL at stopTimeout. On spot all of it must fit the
# 2-minute interruption notice, less the seconds the notice takes to reach ECS.
SPOT_NOTICE_SECONDS = 120
SPOT_NOTICE_LAG_SECONDS = 10
# The server drains on its target's `draining` state (ops/target_drain.py), not on
# SIGTERM alone: it notices within one poll, then drains while the ALB still holds
# its connections, so the deregistration delay must cover poll + drain + this
# margin (the API call's latency, live sessions' close handshakes).
DRAIN_NOTICE_MARGIN_SECONDS = 5
KEEPALIVE_MARGIN_SECONDS = 5  # the server's keep-alive outlives the ALB's idle timeout by this


@dataclass(frozen=True)
class StackConfig:
    # --- compute ---
    # Mixed types are the design's answer to spot interruption: one T4, A10G or L4
    # each, all ".xlarge" (4 vCPU, 16 GiB), so one task definition fits every type.
    instance_types: tuple[str, ...] = ("g4dn.xlarge", "g5.xlarge", "g6.xlarge")
    # ECS GPU-optimised AMI family. AL2 reached end of support on 2026-06-30.
    ami: Literal["al2", "al2023"] = "al2023"
    on_demand_base: int = 1  # instances always on demand (the floor that spot reclaim can't take)
    on_demand_percent_above_base: int = 50  # the rest: this share on demand, the remainder spot
    min_tasks: int = 1
    max_tasks: int = 10  # `voxhost plan` prints the value a plan needs
    # The group may hold this many instances per task: a rolling deploy (100/200%)
    # starts the new tasks before the old stop, and a spot replacement (capacity
    # rebalance) launches before the old instance goes, both at full scale.
    instance_headroom: float = 2.0
    task_cpu: int = 4096  # 4 vCPU
    task_memory_mib: int = 15 * 1024  # 15 GiB of the g4dn.xlarge's 16
    instance_volume_gb: int = 50
    # --- image and server ---
    image_repository: str = "voxhost"  # ECR repository name
    # No default: "latest" makes a rollback or a scale-out pull whatever was pushed
    # last. Empty: a CloudFormation parameter asks for it at deploy time.
    image_tag: str = ""
    stt_models: str = "large-v3-turbo"
    # Where hub models are downloaded and cached: EFS (shared by all tasks, downloaded
    # once). Empty: the image's own path, for an image built with BAKE_MODEL.
    stt_download_root: str = "/mnt/efs/models"
    # Models without a model hub at run time (egress=endpoints has no internet): an
    # init container syncs s3://<models_bucket>/models/ onto EFS before the server
    # starts, and the server reads only its cache (HF_HUB_OFFLINE). Empty: the
    # first task downloads from the hub through the NAT gateway.
    models_bucket: str = ""
    # The AWS CLI image that syncs, mirrored into this account's ECR (docs/deploy.md
    # step 9): public registries are out of reach without internet.
    models_sync_repository: str = "aws-cli"
    models_sync_tag: str = "2.17.0"
    container_port: int = 8000
    drain_seconds: int = DEFAULT_DRAIN_SECONDS
    # The ALB's deregistration delay comes first in a stop (before SIGTERM): REST
    # requests already sent finish in it; it plus stopTimeout fits the spot notice.
    deregistration_delay_seconds: int = 60
    # How often the server polls its target's health (VOXHOST_DRAIN_POLL_INTERVAL_S).
    # Every task calls DescribeTargetHealth this often: 10 tasks at 5 s are 2 calls/s.
    drain_poll_seconds: int = 5
    extra_env: dict[str, str] = field(default_factory=dict)
    # --- network and edge ---
    egress: Literal["nat", "endpoints"] = "nat"  # NAT gateway, or VPC endpoints only (no internet)
    max_azs: int = 3  # more AZs, more spot pools for the mixed instance types
    certificate_arn: str | None = None  # None: a CloudFormation parameter asks for it
    alb_idle_timeout_seconds: int = 300
    # ALB access logs write every request line, query string included, and browser
    # WebSocket clients can only send their key as `?api_key=`: no ALB setting redacts
    # it. Off by default; the WAF log (query string and Authorization redacted) is the
    # request log instead. On: keys in those URLs reach S3 for 90 days.
    alb_access_logs: bool = False
    # Per IP. A studio backend proxying many players is one IP: 2,000 (WAF's common
    # example) throttles it; 20,000 per 5 minutes (~67/s) still stops a flood.
    waf_rate_limit_per_5min: int = 20_000
    # Paths exempt from the common rule set's 8 KB body rule: audio uploads (up to
    # 25 MB) and TTS input (4,096 characters of Japanese is ~12 KB of JSON).
    # The server caps each (VOXHOST_MAX_UPLOAD_BYTES, VOXHOST_MAX_TEXT_CHARS).
    body_size_exempt_paths: tuple[str, ...] = ("/v1/audio/transcriptions", "/v1/audio/translations",
                                               "/v1/audio/speech")
    # The common rule set blocks requests without a User-Agent; game-engine HTTP
    # clients often send none, so by default that rule only counts.
    waf_block_missing_user_agent: bool = False
    # --- metrics (the serving area's EMF) ---
    metric_namespace: str = "voxhost"
    service_name: str = "voxhost"
    queue_metric: str = "QueueDepth"
    requests_metric: str = "Requests"
    errors_metric: str = "ErrorCount"
    latency_metric: str = "Latency"
    cost_metric: str = "CostUSD"
    # --- autoscaling ---
    scale_out_queue_per_task: float = 10.0  # target backlog per (desired) task
    # A new task serves after a GPU instance starts, pulls the image and loads a
    # model from EFS: minutes. Scale-out waits this long before adding more.
    task_start_seconds: int = 300
    scale_in_queue_per_task: float = 2.0
    scale_in_minutes: int = 10  # quiet minutes before tasks go
    scale_in_percent: int = 50  # of the tasks, at least one, each cooldown while quiet
    scale_in_cooldown_seconds: int = 300
    error_rate_percent: float = 5.0
    alb_5xx_per_5min: int = 10  # ALB-level and target 5xx counts before an alarm
    stt_latency_target_ms: float = 2000.0
    tts_latency_target_ms: float = 3000.0
    alarm_email: str | None = None
    # AWS Budget on this stack's monthly cost (the design's "cost budgets"):
    # alerts at 80% actual and 100% forecast. Set it from `voxhost plan`'s total.
    budget_usd_per_month: float = 1000.0
    log_retention_days: int = 30
    # ECS Exec into tasks (runbook step 10: `voxhost bench` on the real GPU). Off:
    # a shell into production is opened on purpose, for a validation, then closed.
    ecs_exec: bool = False

    @property
    def stop_timeout_seconds(self) -> int:
        return min(ECS_MAX_STOP_TIMEOUT, self.drain_seconds + STOP_MARGIN_SECONDS)

    @property
    def max_instances(self) -> int:
        return max(self.max_tasks, int(self.max_tasks * self.instance_headroom))

    @property
    def keepalive_seconds(self) -> int:
        return self.alb_idle_timeout_seconds + KEEPALIVE_MARGIN_SECONDS

    def __post_init__(self) -> None:
        if not 1 <= self.min_tasks <= self.max_tasks:
            raise ValueError("need 1 <= min_tasks <= max_tasks")
        if self.drain_seconds + STOP_MARGIN_SECONDS > ECS_MAX_STOP_TIMEOUT:
            raise ValueError(f"drain_seconds must leave {STOP_MARGIN_SECONDS}s under ECS's "
                             f"{ECS_MAX_STOP_TIMEOUT}s stopTimeout limit")
        if not 0 <= self.on_demand_percent_above_base <= 100:
            raise ValueError("on_demand_percent_above_base is a percentage")
        if self.scale_in_queue_per_task >= self.scale_out_queue_per_task:
            raise ValueError("scale-in threshold must sit below the scale-out threshold")
        if not self.instance_types:
            raise ValueError("instance_types must name at least one type")
        if self.instance_headroom < 1:
            raise ValueError("instance_headroom must be at least 1 (one instance per task)")
        if self.deregistration_delay_seconds + self.stop_timeout_seconds > \
                SPOT_NOTICE_SECONDS - SPOT_NOTICE_LAG_SECONDS:
            raise ValueError(f"deregistration_delay_seconds + stopTimeout must fit the {SPOT_NOTICE_SECONDS}s spot "
                             f"notice less {SPOT_NOTICE_LAG_SECONDS}s")

        if self.deregistration_delay_seconds < self.drain_notice_seconds:
            raise ValueError(f"deregistration_delay_seconds must cover drain_poll_seconds + drain_seconds + "
                             f"{DRAIN_NOTICE_MARGIN_SECONDS}s ({self.drain_notice_seconds}s): live sessions must "
                             "close before the ALB cuts them")

    @property
    def drain_notice_seconds(self) -> int:
        """Deregistration to drained, at worst: one poll, the drain, the margin."""
        return self.drain_poll_seconds + self.drain_seconds + DRAIN_NOTICE_MARGIN_SECONDS

    @classmethod
    def from_context(cls, node) -> "StackConfig":
        """Read each field from CDK context; strings from `-c` are parsed as JSON where they can be."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = node.try_get_context(f.name)
            if raw is None:
                continue
            if isinstance(raw, str) and f.type not in ("str", "str | None") and not f.type.startswith("Literal"):
                try:
                    raw = json.loads(raw)
                except json.JSONDecodeError:
                    if f.type.startswith("tuple"):
                        raw = [item.strip() for item in raw.split(",") if item.strip()]
            if f.type.startswith("tuple") and isinstance(raw, list):
                raw = tuple(raw)
            values[f.name] = raw
        return cls(**values)
