"""Server VAD for all live sessions of a process in one ONNX call per event-loop tick.

Each session owns a `SileroStream` (its LSTM state, the last window's 64-sample
context, the samples short of a window). `await stream.feed(audio)` cuts the new
windows and hands them to the loop's `VadBatcher`, which scores every window
submitted during the current tick with one call of the batched Silero graph
(realtime/silero_batch.py) and gives each session the probabilities, and the
state, it would have had alone (`StreamingSilero`, checked equal in tests).

Why batch: one call per session per append paid onnxruntime's and Python's
fixed cost per call for ~3 windows (100 ms appends); batched, the convolutions
and the LSTM's matrix products run on all sessions' windows together
(docs/benchmarks.md, "Silero VAD batched across live sessions").

Why on the event loop and not a worker thread: the call is short (about 50 us
of CPU a window, a few ms for dozens of sessions) and the per-session VAD it
replaces ran on the loop too; a thread would add a hand-off and a wake-up per
tick for every session waiting on it.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

import numpy as np

from voxhost.realtime.silero_batch import CONTEXT, HIDDEN, WINDOW, batched_session


class SileroStream:
    """One session's streaming VAD state; scored by its event loop's `VadBatcher`."""

    def __init__(self):
        batched_session()  # built once per process (cached): not on the first append's clock
        self.reset()

    def reset(self) -> None:
        self.h = np.zeros(HIDDEN, dtype=np.float32)
        self.c = np.zeros(HIDDEN, dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        # A request still in a batch when the stream is reset must not write its
        # state back over the fresh one (the tick scores it all the same).
        self.generation = getattr(self, "generation", 0) + 1
        self.waiting = False

    def forget(self) -> None:
        """A fresh LSTM state, the audio position kept (the samples short of a window and the
        last window's context stay): what a new stream would hear from here on."""
        self.h = np.zeros(HIDDEN, dtype=np.float32)
        self.c = np.zeros(HIDDEN, dtype=np.float32)

    def rows(self, audio: np.ndarray) -> np.ndarray:
        """The model's rows [count, 576] (context + window) for every window `audio`
        completes; the rest waits for the next append."""
        samples = np.concatenate([self._pending, audio]) if self._pending.size else audio
        count = samples.size // WINDOW
        self._pending = samples[count * WINDOW:].astype(np.float32, copy=True)
        if count == 0:
            return np.zeros((0, CONTEXT + WINDOW), dtype=np.float32)
        windows = samples[: count * WINDOW].astype(np.float32, copy=False).reshape(count, WINDOW)
        rows = np.empty((count, CONTEXT + WINDOW), dtype=np.float32)
        rows[0, :CONTEXT] = self._context
        rows[1:, :CONTEXT] = windows[:-1, -CONTEXT:]
        rows[:, CONTEXT:] = windows
        self._context = windows[-1, -CONTEXT:].copy()
        return rows

    async def feed(self, audio: np.ndarray) -> np.ndarray:
        """Speech probability for every window completed by `audio`."""
        rows = self.rows(audio)
        if rows.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        return await VadBatcher.for_running_loop().score(self, rows)


@dataclass
class _Request:
    stream: SileroStream
    generation: int
    rows: np.ndarray
    future: asyncio.Future


class VadBatcher:
    """Collects the windows streams submit during one event-loop tick and scores
    them in one call, scheduled with `call_soon` by the tick's first request."""

    _per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, VadBatcher] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._session = batched_session()
        self._waiting: list[_Request] = []
        self.calls = 0  # ONNX calls made (for tests and benchmarks)

    @classmethod
    def for_running_loop(cls) -> VadBatcher:
        loop = asyncio.get_running_loop()
        batcher = cls._per_loop.get(loop)
        if batcher is None:
            batcher = cls._per_loop[loop] = cls(loop)
        return batcher

    def score(self, stream: SileroStream, rows: np.ndarray) -> asyncio.Future:
        if stream.waiting:  # its state is still in flight: a second feed would start from a stale one
            raise RuntimeError("SileroStream.feed called again before the previous feed was scored")
        stream.waiting = True
        future = self._loop.create_future()
        if not self._waiting:
            self._loop.call_soon(self._flush)
        self._waiting.append(_Request(stream, stream.generation, rows, future))
        return future

    def _flush(self) -> None:
        batch, self._waiting = self._waiting, []
        try:
            probs, hn, cn = self._run(batch)
        except Exception as exc:  # every waiting session hears of it, none hangs
            for request in batch:
                if request.generation == request.stream.generation:
                    request.stream.waiting = False
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        for i, request in enumerate(batch):
            stream = request.stream
            if request.generation == stream.generation:  # not reset meanwhile
                stream.h, stream.c, stream.waiting = hn[0, i], cn[0, i], False
            if not request.future.done():  # done: the session's task was cancelled
                request.future.set_result(probs[i, : request.rows.shape[0]])

    def _run(self, batch: list[_Request]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.calls += 1
        lengths = np.array([r.rows.shape[0] for r in batch], dtype=np.int32)
        starts = np.concatenate([[0], np.cumsum(lengths[:-1])])
        total = int(lengths.sum())
        steps = np.arange(int(lengths.max()))[:, None]
        # slots[t, n]: row of stream n's t-th window; `total` (a row of zeros) past its end.
        slots = np.where(steps < lengths[None, :], starts[None, :] + steps, total).astype(np.int64)
        feed = {
            "input": np.concatenate([r.rows for r in batch]) if len(batch) > 1 else batch[0].rows,
            "slots": slots,
            "lengths": lengths,
            "h": np.stack([r.stream.h for r in batch])[None],
            "c": np.stack([r.stream.c for r in batch])[None],
        }
        probs, hn, cn = self._session.run(None, feed)
        return probs, hn, cn
