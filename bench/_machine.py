"""Shared by the benchmarks: which machine, and how busy, a result was measured on."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine() -> dict:
    """The CPU and the load average (1, 5, 15 min) now, for a result's JSON."""
    return {"cpu": cpu_model(), "loadavg": os.getloadavg()}
