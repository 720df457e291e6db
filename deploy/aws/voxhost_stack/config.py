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
    # Reserved capacity: this many instances of the first instance type kept on demand and
    # running (the group's minimum, the service's floor), so Reserved Instances or a Savings Plan
    # bought for them always apply; `voxhost plan` sizes it ("reserved base": the fleet the
    # average load keeps running). 0: none.
    reserved_base: int = 0
    # Two tasks in two AZs at least: a live game never has all its players on one instance
    # or in one AZ, and a spot reclaim or a deploy always leaves a task to reconnect to.
    min_tasks: int = 2
    max_tasks: int = 10  # `voxhost plan` prints the value a plan needs
    # The group may hold this many instances per task: a rolling deploy (100/200%)
    # starts the new tasks before the old stop, and a spot replacement (capacity
    # rebalance) launches before the old instance goes, both at full scale.
    instance_headroom: float = 2.0
    task_cpu: int = 4096  # 4 vCPU
    # The task's hard memory limit. None: sized from the instances (memory_limit_mib): what
    # the smallest type in the group registers with ECS, less host_reserved_memory_mib.
    task_memory_mib: int | None = None
    # ECS_RESERVED_MEMORY: kept from tasks for the OS, dockerd, the ECS and CloudWatch agents
    # and the NVIDIA persistence daemon, so a task at its limit can't starve them.
    host_reserved_memory_mib: int = 1024
    # What the ECS agent registers is the kernel's MemTotal, below the installed GiB (AWS's
    # m4.large example: 7,985 of 8,192 MiB, 97.5%); 95% leaves margin for GPU AMIs. Check a
    # real instance with `aws ecs describe-container-instances` (docs/deploy.md) and set
    # registered_memory_mib to what it reports.
    registered_memory_fraction: float = 0.95
    registered_memory_mib: int | None = None
    # Host memory a GPU task needs beyond the server's measured footprint: the CUDA context,
    # cuBLAS/cuDNN handles and pinned buffers (assumed; see docs/deploy.md "Memory").
    gpu_host_overhead_mib: int = 1536
    instance_volume_gb: int = 50
    # gp3 throughput of the root volume (125 MiB/s is included; each MiB/s above costs
    # $0.04 a month): it bounds how fast a new instance extracts the image (startup.py).
    instance_volume_throughput_mibps: int = 125
    # --- layout: one combined service, or dedicated STT and TTS pools ---
    # combined: every task runs STT and TTS on one GPU instance. dedicated: STT on the GPU
    # instances above, TTS on its own pool (CPU instances by default: the engines run on the
    # CPU, which `voxhost plan` prices; "gpu" puts the TTS pool on the GPU types too), the ALB
    # routing by path and each pool scaling on its own signal.
    pools: Literal["combined", "dedicated"] = "combined"
    tts_device: Literal["cpu", "gpu"] = "cpu"
    tts_instance_types: tuple[str, ...] = ("c7i.xlarge", "c6i.xlarge")
    tts_min_tasks: int = 2
    tts_max_tasks: int = 10
    # --- several regions ---
    # One app deploys a stack per region (app.py); the first is the primary: it owns the API-keys
    # secret, which Secrets Manager replicates to the others within seconds. Empty: one stack in
    # CDK_DEFAULT_REGION.
    regions: tuple[str, ...] = ()
    # Global routing: with a Route 53 hosted zone, each regional stack adds a latency record for
    # domain_name (an alias to its ALB) with an HTTPS health check on /ready, so players resolve
    # to the nearest healthy region.
    domain_name: str = ""
    hosted_zone_id: str = ""
    # Pre-rendered lines on a CDN: a private S3 bucket behind CloudFront with origin access
    # control (cdn.py), filled by `voxhost cache publish`.
    cdn: bool = False
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
    # Versioned models: with models_bucket, the release under s3://<bucket>/models/<version>/
    # (its manifest.json from `voxhost models-manifest`) is synced to /mnt/efs/models/<version>
    # and checked file by file at start (VOXHOST_MODELS_MANIFEST). Changing it rolls the service:
    # new tasks on the new version, old ones kept until the new are healthy, rolled back by the
    # circuit breaker (a task that fails its manifest never turns ready) or the error alarms.
    models_version: str = ""
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
    egress: Literal["nat", "endpoints"] = "nat"  # NAT gateways, or VPC endpoints only (no internet)
    # One NAT gateway per AZ (AWS's recommendation): with one, an AZ outage cuts every other
    # AZ's tasks off from ECR, logs and the model hub. False: one, for a test stack.
    nat_per_az: bool = True
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
    # --- autoscaling: the larger of sessions per session capacity and work per target ---
    # Live sessions held at this share of the fleet's session capacity: the rest is room
    # for reconnects (a lost task's players land on the others) and for growth while a
    # new task starts.
    session_target_percent: float = 70.0
    # Jobs queued or running (REST STT, TTS) per desired task that the fleet holds.
    scale_out_work_per_task: float = 10.0
    # A session refused for want of a slot is a player the fleet could not place; the
    # client retries with backoff, so each waiting player is counted about this many
    # times a minute (assumed; over-counting adds a task sooner, and scale-in trims it).
    refusals_per_waiting_player: float = 4.0
    # A new task serves after a GPU instance starts, pulls the image and loads a model
    # from EFS (the estimate: voxhost_stack/startup.py, docs/deploy.md "Start time").
    # Scale-out waits this long before adding more. None: that estimate.
    task_start_seconds: int | None = None
    # Scale in only when both are low: the fleet's load (the larger of the two, in % of
    # its target) below this for scale_in_minutes; removing scale_in_percent of the tasks
    # then leaves the load at most scale_in_load_percent / (1 - scale_in_percent) of target.
    scale_in_load_percent: float = 40.0
    scale_in_minutes: int = 10  # quiet minutes before tasks go
    scale_in_percent: int = 50  # of the tasks, at least one, each cooldown while quiet
    scale_in_cooldown_seconds: int = 300
    # ECS task scale-in protection while a task holds live sessions
    # (VOXHOST_TASK_PROTECTION_MINUTES; the task role may call the agent's endpoint).
    task_protection_minutes: int = 30
    error_rate_percent: float = 5.0
    alb_5xx_per_5min: int = 10  # ALB-level and target 5xx counts before an alarm
    stt_latency_target_ms: float = 2000.0
    tts_latency_target_ms: float = 3000.0
    latency_alarm_minutes: int = 5  # p95 above its target this many minutes in a row
    sessions_refused_per_5min: int = 10  # live sessions refused for want of a slot
    gpu_busy_percent: float = 90.0
    gpu_busy_minutes: int = 15
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
    def start_seconds(self) -> int:
        """Seconds from a scale-out to a serving task (the scale-out cooldown)."""
        from voxhost_stack.startup import estimate

        return self.task_start_seconds if self.task_start_seconds is not None else estimate(self).total_seconds

    def registered_mib(self, instance_type: str) -> int:
        """Memory the ECS agent offers tasks on one instance, after ECS_RESERVED_MEMORY."""
        from voxhost.ops.cost import INSTANCE_MEMORY_GB

        if self.registered_memory_mib is not None:
            total = self.registered_memory_mib
        else:
            try:
                total = int(INSTANCE_MEMORY_GB[instance_type] * 1024 * self.registered_memory_fraction)
            except KeyError:
                raise ValueError(f"no memory size for {instance_type} in voxhost.ops.cost.INSTANCE_MEMORY_GB; "
                                 "set registered_memory_mib") from None
        return total - self.host_reserved_memory_mib

    def memory_limit_mib(self, instance_types: tuple[str, ...] | None = None) -> int:
        """The hard limit: the smallest registration in the group, in whole 256 MiB steps."""
        if self.task_memory_mib is not None:
            return self.task_memory_mib
        smallest = min(self.registered_mib(t) for t in (instance_types or self.instance_types))
        return smallest // 256 * 256

    def memory_reservation_mib(self, gpu: bool = True) -> int:
        """The soft reservation: the measured server (planner MemoryCost: each worker's models after
        warm-up, each live session's buffers) plus the GPU runtime's host memory."""
        from voxhost.planner.inputs import MemoryCost

        m = MemoryCost()
        server_mib = (m.server_gb * m.workers + 16 * m.gb_per_live_stream) * 1e9 / 2**20
        need = server_mib + (self.gpu_host_overhead_mib if gpu else 0)
        return int(-(-need // 256) * 256)

    @property
    def on_demand_base_capacity(self) -> int:
        return max(self.on_demand_base, self.reserved_base)

    @property
    def floor_tasks(self) -> int:
        """The service's minimum: the configured one, or the reserved base if larger (paid for anyway)."""
        return max(self.min_tasks, self.reserved_base)

    @property
    def max_instances(self) -> int:
        return max(self.max_tasks, int(self.max_tasks * self.instance_headroom))

    @property
    def keepalive_seconds(self) -> int:
        return self.alb_idle_timeout_seconds + KEEPALIVE_MARGIN_SECONDS

    def __post_init__(self) -> None:
        if not 1 <= self.min_tasks <= self.max_tasks:
            raise ValueError("need 1 <= min_tasks <= max_tasks")
        if bool(self.domain_name) != bool(self.hosted_zone_id):
            raise ValueError("domain_name and hosted_zone_id go together (the latency records need both)")
        if len(set(self.regions)) != len(self.regions):
            raise ValueError("regions lists a region twice")
        if len(self.regions) > 1 and self.egress == "endpoints":
            raise ValueError("several regions need egress=nat: each region's voices sync reaches the primary "
                             "region's bucket, which an S3 gateway endpoint (same region only) can't")
        if not 0 <= self.reserved_base <= self.max_tasks:
            raise ValueError("reserved_base must be between 0 and max_tasks")
        if self.drain_seconds + STOP_MARGIN_SECONDS > ECS_MAX_STOP_TIMEOUT:
            raise ValueError(f"drain_seconds must leave {STOP_MARGIN_SECONDS}s under ECS's "
                             f"{ECS_MAX_STOP_TIMEOUT}s stopTimeout limit")
        if not 0 <= self.on_demand_percent_above_base <= 100:
            raise ValueError("on_demand_percent_above_base is a percentage")
        if not 0 < self.session_target_percent <= 100:
            raise ValueError("session_target_percent is a share of the session capacity (0-100]")
        if self.scale_in_load_percent / (1 - self.scale_in_percent / 100.0) >= 100.0:
            raise ValueError("scale-in must leave the load below its target (scale_in_load_percent / "
                             "(1 - scale_in_percent/100) < 100), or each scale-in is undone by a scale-out")
        if not self.instance_types:
            raise ValueError("instance_types must name at least one type")
        if self.memory_limit_mib() <= self.memory_reservation_mib():
            raise ValueError(f"the task's memory limit ({self.memory_limit_mib()} MiB) must exceed what the server "
                             f"needs ({self.memory_reservation_mib()} MiB)")
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
    def from_context(cls, node) -> StackConfig:
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
