"""The STT scheduler: the one way routers and live sessions get speech decoded.

Callers say what (engine, audio, options) and how urgent (lane); how jobs are
queued, batched and run is this module's business alone.
"""

from __future__ import annotations

from enum import Enum
from typing import AsyncIterator

import numpy as np

from voxhost.engines.stt.base import Segment, Transcript, TranscriptionOptions
from voxhost.scheduler.executor import EngineExecutor


class Lane(str, Enum):
    """Priority lanes, most urgent first."""

    LIVE = "live"  # realtime sessions: a player is waiting mid-conversation
    INTERACTIVE = "interactive"  # REST requests
    BULK = "bulk"  # long files, batch jobs


class SttScheduler:
    def __init__(self, executor: EngineExecutor):
        self.executor = executor

    async def transcribe(
        self, engine, audio: np.ndarray, options: TranscriptionOptions, *, lane: Lane = Lane.INTERACTIVE
    ) -> Transcript:
        return await self.executor.run(engine.transcribe, audio, options)

    async def stream(
        self, engine, audio: np.ndarray, options: TranscriptionOptions, *, lane: Lane = Lane.INTERACTIVE
    ) -> AsyncIterator[Segment]:
        def produce():
            _, segments = engine.transcribe_stream(audio, options)
            yield from segments

        async for segment in self.executor.stream(produce):
            yield segment

    @property
    def pending(self) -> int:
        return self.executor.pending

    def shutdown(self) -> None:
        self.executor.shutdown()
