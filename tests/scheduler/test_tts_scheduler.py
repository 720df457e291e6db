"""TTS scheduler logic with a scripted engine (the real engines are covered in
tests/api and tests/engines): admission control and early stop."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from voxhost.engines.tts.base import TtsEngine, Voice, VoiceSelection
from voxhost.engines.tts.text import TextChunk
from voxhost.errors import Overloaded
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.tts import TtsScheduler


class ScriptedEngine(TtsEngine):
    name = "scripted"

    def __init__(self, gate: threading.Event | None = None, tokens: threading.Semaphore | None = None):
        super().__init__()
        self.gate = gate
        self.tokens = tokens  # one token per chunk: the test paces synthesis
        self.synthesised = 0

    def load(self) -> None:
        self.loaded = True

    @property
    def model_version(self) -> str:
        return "scripted-1"

    def voices(self) -> list[Voice]:
        return [Voice("v", self.name, "en-US", None, 16_000)]

    def synthesize(self, text, voice, speed=1.0):
        if self.gate is not None:
            self.gate.wait(10)
        if self.tokens is not None:
            self.tokens.acquire(timeout=10)
        self.synthesised += 1
        return np.full(160, 0.1, np.float32)


class CountingRenderer:
    def __init__(self):
        self.fed = 0
        self.closed = False
        self.aborted = False

    def feed(self, pcm):
        self.fed += 1
        return [pcm.tobytes()]

    def close(self):
        self.closed = True
        return b"tail"

    def abort(self):
        self.aborted = True


VOICE = VoiceSelection("scripted", "v", "fp")
CHUNKS = [TextChunk(f"sentence {i}.", 0.1) for i in range(50)]


def test_stream_yields_each_chunk_then_the_tail():
    async def run():
        scheduler = TtsScheduler(EngineExecutor("tts", workers=1, max_queue=1))
        renderer = CountingRenderer()
        out = [b async for b in scheduler.stream(ScriptedEngine(), CHUNKS[:3], VOICE, 1.0, renderer)]
        scheduler.shutdown()
        return out, renderer

    out, renderer = asyncio.run(run())
    assert len(out) == 4 and out[-1] == b"tail"
    assert renderer.fed == 3 and renderer.closed and not renderer.aborted


def test_consumer_leaving_stops_synthesis_and_frees_the_encoder():
    tokens = threading.Semaphore(1)
    engine = ScriptedEngine(tokens=tokens)

    async def run():
        scheduler = TtsScheduler(EngineExecutor("tts", workers=1, max_queue=1))
        renderer = CountingRenderer()
        stream = scheduler.stream(engine, CHUNKS, VOICE, 1.0, renderer)
        await stream.__anext__()
        await stream.aclose()  # the client hung up after the first sentence
        for _ in range(len(CHUNKS)):
            tokens.release()  # synthesis could now run to the end, if nothing stopped it
        # Hold the event loop (as a busy server would): the stop must already be
        # set by aclose() itself, not left to the loop finalizing an inner generator.
        time.sleep(0.3)
        for _ in range(3000):  # a condition, not a timing: generous for a loaded CI machine
            if scheduler.pending == 0:
                break
            await asyncio.sleep(0.01)
        pending = scheduler.pending
        scheduler.shutdown()
        return renderer, pending

    renderer, pending = asyncio.run(run())
    assert pending == 0
    assert renderer.aborted and not renderer.closed
    assert engine.synthesised <= 3


def test_full_queue_is_overloaded_not_queued_without_bound():
    gate = threading.Event()

    async def run():
        scheduler = TtsScheduler(EngineExecutor("tts", workers=1, max_queue=1))
        engine = ScriptedEngine(gate)
        first = scheduler.stream(engine, CHUNKS[:1], VOICE, 1.0, CountingRenderer())
        second = scheduler.stream(engine, CHUNKS[:1], VOICE, 1.0, CountingRenderer())
        third = scheduler.stream(engine, CHUNKS[:1], VOICE, 1.0, CountingRenderer())
        running = asyncio.ensure_future(first.__anext__())
        waiting = asyncio.ensure_future(second.__anext__())
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded) as caught:
            await third.__anext__()
        gate.set()
        await running
        await waiting
        for stream in (first, second):
            await stream.aclose()
        scheduler.shutdown()
        return caught.value

    error = asyncio.run(run())
    assert error.status_code == 429 and error.retry_after >= 1


def test_a_synthesis_is_refused_on_the_expected_wait_of_the_lines_ahead_per_engine_and_character():
    """TTS work is sized in characters and timed per engine: a 100-character line on a
    slow engine ahead (2 s) refuses the next request; on a fast one it would be 0.1 s."""
    from voxhost.scheduler.expected_wait import ServiceTimes
    from voxhost.scheduler.lanes import Lane

    gate = threading.Event()
    times = ServiceTimes()
    for chars in (20, 100, 200):
        times.record("scripted", Lane.INTERACTIVE.value, chars, 0.02 * chars)  # 2 s a 100-character line
        times.record("fast", Lane.INTERACTIVE.value, chars, 0.001 * chars)

    async def run():
        scheduler = TtsScheduler(EngineExecutor("tts", workers=1, service_times=times,
                                                wait_budgets={Lane.INTERACTIVE: 1.5}))
        engine = ScriptedEngine(gate)
        first = scheduler.stream(engine, CHUNKS[:1], VOICE, 1.0, CountingRenderer(), characters=100)
        running = asyncio.ensure_future(first.__anext__())
        await asyncio.sleep(0.05)
        assert scheduler.executor.expected_wait(Lane.INTERACTIVE) == pytest.approx(2.0, abs=0.1)
        refused = scheduler.refusal()
        gate.set()
        await running
        await first.aclose()
        scheduler.shutdown()
        return refused

    refused = asyncio.run(run())
    assert refused is not None and refused.status_code == 429 and refused.retry_after == pytest.approx(2.0, abs=0.1)
    assert times.estimate("fast", Lane.INTERACTIVE.value, 100) == pytest.approx(0.1)
