"""How a live session reaches the decoders: the one STT scheduler, LIVE lane.

Kept apart from the turn state machine (realtime/session.py) so that the
session can be driven by a fake decoder in tests and the adapter's capacity
logic can be tested on its own.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np

from voxhost.engines.stt.base import Transcript, TranscriptionOptions
from voxhost.errors import Overloaded
from voxhost.scheduler.stt import Lane, SttScheduler


class Decoder(Protocol):
    def engine(self, model: str | None): ...

    async def transcribe(self, engine, audio: np.ndarray, options: TranscriptionOptions) -> Transcript: ...

    def busy(self, engine) -> bool: ...


class _StartBy:
    """Engine proxy that refuses to start a decode after its deadline.

    A final that waited too long for a worker is worth less than saying so:
    the turn fails with `server_overloaded` instead of arriving late and
    pushing every later turn further behind (latency stays bounded when the
    server falls behind real time).
    """

    def __init__(self, engine, deadline: float):
        self._engine = engine
        self._deadline = deadline

    def transcribe(self, audio: np.ndarray, options: TranscriptionOptions, stop=None) -> Transcript:
        if time.monotonic() > self._deadline:
            raise Overloaded("The server is behind real time: this turn waited too long for a decoder "
                             "and was dropped.", retry_after=1.0)
        return self._engine.transcribe(audio, options, stop)

    def __getattr__(self, name):
        return getattr(self._engine, name)


class SchedulerDecoder:
    """Live sessions decode through the one STT scheduler, in the LIVE lane."""

    def __init__(self, registry, scheduler: SttScheduler, max_wait_seconds: float | None = None):
        self.registry = registry
        self.scheduler = scheduler
        self.max_wait_seconds = max_wait_seconds

    def engine(self, model: str | None):
        return self.registry.get(model)

    async def transcribe(self, engine, audio: np.ndarray, options: TranscriptionOptions) -> Transcript:
        if self.max_wait_seconds is not None:
            engine = _StartBy(engine, time.monotonic() + self.max_wait_seconds)
        return await self.scheduler.transcribe(engine, audio, options, lane=Lane.LIVE)

    def busy(self, engine) -> bool:
        """Every worker of `engine`'s executor taken (a partial started now would
        wait, and make finals wait). Only that executor counts: each model has its
        own workers, so REST load on another model must not silence this
        session's partials."""
        executor = self.scheduler.executor_for(engine)
        return executor.pending >= executor.workers
