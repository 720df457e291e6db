"""The composition root: every part of the server built once, from settings, in one place.

`build_services(settings)` is what the HTTP app (api/app.py), the CLI (`voxhost transcribe`,
`voxhost cache warm`, `voxhost voices`, `voxhost bench`) and the benchmarks use, so each
of them runs the engines behind the same registries, schedulers, policies and cache as
the server. Nothing here knows of HTTP; nothing is loaded until `load()` (or a registry's
own `load`) is called, so a tool that needs one model loads only that one.

Names say what each part is: `*_engines` are registries of loaded engines; `voices` maps
a request's model and voice names to them; `*_scheduler` queues and runs their work;
`transcription` and `speech` are the services a request goes through.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from voxhost.cache.phrases import PhraseCache
from voxhost.engines.stt.base import SpeechToText
from voxhost.engines.stt.registry import SttRegistry
from voxhost.engines.tts.registry import TtsRegistry
from voxhost.ops.cost import ComputeCost, resolve_instance_type
from voxhost.ops.metrics import Metrics
from voxhost.ops.settings import Settings
from voxhost.scheduler.audio_memory import MB, AudioMemoryBudget
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.lanes import Lane
from voxhost.scheduler.stt import SttScheduler
from voxhost.scheduler.tts import TtsScheduler
from voxhost.stt.service import SttService
from voxhost.tts.service import SpeechService
from voxhost.tts.voices import VoiceCatalog

log = logging.getLogger("voxhost")


@dataclass
class Services:
    settings: Settings
    metrics: Metrics
    cost: ComputeCost
    stt_engines: SttRegistry
    tts_engines: TtsRegistry
    voices: VoiceCatalog
    stt_scheduler: SttScheduler
    tts_scheduler: TtsScheduler
    transcription: SttService
    speech: SpeechService
    audio_memory: AudioMemoryBudget  # decoded audio that REST requests hold (scheduler/audio_memory.py)

    def load(self, warm_up: bool = True) -> None:
        """Every configured engine, warmed, with its scheduler (and metric series) in place."""
        self.stt_engines.load_all(warm_up=warm_up)
        if self.stt_engines.engines:  # live sessions' VAD: the Silero graph rewritten for batching
            from voxhost.realtime.silero_batch import batched_session

            batched_session()
        self.tts_engines.load_all(warm_up=warm_up)
        if self.tts_engines.engines:
            self.speech.load()
        self.voices.warm_designs()
        for engine in self.stt_engines.engines.values():  # schedulers (and their metric series) exist before traffic
            executor = self.stt_scheduler.executor_for(engine)
            if engine.name in self.stt_engines.warm_up_seconds:  # what admission expects until a job is measured
                executor.service_times.seed(self.stt_engines.warm_up_seconds[engine.name])
        for name, seconds in self.tts_engines.warm_up_seconds.items():
            self.tts_scheduler.executor.service_times.seed(seconds, kind=name)

    def shutdown(self) -> None:
        self.stt_scheduler.shutdown()
        self.tts_scheduler.shutdown()


class _Executors:
    """Engine executors wired to one set of metrics, cost model and limits."""

    def __init__(self, settings: Settings, cost: ComputeCost, metrics: Metrics):
        self.settings, self.cost, self.metrics = settings, cost, metrics

    def make(self, name: str, *, workers: int, max_batch: int = 1, max_wait_s: float = 0.0,
             max_queue: int | None = None, wait_budgets: dict[Lane, float] | None = None) -> EngineExecutor:
        s = self.settings
        return EngineExecutor(
            name, workers=workers, max_queue=s.queue_max_per_lane if max_queue is None else max_queue,
            max_batch=max_batch, max_wait_s=max_wait_s, deadline_s=s.request_deadline_s,
            cost=self.cost, observer=self.metrics.observer(), wait_budgets=wait_budgets,
        )

    def stt(self, engine: SpeechToText) -> EngineExecutor:
        """One STT engine's executor: as many jobs at once as the engine decodes in parallel
        (VOXHOST_STT_NUM_WORKERS, or when it is auto the engine's own count), batching per
        VOXHOST_STT_BATCHING (auto: on a GPU)."""
        s = self.settings
        batching = s.stt_batching if s.stt_batching is not None else engine.device == "cuda"
        return self.make(f"stt:{engine.name}", workers=max(1, s.stt_num_workers or engine.num_workers),
                         max_batch=s.stt_max_batch_size if batching else 1,
                         max_wait_s=s.stt_max_batch_wait_ms / 1000.0,
                         # Live jobs have no budget: a session is admitted or refused when it opens
                         # (api/admission.py), and its finals fail fast past their own limit.
                         wait_budgets={Lane.INTERACTIVE: s.stt_wait_budget_s, Lane.BULK: s.bulk_wait_budget_s})


def build_services(settings: Settings, *, metrics: Metrics | None = None) -> Services:
    """Everything, built and wired, nothing loaded. ValueError on settings that cannot work
    (an instance type with no price), before anything starts."""
    cost = ComputeCost(resolve_instance_type(settings.instance_type), settings.instance_price_per_hour)
    try:
        cost.hourly  # noqa: B018 - fail at start-up, not on the first request
    except KeyError:
        raise ValueError(f"VOXHOST_INSTANCE_TYPE={settings.instance_type!r} has no price in ops/cost.py; "
                         "set VOXHOST_INSTANCE_PRICE_PER_HOUR") from None
    metrics = metrics or Metrics()
    stt_engines = SttRegistry(settings)
    tts_engines = TtsRegistry(settings)
    voices = VoiceCatalog(tts_engines, settings)
    executors = _Executors(settings, cost, metrics)
    stt_scheduler = SttScheduler(executors.stt, batching=settings.stt_batching is not False)
    tts_scheduler = TtsScheduler(executors.make(
        "tts", workers=max(1, settings.tts_concurrency), max_queue=max(0, settings.tts_max_queue),
        wait_budgets={Lane.INTERACTIVE: settings.tts_wait_budget_s}))
    audio_memory = AudioMemoryBudget(settings.audio_memory_budget_mb * MB, on_change=metrics.audio_memory.set)
    return Services(
        settings=settings, metrics=metrics, cost=cost,
        stt_engines=stt_engines, tts_engines=tts_engines, voices=voices,
        stt_scheduler=stt_scheduler, tts_scheduler=tts_scheduler,
        transcription=SttService(stt_engines, stt_scheduler, settings, audio_memory),
        speech=SpeechService(voices, tts_scheduler, PhraseCache.from_settings(settings),
                             max_input_chars=settings.max_text_chars,
                             first_chunk_words=settings.tts_first_chunk_words),
        audio_memory=audio_memory,
    )
