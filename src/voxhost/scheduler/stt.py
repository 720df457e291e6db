"""The STT scheduler: the one way routers and live sessions get speech decoded.

Callers say what (engine, audio, options) and how urgent (lane); how jobs are
queued, batched and run is this module's business alone. Each engine gets
its own EngineExecutor (one scheduler owns one model). Whether two requests
may share a batch is the engine's call (`batch_key`); this module only groups
equal keys and hands them to `transcribe_batch`.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing, contextmanager

import numpy as np

from voxhost.audio.pcm import WHISPER_RATE
from voxhost.engines.stt.base import Segment, SpeechToText, Transcript, TranscriptionOptions
from voxhost.errors import Overloaded
from voxhost.ops import context
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.lanes import Lane

__all__ = ["Lane", "SttScheduler"]


class SttScheduler:
    def __init__(self, executor: EngineExecutor | Callable[[SpeechToText], EngineExecutor], *,
                 batching: bool = True):
        """`executor`: one shared executor (tests, simple setups) or a factory
        called once per engine (by name) with the engine."""
        if isinstance(executor, EngineExecutor):
            shared = executor
            self._factory: Callable[[SpeechToText], EngineExecutor] = lambda _engine: shared
        else:
            self._factory = executor
        self.batching = batching
        self.executors: dict[str, EngineExecutor] = {}

    def executor_for(self, engine: SpeechToText) -> EngineExecutor:
        if engine.name not in self.executors:
            self.executors[engine.name] = self._factory(engine)
        return self.executors[engine.name]

    @property
    def executor(self) -> EngineExecutor | None:
        """The first executor (kept for callers of the single-executor API)."""
        return next(iter(self.executors.values()), None)

    async def transcribe(
        self, engine: SpeechToText, audio: np.ndarray, options: TranscriptionOptions, *,
        lane: Lane = Lane.INTERACTIVE, deadline_s: float | None = None, check_wait: bool = True,
    ) -> Transcript:
        """`check_wait=False`: admitted already (`admit`), not refused for its wait again."""
        executor = self.executor_for(engine)
        seconds = len(audio) / WHISPER_RATE
        context.note_audio_seconds(seconds)
        key = engine.batch_key(audio, options) if self.batching and executor.max_batch > 1 else None
        if key is None:
            # Unbatched work can be long (a file of many windows): it stops part-way if the
            # caller goes away. A batch is one window, run as one model call, so it finishes.
            stop = threading.Event()
            return await executor.run(engine.transcribe, audio, options, stop, lane=lane, deadline_s=deadline_s,
                                      stop=stop, units=seconds, check_wait=check_wait)

        def run_batch(items: list[tuple[np.ndarray, TranscriptionOptions]]):
            return engine.transcribe_batch([a for a, _ in items], [o for _, o in items])

        return await executor.run_batched(run_batch, (audio, options), key, lane=lane, deadline_s=deadline_s,
                                          units=seconds, check_wait=check_wait)

    async def stream(
        self, engine: SpeechToText, audio: np.ndarray, options: TranscriptionOptions, *,
        lane: Lane = Lane.INTERACTIVE, deadline_s: float | None = None, check_wait: bool = True,
    ) -> AsyncGenerator[Segment, None]:
        seconds = len(audio) / WHISPER_RATE
        context.note_audio_seconds(seconds)

        def produce():
            _, segments = engine.transcribe_stream(audio, options)
            yield from segments

        # aclosing: a consumer that leaves stops the decode now, not when the loop finalizes.
        pieces = self.executor_for(engine).stream(produce, lane=lane, deadline_s=deadline_s, units=seconds,
                                                  check_wait=check_wait)
        async with aclosing(pieces) as segments:
            async for segment in segments:
                yield segment

    def can_admit(self, engine: SpeechToText, lane: Lane) -> bool:
        return self.executor_for(engine).refusal(lane) is None

    def admit(self, engine: SpeechToText, lane: Lane) -> None:
        """Raise Overloaded (429, Retry-After: the expected wait) if `engine`'s `lane`
        would refuse a new job now: its queue is full or its wait over budget."""
        self.executor_for(engine).admit(lane)

    def refusal_any(self, lane: Lane) -> Overloaded | None:
        """The refusal when every engine's `lane` would refuse (the one with the
        shortest wait), else None: a request can be refused before its upload is
        even read, when no model it could name would take it."""
        executor = self._least_refusing(lane)
        return None if executor is None else executor.refusal(lane)

    def admit_any(self, lane: Lane) -> None:
        """Raise (and count) `refusal_any`, if any."""
        executor = self._least_refusing(lane)
        if executor is not None:
            executor.admit(lane)

    def _least_refusing(self, lane: Lane) -> EngineExecutor | None:
        refusals = [(e.refusal(lane), e) for e in self.executors.values()]
        if not refusals or any(r is None for r, _ in refusals):
            return None
        return min(refusals, key=lambda pair: pair[0].retry_after or 0.0)[1]  # type: ignore[union-attr]

    def expected_wait(self, engine: SpeechToText, lane: Lane) -> float:
        return self.executor_for(engine).expected_wait(lane)

    @contextmanager
    def arriving(self, engine: SpeechToText, lane: Lane) -> Iterator[None]:
        """Hold a place for an admitted request whose audio is still decoding."""
        with self.executor_for(engine).arriving(lane):
            yield

    @property
    def pending(self) -> int:
        return sum(e.pending for e in self.executors.values())

    def shutdown(self) -> None:
        for executor in self.executors.values():
            executor.shutdown()
