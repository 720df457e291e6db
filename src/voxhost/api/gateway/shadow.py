"""Shadow comparison: a sampled share of locally served requests is also sent
upstream, after the player has their answer, to measure agreement (WER of
the local transcript against the upstream's), latency and cost on each side.

Off the response path by construction: a comparison is a task started after
the local response's last byte was sent, bounded in number (a busy upstream
skips samples rather than piling up work), and its failures are counted,
never raised. Records hold figures only - no audio, no text - unless
VOXHOST_RETAIN_CONTENT=logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import jiwer

from voxhost.api.gateway.metrics import GatewayMetrics
from voxhost.api.gateway.upstream import Upstream, UpstreamFailure
from voxhost.stt.wer import normalize

log = logging.getLogger("voxhost.gateway.shadow")

MAX_IN_FLIGHT = 16  # comparisons running at once; more samples are skipped


@dataclass
class LocalResult:
    route: str
    body: bytes  # the local response (STT: the transcript document); never recorded
    content_type: str
    seconds: float  # whole local response
    cost_usd: float
    model: str  # the local engine
    language: str


@dataclass
class ShadowRecord:
    """One comparison, as written to the shadow log (JSON lines) for `voxhost migrate report`."""

    ts: float
    route: str
    model: str
    language: str
    local_s: float
    upstream_s: float | None
    local_usd: float
    upstream_usd: float
    ok: bool  # the upstream answered
    local_ok: bool = True  # False: the local attempt failed and the request fell back (error rate)
    words: int | None = None  # upstream transcript words (STT)
    errors: int | None = None  # word edits local vs upstream (STT)
    local_text: str | None = None  # only with VOXHOST_RETAIN_CONTENT=logs
    upstream_text: str | None = None

    @property
    def wer(self) -> float | None:
        return self.errors / self.words if self.words and self.errors is not None else None


def transcript_text(body: bytes, content_type: str) -> str | None:
    """The text of a transcription response (json, verbose_json, text, SSE)."""
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/json"):
            return str(json.loads(text)["text"])
        if content_type.startswith("text/event-stream"):
            for line in text.splitlines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("type") == "transcript.text.done":
                        return str(event["text"])
            return None
        if content_type.startswith("text/plain"):
            return text
    except (ValueError, KeyError, TypeError):
        return None
    return None  # srt / vtt: not compared


def word_errors(upstream_text: str, local_text: str, language: str) -> tuple[int, int]:
    """(edits, reference words), the upstream transcript as the reference."""
    lang = "en" if language in ("en", "auto") else language
    ref, hyp = normalize(upstream_text, lang), normalize(local_text, lang)
    if not ref:
        return (len(hyp.split()), 0)
    out = jiwer.process_words(ref, hyp or "")
    return out.substitutions + out.deletions + out.insertions, len(ref.split())


class Shadow:
    def __init__(self, upstream: Upstream, metrics: GatewayMetrics, log_path: Path | None, *,
                 retain_text: bool = False):
        self.upstream = upstream
        self.metrics = metrics
        self.log_path = log_path
        self.retain_text = retain_text
        self.tasks: set[asyncio.Task] = set()
        self.records: list[ShadowRecord] = []  # the latest few, for tests and /metrics-less checks
        self._write_lock = asyncio.Lock()

    def submit(self, request: httpx.Request, local: LocalResult, upstream_usd: float) -> bool:
        if len(self.tasks) >= MAX_IN_FLIGHT:
            self.metrics.shadow.labels(local.route, "skipped_busy").inc()
            return False
        task = asyncio.get_running_loop().create_task(self._compare(request, local, upstream_usd))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return True

    def local_failed(self, route: str, model: str, language: str, seconds: float) -> None:
        """A sampled request whose local attempt failed (it fell back): the
        report's local error rate is these over all sampled requests."""
        record = ShadowRecord(ts=time.time(), route=route, model=model, language=language, local_s=seconds,
                              upstream_s=None, local_usd=0.0, upstream_usd=0.0, ok=False, local_ok=False)
        self.metrics.shadow.labels(route, "local_failed").inc()
        self.records = [*self.records[-99:], record]
        task = asyncio.get_running_loop().create_task(self._write(record))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout_s: float = 5.0) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout_s)

    async def _compare(self, request: httpx.Request, local: LocalResult, upstream_usd: float) -> None:
        started = time.perf_counter()
        record = ShadowRecord(ts=time.time(), route=local.route, model=local.model, language=local.language,
                              local_s=local.seconds, upstream_s=None, local_usd=local.cost_usd,
                              upstream_usd=upstream_usd, ok=False)
        try:
            async with self.upstream.send(request) as response:
                body = await response.aread()
                record.upstream_s = time.perf_counter() - started
                record.ok = True
                if local.route != "speech":
                    self._agreement(record, local, body, response.headers.get("content-type", ""))
        except (UpstreamFailure, httpx.HTTPError):
            self.metrics.shadow.labels(local.route, "upstream_error").inc()
        except Exception:  # a comparison must never take anything down
            log.exception("shadow comparison failed")
            return
        self._observe(record)
        await self._write(record)

    def _agreement(self, record: ShadowRecord, local: LocalResult, body: bytes, content_type: str) -> None:
        local_text = transcript_text(local.body, local.content_type)
        upstream_text = transcript_text(body, content_type)
        if local_text is None or upstream_text is None:
            return
        record.errors, record.words = word_errors(upstream_text, local_text, local.language)
        if self.retain_text:
            record.local_text, record.upstream_text = local_text, upstream_text

    def _observe(self, r: ShadowRecord) -> None:
        m = self.metrics
        if r.ok:
            m.shadow.labels(r.route, "compared").inc()
            m.shadow_latency.labels(r.route, "upstream").observe(r.upstream_s or 0.0)
        m.shadow_latency.labels(r.route, "local").observe(r.local_s)
        m.shadow_cost.labels(r.route, "local").inc(r.local_usd)
        m.shadow_cost.labels(r.route, "upstream").inc(r.upstream_usd)
        if r.words and r.errors is not None:
            m.shadow_wer.labels(r.model, r.language).observe(r.errors / r.words)
            m.shadow_words.labels(r.model, r.language).inc(r.words)
            m.shadow_word_errors.labels(r.model, r.language).inc(r.errors)
        self.records = [*self.records[-99:], r]

    async def _write(self, record: ShadowRecord) -> None:
        if self.log_path is None:
            return
        line = json.dumps({k: v for k, v in asdict(record).items() if v is not None or k == "upstream_s"}) + "\n"
        async with self._write_lock:
            await asyncio.to_thread(_append, self.log_path, line)


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
