"""Prometheus metrics (GET /metrics) for autoscaling, SLOs and cost.

One registry per app (not the global one), so several apps in one process
(tests, benchmarks) never collide. With several worker processes
(VOXHOST_WORKERS, api/supervisor.py) PROMETHEUS_MULTIPROC_DIR is set: every
worker writes its values there and `expose()` reads all workers' files, so
/metrics reports the whole group whichever worker answers; the gauges are
summed over live workers ("livesum"). The scheduler reports through the
SchedulerObserver methods below; the HTTP middleware reports each finished
request with `observe_request`. GPU metrics come from NVML when a GPU is
present and are simply absent otherwise.
"""

from __future__ import annotations

import logging
import os
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from voxhost.ops.context import RequestContext

log = logging.getLogger("voxhost.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Game traffic: most jobs are sub-second; the tail matters for live sessions.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SUM_LIVE: Final = "livesum"  # a gauge's value over several workers: the sum over those still running


class Metrics:
    def __init__(self, *, gpu: bool = True):
        self.registry = r = CollectorRegistry()
        self.requests = Counter("voxhost_requests", "HTTP requests finished, by route and status.",
                                ["route", "method", "status"], registry=r)
        self.errors = Counter("voxhost_errors", "HTTP requests that ended in an error (status >= 400).",
                              ["route", "status", "kind"], registry=r)
        self.latency = Histogram("voxhost_request_latency_seconds", "Total request latency.", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("voxhost_queue_wait_seconds", "Time a request's jobs waited in the scheduler.",
                                    ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute = Histogram("voxhost_compute_seconds", "Engine compute time of a request's jobs.",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.cost = Counter("voxhost_cost_usd", "Estimated instance cost of requests in USD.", ["route"], registry=r)
        self.http_in_flight = Gauge("voxhost_http_in_flight", "HTTP requests being served now.", registry=r,
                                    multiprocess_mode=SUM_LIVE)
        self.audio_seconds = Counter("voxhost_audio_seconds", "Seconds of audio transcribed.", ["route"], registry=r)
        self.characters = Counter("voxhost_tts_characters", "Characters synthesised.", ["route"], registry=r)
        self.cache_hits = Counter("voxhost_cache_hits", "Cache hits.", ["route"], registry=r)
        self.cache_misses = Counter("voxhost_cache_misses", "Cache misses.", ["route"], registry=r)
        self.abandoned = Counter("voxhost_requests_abandoned", "Requests whose client hung up before the "
                                 "response; their work was cancelled and is not priced.", ["route"], registry=r)
        self.live_sessions = Gauge("voxhost_live_sessions", "Live (WebSocket) sessions open now.", registry=r,
                                   multiprocess_mode=SUM_LIVE)
        self.sessions_rejected = Counter("voxhost_live_sessions_rejected", "Live sessions refused (1013).",
                                         ["reason"], registry=r)
        # The fleet's scaling and placement signals (deploy/aws monitoring.py): sessions against
        # the sessions this process admits, and REST/TTS work apart, so each pool scales on its own.
        self.live_session_capacity = Gauge(
            "voxhost_live_session_capacity", "Live sessions this process admits (effective max_live_sessions).",
            registry=r, multiprocess_mode=SUM_LIVE)
        self.stt_in_flight = Gauge("voxhost_stt_in_flight", "Speech-to-text jobs (or batches) running now.",
                                   registry=r, multiprocess_mode=SUM_LIVE)
        self.stt_queued = Gauge("voxhost_stt_queued", "Speech-to-text jobs waiting in the scheduler.", registry=r,
                                multiprocess_mode=SUM_LIVE)
        self.tts_in_flight = Gauge("voxhost_tts_in_flight", "Text-to-speech jobs running now.", registry=r,
                                   multiprocess_mode=SUM_LIVE)
        self.tts_queued = Gauge("voxhost_tts_queued", "Text-to-speech jobs waiting in the scheduler.", registry=r,
                                multiprocess_mode=SUM_LIVE)
        self._queued: dict[tuple[str, str], float] = {}
        self._running: dict[str, float] = {}
        self.speculative_finals = Counter(
            "voxhost_live_speculative_finals", "Final decodes started during a pause: used as the turn's "
            "final, or dropped because speech resumed (wasted compute).", ["outcome"], registry=r)
        # scheduler
        self.queue_depth = Gauge("voxhost_queue_depth", "Jobs waiting, per engine and lane.",
                                 ["engine", "lane"], registry=r, multiprocess_mode=SUM_LIVE)
        self.in_flight = Gauge("voxhost_in_flight", "Jobs (or batches) running, per engine.", ["engine"], registry=r,
                               multiprocess_mode=SUM_LIVE)
        self.batch_size = Histogram("voxhost_batch_size", "Requests decoded together in one batch.", ["engine"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.job_wait = Histogram("voxhost_scheduler_wait_seconds", "Queue wait per job, per engine and lane.",
                                  ["engine", "lane"], buckets=LATENCY_BUCKETS, registry=r)
        self.audio_memory = Gauge("voxhost_audio_memory_bytes", "Decoded audio held by REST requests "
                                  "(decoding, queued, transcribed), against VOXHOST_AUDIO_MEMORY_BUDGET_MB.",
                                  registry=r, multiprocess_mode=SUM_LIVE)
        self.rejections = Counter("voxhost_scheduler_rejections", "Jobs shed by the scheduler.",
                                  ["engine", "lane", "reason"], registry=r)
        self._gpu = None
        if gpu:
            collector = NvmlCollector()
            if collector.available:
                r.register(collector)
                self._gpu = collector
        self._emf = None  # set by attach_emf

    def attach_emf(self, emf) -> None:
        self._emf = emf

    # ---- SchedulerObserver ---------------------------------------------
    def queue_depth_changed(self, engine: str, lane: str, depth: int) -> None:
        self.queue_depth.labels(engine, lane).set(depth)
        self._queued[(engine, lane)] = depth
        self.stt_queued.set(self.work("stt", queued=True))
        self.tts_queued.set(self.work("tts", queued=True))

    def in_flight_changed(self, engine: str, count: int) -> None:
        self.in_flight.labels(engine).set(count)
        self._running[engine] = count
        self.stt_in_flight.set(self.work("stt", queued=False))
        self.tts_in_flight.set(self.work("tts", queued=False))

    def work(self, kind: str, *, queued: bool) -> float:
        """Jobs queued or running for one kind of work: executors are named `stt:<model>` and `tts`."""
        if queued:
            return sum(n for (engine, _), n in self._queued.items() if _kind(engine) == kind)
        return sum(n for engine, n in self._running.items() if _kind(engine) == kind)

    def set_session_capacity(self, sessions: int) -> None:
        self.live_session_capacity.set(sessions)

    def sessions_refused(self) -> float:
        """Live sessions refused for want of a slot so far (not drain or rate limits): demand the
        fleet could not place, so the scaling signal counts it."""
        return sum(s.value for m in self.sessions_rejected.collect() for s in m.samples
                   if s.name.endswith("_total") and s.labels.get("reason") == "capacity")

    def observe_batch(self, engine: str, size: int) -> None:
        self.batch_size.labels(engine).observe(size)

    def job_done(self, engine: str, lane: str, queue_s: float, compute_s: float) -> None:
        self.job_wait.labels(engine, lane).observe(queue_s)

    def rejected(self, engine: str, lane: str, reason: str) -> None:
        self.rejections.labels(engine, lane, reason).inc()

    def observer(self) -> SchedulerMetrics:
        return SchedulerMetrics(self)

    # ---- requests --------------------------------------------------------
    def observe_request(self, ctx: RequestContext, method: str, status: int, seconds: float) -> None:
        route = ctx.route
        self.requests.labels(route, method, str(status)).inc()
        if status >= 400:
            kind = "rejected" if status in (429, 503) else ("client" if status < 500 else "server")
            self.errors.labels(route, str(status), kind).inc()
        self.latency.labels(route).observe(seconds)
        if ctx.abandoned:
            self.abandoned.labels(route).inc()
            return
        if ctx.queue_seconds or ctx.compute_seconds:
            self.queue_wait.labels(route).observe(ctx.queue_seconds)
            self.compute.labels(route).observe(ctx.compute_seconds)
        if ctx.cost_usd:
            self.cost.labels(route).inc(ctx.cost_usd)
        if ctx.audio_seconds:
            self.audio_seconds.labels(route).inc(ctx.audio_seconds)
        if ctx.characters:
            self.characters.labels(route).inc(ctx.characters)
        if ctx.cache_hits:
            self.cache_hits.labels(route).inc(ctx.cache_hits)
        if ctx.cache_misses:
            self.cache_misses.labels(route).inc(ctx.cache_misses)
        if self._emf is not None:
            self._emf.record(ctx, status, seconds)

    def session_opened_or_closed(self, active: int) -> None:
        self.live_sessions.set(active)

    def expose(self) -> bytes:
        path = os.environ.get(MULTIPROC_ENV)
        if not path:
            return generate_latest(self.registry)
        group = CollectorRegistry()  # every worker's files, this one's included
        MultiProcessCollector(group, path=path)
        if self._gpu is not None:  # the GPU is the host's: read once, not summed per worker
            group.register(self._gpu)
        return generate_latest(group)

    # ---- read back (EMF, loadtest, tests) --------------------------------
    def total_queue_depth(self) -> float:
        return sum(s.value for m in self.queue_depth.collect() for s in m.samples)

    def total_in_flight(self) -> float:
        return sum(s.value for m in self.in_flight.collect() for s in m.samples)


def _kind(engine: str) -> str:
    return engine.split(":", 1)[0]


class SchedulerMetrics:
    """Adapter: the scheduler's observer protocol onto Metrics."""

    def __init__(self, metrics: Metrics):
        self.m = metrics

    def queue_depth(self, engine, lane, depth):
        self.m.queue_depth_changed(engine, lane, depth)

    def in_flight(self, engine, count):
        self.m.in_flight_changed(engine, count)

    def batch(self, engine, size):
        self.m.observe_batch(engine, size)

    def job_done(self, engine, lane, queue_s, compute_s):
        self.m.job_done(engine, lane, queue_s, compute_s)

    def rejected(self, engine, lane, reason):
        self.m.rejected(engine, lane, reason)


class NvmlCollector:
    """GPU utilisation and memory via NVML; not registered when there is no GPU."""

    def __init__(self):
        self.available = False
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._count = pynvml.nvmlDeviceGetCount()
            self.available = self._count > 0
        except Exception:  # no library, no driver, no GPU: not exported
            self._count = 0

    def collect(self):
        util = GaugeMetricFamily("voxhost_gpu_utilization_ratio", "GPU utilisation (0-1).", labels=["gpu"])
        used = GaugeMetricFamily("voxhost_gpu_memory_used_bytes", "GPU memory in use.", labels=["gpu"])
        total = GaugeMetricFamily("voxhost_gpu_memory_total_bytes", "GPU memory size.", labels=["gpu"])
        try:
            for i in range(self._count):
                handle = self._nvml.nvmlDeviceGetHandleByIndex(i)
                rates = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                memory = self._nvml.nvmlDeviceGetMemoryInfo(handle)
                util.add_metric([str(i)], rates.gpu / 100.0)
                used.add_metric([str(i)], float(memory.used))
                total.add_metric([str(i)], float(memory.total))
        except Exception as exc:  # a flaky driver must never break /metrics
            log.warning("NVML read failed: %s", exc)
            return
        yield util
        yield used
        yield total
