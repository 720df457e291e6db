"""The TTS scheduler: the one way routers and tools get speech synthesised.

Callers say what (engine, text chunks, voice, speed) and how the PCM becomes
bytes (a renderer run on the same worker, so encoding stays off the event
loop too); how many syntheses run at once and how many may wait (then 429:
a full queue, or an expected wait past the budget, from each engine's
measured seconds per character) is this module's business alone.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Iterator
from contextlib import aclosing
from typing import Any, Generic, Protocol, TypeVar

from voxhost.engines.tts.base import VoiceSelection
from voxhost.engines.tts.text import TextChunk
from voxhost.errors import Overloaded
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.lanes import Lane

Piece = TypeVar("Piece", covariant=True)  # what a renderer hands on: encoded bytes (and timing marks)


class Synthesis(Protocol):
    """What the scheduler runs: a TTS engine's `stream`, or an adapter around it that
    yields each chunk's audio with its timings."""

    def stream(self, chunks: Iterable[TextChunk], voice: VoiceSelection, speed: float) -> Iterator[Any]: ...


class Renderer(Protocol, Generic[Piece]):
    """Turns each chunk's audio into output pieces; runs on the synthesis worker."""

    def feed(self, pcm: Any) -> Iterable[Piece]: ...

    def close(self) -> bytes: ...

    def abort(self) -> None: ...


class TtsScheduler:
    def __init__(self, executor: EngineExecutor):
        self.executor = executor

    def _produce(self, engine: Synthesis, chunks: Iterable[TextChunk], voice: VoiceSelection, speed: float,
                 renderer: Renderer[Piece]) -> Iterator[Piece | bytes]:
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
        self, engine: Synthesis, chunks: Iterable[TextChunk], voice: VoiceSelection, speed: float,
        renderer: Renderer[Piece], *, lane: Lane = Lane.INTERACTIVE, characters: int | None = None,
    ) -> AsyncGenerator[Piece | bytes, None]:
        """`characters`: the text's length, what the synthesis is expected to cost by."""
        # aclosing: closing this generator closes the executor's at once, which stops
        # the worker; otherwise that waits for the loop to finalize the inner one.
        produce = lambda: self._produce(engine, chunks, voice, speed, renderer)  # noqa: E731
        kind = getattr(engine, "name", None)  # engines differ by far in seconds per character
        async with aclosing(self.executor.stream(produce, lane=lane, units=characters, kind=kind)) as pieces:
            async for data in pieces:
                yield data

    async def run(self, fn, *args, lane: Lane = Lane.INTERACTIVE):
        """Any other blocking TTS work (a whole-line synthesis for cache warming)."""
        return await self.executor.run(fn, *args, lane=lane)

    def refusal(self, lane: Lane = Lane.INTERACTIVE) -> Overloaded | None:
        """Why a new synthesis in `lane` would be refused now (None: it would start)."""
        return self.executor.refusal(lane)

    @property
    def pending(self) -> int:
        return self.executor.pending

    @property
    def idle(self) -> bool:
        """No synthesis running or queued: one submitted now has the cores to itself."""
        return self.executor.idle

    def shutdown(self) -> None:
        self.executor.shutdown()
