"""The STT scheduler: the one way routers and live sessions get speech decoded.

Callers say what (engine, audio, options) and how urgent (lane); how jobs are
queued, batched and run is this module's business alone. Each engine gets
its own EngineExecutor (one scheduler owns one model). Whether two requests
may share a batch is the engine's call (`batch_key`); this module only groups
equal keys and hands them to `transcribe_batch`.
"""

from __future__ import annotations

from contextlib import aclosing

import threading
from typing import AsyncIterator, Callable

import numpy as np

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt.base import Segment, Transcript, TranscriptionOptions
from voxhost.ops import context
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.lanes import Lane

__all__ = ["Lane", "SttScheduler"]


class SttScheduler:
    def __init__(self, executor: EngineExecutor | Callable[[object], EngineExecutor], *, batching: bool = True):
        """`executor`: one shared executor (tests, simple setups) or a factory
        called once per engine (by name) with the engine."""
        if isinstance(executor, EngineExecutor):
            shared = executor
            self._factory: Callable[[object], EngineExecutor] = lambda _engine: shared
        else:
            self._factory = executor
        self.batching = batching
        self.executors: dict[str, EngineExecutor] = {}

    def executor_for(self, engine) -> EngineExecutor:
        name = getattr(engine, "name", "stt")
        if name not in self.executors:
            self.executors[name] = self._factory(engine)
        return self.executors[name]

    @property
    def executor(self) -> EngineExecutor | None:
        """The first executor (kept for callers of the single-executor API)."""
        return next(iter(self.executors.values()), None)

    async def transcribe(
        self, engine, audio: np.ndarray, options: TranscriptionOptions, *, lane: Lane = Lane.INTERACTIVE,
        deadline_s: float | None = None,
    ) -> Transcript:
        executor = self.executor_for(engine)
        context.note_audio_seconds(len(audio) / WHISPER_RATE)
        key = None
        if self.batching and executor.max_batch > 1 and hasattr(engine, "transcribe_batch"):
            key = engine.batch_key(audio, options)
        if key is None:
            # Unbatched work can be long (a file of many windows): it stops part-way if the
            # caller goes away. A batch is one window, run as one model call, so it finishes.
            stop = threading.Event()
            return await executor.run(engine.transcribe, audio, options, stop, lane=lane, deadline_s=deadline_s,
                                      stop=stop)

        def run_batch(items: list[tuple[np.ndarray, TranscriptionOptions]]):
            return engine.transcribe_batch([a for a, _ in items], [o for _, o in items])

        return await executor.run_batched(run_batch, (audio, options), key, lane=lane, deadline_s=deadline_s)

    async def stream(
        self, engine, audio: np.ndarray, options: TranscriptionOptions, *, lane: Lane = Lane.INTERACTIVE,
        deadline_s: float | None = None,
    ) -> AsyncIterator[Segment]:
        context.note_audio_seconds(len(audio) / WHISPER_RATE)

        def produce():
            _, segments = engine.transcribe_stream(audio, options)
            yield from segments

        # aclosing: a consumer that leaves stops the decode now, not when the loop finalizes.
        async with aclosing(self.executor_for(engine).stream(produce, lane=lane, deadline_s=deadline_s)) as segments:
            async for segment in segments:
                yield segment

    def can_admit(self, engine, lane: Lane) -> bool:
        return self.executor_for(engine).has_room(lane)

    def can_admit_any(self, lane: Lane) -> bool:
        """False only when every engine's `lane` is full: a request can be
        refused before its upload is even read."""
        return not self.executors or any(e.has_room(lane) for e in self.executors.values())

    @property
    def pending(self) -> int:
        return sum(e.pending for e in self.executors.values())

    def shutdown(self) -> None:
        for executor in self.executors.values():
            executor.shutdown()
