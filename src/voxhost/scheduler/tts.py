"""The TTS scheduler: the one way routers and tools get speech synthesised.

Callers say what (engine, text chunks, voice, speed) and how the PCM becomes
bytes (a renderer run on the same worker, so encoding stays off the event
loop too); how many syntheses run at once and how many may wait (then 429)
is this module's business alone.
"""

from __future__ import annotations

from contextlib import aclosing

from typing import AsyncIterator, Iterable, Iterator, Protocol

import numpy as np

from voxhost.engines.tts.base import TtsEngine, VoiceSelection
from voxhost.engines.tts.text import TextChunk
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.lanes import Lane


class Renderer(Protocol):
    """Turns each chunk's PCM into output bytes; runs on the synthesis worker."""

    def feed(self, pcm: np.ndarray) -> Iterable[bytes]: ...

    def close(self) -> bytes: ...

    def abort(self) -> None: ...


class TtsScheduler:
    def __init__(self, executor: EngineExecutor):
        self.executor = executor

    def _produce(self, engine: TtsEngine, chunks: Iterable[TextChunk], voice: VoiceSelection, speed: float,
                 renderer: Renderer) -> Iterator[bytes]:
        finished = False
        try:
            for pcm in engine.stream(chunks, voice, speed):
                for data in renderer.feed(pcm):
                    if data:
                        yield data
            tail = renderer.close()
            finished = True
            if tail:
                yield tail
        finally:
            if not finished:  # client gone or engine failed: free the encoder now
                renderer.abort()

    async def stream(
        self, engine: TtsEngine, chunks: Iterable[TextChunk], voice: VoiceSelection, speed: float,
        renderer: Renderer, *, lane: Lane = Lane.INTERACTIVE,
    ) -> AsyncIterator[bytes]:
        # aclosing: closing this generator closes the executor's at once, which stops
        # the worker; otherwise that waits for the loop to finalize the inner one.
        produce = lambda: self._produce(engine, chunks, voice, speed, renderer)  # noqa: E731
        async with aclosing(self.executor.stream(produce, lane=lane)) as pieces:
            async for data in pieces:
                yield data

    async def run(self, fn, *args, lane: Lane = Lane.INTERACTIVE):
        """Any other blocking TTS work (a whole-line synthesis for cache warming)."""
        return await self.executor.run(fn, *args, lane=lane)

    @property
    def pending(self) -> int:
        return self.executor.pending

    def shutdown(self) -> None:
        self.executor.shutdown()
