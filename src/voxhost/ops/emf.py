"""CloudWatch Embedded Metric Format (EMF) lines on stdout (opt-in).

Every `interval_s` one JSON line per the EMF specification: `_aws.Timestamp`,
`_aws.CloudWatchMetrics[{Namespace, Dimensions, Metrics[{Name, Unit}]}]`,
dimension and metric values at the top level. CloudWatch Logs turns the
line into metrics without an agent or API calls. Dimension sets are
[ServiceName] (what the autoscaling alarms use) and [ServiceName, TaskId];
latency also goes out per route, one more line per route with [ServiceName,
Route], so STT and TTS read against their own targets.

The fleet scales and places on these (deploy/aws monitoring.py): LiveSessions and
LiveSessionCapacity (the sessions the task admits: its Maximum over the service is one
task's capacity), SttQueued/SttInFlight and TtsQueued/TtsInFlight (each pool's work),
and LiveSessionsRefused (sessions refused for want of a slot in the interval: demand
the fleet could not place).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from typing import TextIO

from voxhost.ops.context import RequestContext

MAX_VALUES = 100  # EMF: at most 100 values in one metric array

UNITS = {
    "QueueDepth": "Count",
    "InFlight": "Count",
    "LiveSessions": "Count",
    "LiveSessionCapacity": "Count",
    "LiveSessionsRefused": "Count",
    "SttInFlight": "Count",
    "SttQueued": "Count",
    "TtsInFlight": "Count",
    "TtsQueued": "Count",
    "Requests": "Count",
    "ErrorCount": "Count",
    "RejectedCount": "Count",
    "Latency": "Milliseconds",
    "CostUSD": "None",
}


def task_id(environ=os.environ) -> str:
    """The ECS task id (from the task metadata endpoint), else the hostname."""
    uri = environ.get("ECS_CONTAINER_METADATA_URI_V4")
    if uri:
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/task", timeout=1.0) as resp:  # noqa: S310 - link-local ECS endpoint
                arn = json.load(resp).get("TaskARN", "")
            if arn:
                return arn.rsplit("/", 1)[-1]
        except Exception:
            pass
        return uri.rstrip("/").rsplit("/", 1)[-1]  # the container id: unique per task too
    return socket.gethostname()


class EmfEmitter:
    def __init__(self, *, namespace: str, service_name: str, task: str,
                 gauges: Callable[[], dict[str, float]], out: TextIO | None = None,
                 counters: Callable[[], dict[str, float]] | None = None):
        self.namespace = namespace
        self.service_name = service_name
        self.task = task
        self.gauges = gauges  # QueueDepth, InFlight, LiveSessions...: read at emit time
        # Cumulative counts kept elsewhere (Prometheus counters): each line carries the interval's increase.
        self.counters = counters or dict
        self._counted = dict(self.counters())
        self.out = out
        self._reset()

    def _reset(self) -> None:
        self.latencies_ms: list[float] = []
        self.route_latencies_ms: dict[str, list[float]] = {}
        self.requests = 0
        self.errors = 0
        self.rejected = 0
        self.cost = 0.0

    def record(self, ctx: RequestContext, status: int, seconds: float) -> None:
        self.requests += 1
        if status in (429, 503):
            self.rejected += 1
        elif status >= 500:
            self.errors += 1
        # 101: a WebSocket session's whole length, not a request's latency.
        if status < 400 and status != 101 and len(self.latencies_ms) < 10_000:
            self.latencies_ms.append(seconds * 1000.0)
            self.route_latencies_ms.setdefault(ctx.route, []).append(seconds * 1000.0)
        self.cost += ctx.cost_usd

    def document(self, now: float | None = None) -> dict:
        values: dict[str, float | list[float]] = dict(self.gauges())
        totals = self.counters()
        values.update({name: max(0.0, total - self._counted.get(name, 0.0)) for name, total in totals.items()})
        self._counted = dict(totals)
        values.update(Requests=self.requests, ErrorCount=self.errors, RejectedCount=self.rejected,
                      CostUSD=round(self.cost, 9))
        if self.latencies_ms:
            values["Latency"] = _downsample(self.latencies_ms)
        doc = {
            "_aws": {
                "Timestamp": int((now if now is not None else time.time()) * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [["ServiceName"], ["ServiceName", "TaskId"]],
                    "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in values],
                }],
            },
            "ServiceName": self.service_name,
            "TaskId": self.task,
        }
        return {**doc, **values}

    def route_documents(self, now: float | None = None) -> list[dict]:
        timestamp = int((now if now is not None else time.time()) * 1000)
        return [{
            "_aws": {"Timestamp": timestamp, "CloudWatchMetrics": [{
                "Namespace": self.namespace, "Dimensions": [["ServiceName", "Route"]],
                "Metrics": [{"Name": "Latency", "Unit": UNITS["Latency"]}]}]},
            "ServiceName": self.service_name, "Route": route, "Latency": _downsample(values),
        } for route, values in sorted(self.route_latencies_ms.items())]

    def emit(self) -> dict:
        now = time.time()
        doc = self.document(now)
        lines = [doc, *self.route_documents(now)]
        self._reset()
        out = self.out or sys.stdout
        out.write("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
        out.flush()
        return doc

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.emit()


def _downsample(values: list[float]) -> list[float]:
    """Keep the distribution's shape within EMF's 100-value limit."""
    if len(values) <= MAX_VALUES:
        return [round(v, 2) for v in values]
    ordered = sorted(values)
    step = (len(ordered) - 1) / (MAX_VALUES - 1)
    return [round(ordered[round(i * step)], 2) for i in range(MAX_VALUES)]
