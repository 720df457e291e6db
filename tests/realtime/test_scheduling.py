"""The live sessions' scheduler adapter (scheduler logic, so fake engines):
whether a partial may start depends on the session's own model's workers only."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from voxhost.engines.stt.base import Transcript, TranscriptionInfo, TranscriptionOptions
from voxhost.errors import Overloaded
from voxhost.realtime.scheduling import SchedulerDecoder
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.stt import Lane, SttScheduler


class BlockingEngine:
    """Holds its worker until released (a long REST decode)."""

    multilingual = False

    def __init__(self, name: str):
        self.name = name
        self.release = threading.Event()
        self.started = threading.Event()

    def transcribe(self, audio, options, stop=None):
        self.started.set()
        self.release.wait(5)
        return Transcript(TranscriptionInfo("en", 1.0, 1.0, 1.0), [])


def test_rest_load_on_one_model_leaves_partials_on_another_free():
    async def run():
        tiny, base = BlockingEngine("tiny.en"), BlockingEngine("base")
        scheduler = SttScheduler(lambda engine: EngineExecutor(engine.name, workers=1))
        decoder = SchedulerDecoder({"base": base}, scheduler)
        scheduler.executor_for(tiny)  # tiny.en's executor is the first one, as when REST warmed it first
        rest = asyncio.create_task(scheduler.transcribe(tiny, np.zeros(16_000, np.float32),
                                                        TranscriptionOptions(), lane=Lane.INTERACTIVE))
        await asyncio.to_thread(tiny.started.wait, 5)
        try:
            assert decoder.busy(tiny)  # tiny.en's one worker is taken
            assert not decoder.busy(base)  # base has its own worker, idle
            live = asyncio.create_task(decoder.transcribe(base, np.zeros(16_000, np.float32),
                                                          TranscriptionOptions()))
            await asyncio.to_thread(base.started.wait, 5)
            assert decoder.busy(base)
            base.release.set()
            await live
            assert not decoder.busy(base)
        finally:
            tiny.release.set()
            base.release.set()
            await rest
            scheduler.shutdown()

    asyncio.run(run())


class BatchingEngine(BlockingEngine):
    """The same, with the batched path the GPU default takes (`batch_key` + `transcribe_batch`)."""

    def batch_key(self, audio, options):
        return (self.name,)

    def transcribe_batch(self, audios, options):
        return [self.transcribe(audio, options) for audio in audios]


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
def test_a_live_final_that_waits_past_its_limit_is_dropped(batched):
    """A second live job, queued behind a busy worker for longer than the session's
    max final wait, fails with Overloaded instead of running late, on both paths."""

    async def run():
        engine = BatchingEngine("base") if batched else BlockingEngine("base")
        scheduler = SttScheduler(EngineExecutor("base", workers=1, max_batch=4 if batched else 1),
                                 batching=batched)
        decoder = SchedulerDecoder({"base": engine}, scheduler, max_wait_seconds=0.05)
        audio = np.zeros(16_000, np.float32)
        first = asyncio.create_task(decoder.transcribe(engine, audio, TranscriptionOptions()))
        await asyncio.to_thread(engine.started.wait, 5)
        second = asyncio.create_task(decoder.transcribe(engine, audio, TranscriptionOptions()))
        await asyncio.sleep(0.2)  # the second waits past its 0.05 s limit
        engine.release.set()
        try:
            await first
            with pytest.raises(Overloaded) as caught:
                await second
            assert caught.value.code == "server_overloaded"
        finally:
            scheduler.shutdown()

    asyncio.run(run())
