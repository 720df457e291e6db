"""Shared by the benchmarks: wait until a voxhost server answers /ready."""

from __future__ import annotations

import time

import httpx


def wait_ready(base_url: str, timeout: float = 300.0, interval: float = 0.3) -> bool:
    """True once GET /ready is 200; False if `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(base_url + "/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    return False
