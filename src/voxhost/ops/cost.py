"""The one cost model: prices and the arithmetic that turns compute into dollars.

Used by the per-request cost metric/headers (serving) and by the planner
(deploy). Prices are list prices (USD); change them here only.
"""

from __future__ import annotations

from dataclasses import dataclass

# Cloud APIs voxhost replaces (USD).
CLOUD_PRICES = {
    "whisper-1_per_minute": 0.006,
    "gpt-4o-transcribe_per_minute": 0.006,
    "gpt-4o-mini-transcribe_per_minute": 0.003,
    "tts-1_per_million_chars": 15.0,
    "tts-1-hd_per_million_chars": 30.0,
}



def cloud_usd(route: str, model: str | None, *, audio_seconds: float = 0.0, characters: int = 0) -> float:
    """The cloud API's list price for one request (gateway: upstream-served
    work and shadow comparisons). Unknown model names price as whisper-1 / tts-1."""
    if route == "speech":
        per_million = CLOUD_PRICES.get(f"{model}_per_million_chars", CLOUD_PRICES["tts-1_per_million_chars"])
        return characters * per_million / 1e6
    per_minute = CLOUD_PRICES.get(f"{model}_per_minute", CLOUD_PRICES["whisper-1_per_minute"])
    return audio_seconds / 60.0 * per_minute


# On-demand instance prices, us-east-1 (USD per hour).
INSTANCE_PRICES_PER_HOUR = {
    "g4dn.xlarge": 0.526,
    "g4dn.2xlarge": 0.752,
    "g5.xlarge": 1.006,
    "g6.xlarge": 0.805,
    "c7i.xlarge": 0.1785,
    "c6i.xlarge": 0.17,
}


# The deploy stack mixes one-GPU ".xlarge" types, and a task can't read its
# instance type (instance metadata is blocked for tasks): the GPU it sees names it.
XLARGE_BY_GPU = {"T4": "g4dn.xlarge", "A10G": "g5.xlarge", "L4": "g6.xlarge"}
AUTO = "auto"


def instance_type_for_gpu(gpu_name: str) -> str | None:
    """NVML's name ("Tesla T4", "NVIDIA A10G", "NVIDIA L4") -> the .xlarge that carries it."""
    words = gpu_name.upper().replace("-", " ").split()
    return next((itype for gpu, itype in XLARGE_BY_GPU.items() if gpu in words), None)


def gpu_name() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        name = pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        return name.decode() if isinstance(name, bytes) else name
    except Exception:  # no library, driver or GPU
        return None


def resolve_instance_type(instance_type: str, detect=gpu_name) -> str:
    """`auto`: the instance type this process's GPU implies (g4dn.xlarge without a known GPU)."""
    if instance_type != AUTO:
        return instance_type
    name = detect()
    return (instance_type_for_gpu(name) if name else None) or "g4dn.xlarge"


@dataclass(frozen=True)
class ComputeCost:
    instance_type: str = "g4dn.xlarge"
    price_per_hour: float | None = None  # None: look up INSTANCE_PRICES_PER_HOUR

    @property
    def hourly(self) -> float:
        if self.price_per_hour is not None:
            return self.price_per_hour
        return INSTANCE_PRICES_PER_HOUR[self.instance_type]

    def request_usd(self, compute_seconds: float, parallelism: float = 1.0) -> float:
        """Dollars of instance time one request used: its compute seconds
        times the hourly price, shared by the requests the engine runs at once."""
        return compute_seconds * self.hourly / 3600.0 / max(parallelism, 1.0)


# --- Deployment economics (planner). Additive: the names above stay stable. ---
# AWS list prices, us-east-1, USD, checked 2026-11. The planner reads these;
# a plan YAML may override any of them.

HOURS_PER_MONTH = 730.0  # AWS's billing month

# The GPU each instance type carries (planner matches measured throughput by GPU).
INSTANCE_GPUS = {
    "g4dn.xlarge": "T4",
    "g4dn.2xlarge": "T4",
    "g5.xlarge": "A10G",
    "g6.xlarge": "L4",
    "c7i.xlarge": "cpu",
    "c6i.xlarge": "cpu",
}

# vCPUs per instance type: the planner's CPU budget (TTS and live sessions run on
# the CPU). Every GPU type the stack mixes is an .xlarge: 4 vCPU, 16 GiB.
INSTANCE_VCPUS = {
    "g4dn.xlarge": 4,
    "g4dn.2xlarge": 8,
    "g5.xlarge": 4,
    "g6.xlarge": 4,
    "c7i.xlarge": 4,
    "c6i.xlarge": 4,
}

# Memory (GiB) per instance type: the planner's memory budget (each server
# worker holds its models; each live session its buffers).
INSTANCE_MEMORY_GB = {
    "g4dn.xlarge": 16,
    "g4dn.2xlarge": 32,
    "g5.xlarge": 16,
    "g6.xlarge": 16,
    "c7i.xlarge": 8,
    "c6i.xlarge": 8,
}

# Typical discounts off the on-demand price (assumptions, not quotes: spot
# floats hourly; g4dn.xlarge spot in us-east-1 has mostly sat 55-65% off;
# 1-year no-upfront Standard RI is about 37% off).
SPOT_DISCOUNT = 0.60
RESERVED_DISCOUNT = 0.37

AWS_PRICES = {
    "alb_per_hour": 0.0225,
    "alb_per_lcu_hour": 0.008,  # 1 LCU = 1 GB/h processed to EC2 targets (the dimension audio hits)
    "nat_gateway_per_hour": 0.045,
    "nat_per_gb": 0.045,
    "vpc_interface_endpoint_per_az_hour": 0.01,
    "vpc_endpoint_per_gb": 0.01,
    "efs_standard_per_gb_month": 0.30,
    "ebs_gp3_per_gb_month": 0.08,
    "data_transfer_out_per_gb": 0.09,  # first 10 TB/month to the internet
    "cloudwatch_logs_ingest_per_gb": 0.50,
    "cloudwatch_metric_per_month": 0.30,
    "cloudwatch_alarm_per_month": 0.10,
    "cloudwatch_dashboard_per_month": 3.00,
    "waf_web_acl_per_month": 5.00,
    "waf_rule_per_month": 1.00,  # per rule or managed rule group
    "waf_per_million_requests": 0.60,
    "secrets_manager_per_secret_month": 0.40,
    "kms_key_per_month": 1.00,
    # Global routing (several regions): Route 53 latency records with HTTPS health checks.
    "route53_hosted_zone_per_month": 0.50,
    "route53_latency_per_million_queries": 0.70,
    "route53_health_check_per_month": 1.50,  # AWS endpoint $0.50 + HTTPS $1.00
    # Pre-rendered lines on a CDN: CloudFront from a private S3 origin (origin access control).
    "cloudfront_per_gb": 0.085,  # first 10 TB/month, North America and Europe
    "cloudfront_per_10k_requests": 0.01,  # HTTPS
    "s3_standard_per_gb_month": 0.023,
}


def blended_hourly(on_demand: float, spot_share: float = 0.0, spot_discount: float = SPOT_DISCOUNT,
                   reserved_share: float = 0.0, reserved_discount: float = RESERVED_DISCOUNT) -> float:
    """Average hourly price of a fleet that runs `spot_share` of its hours on
    spot, `reserved_share` on reserved instances and the rest on demand."""
    if not (0.0 <= spot_share <= 1.0 and 0.0 <= reserved_share <= 1.0 and spot_share + reserved_share <= 1.0):
        raise ValueError("spot_share and reserved_share must be in [0, 1] and sum to at most 1")
    rest = 1.0 - spot_share - reserved_share
    return on_demand * (rest + spot_share * (1.0 - spot_discount) + reserved_share * (1.0 - reserved_discount))
