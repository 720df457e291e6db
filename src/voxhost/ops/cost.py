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

# On-demand instance prices, us-east-1 (USD per hour).
INSTANCE_PRICES_PER_HOUR = {
    "g4dn.xlarge": 0.526,
    "g4dn.2xlarge": 0.752,
    "g5.xlarge": 1.006,
    "g6.xlarge": 0.805,
    "c7i.xlarge": 0.1785,
}


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
