"""Runs blocking engine work off the event loop, with a bounded queue.

The minimal scheduler: a dedicated thread pool per engine and admission
control (reject with 429 when the queue is full, never queue without bound).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import AsyncIterator, Callable, Iterator, TypeVar

from voxhost.errors import Overloaded

T = TypeVar("T")


class EngineExecutor:
    def __init__(self, name: str, *, workers: int = 1, max_queue: int = 64):
        self.name = name
        self.workers = workers
        self.max_queue = max_queue
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"engine-{name}")
        self._lock = threading.Lock()
        self._pending = 0  # queued + running

    @property
    def pending(self) -> int:
        return self._pending

    def _admit(self) -> None:
        with self._lock:
            if self._pending >= self.max_queue + self.workers:
                raise Overloaded(
                    f"The {self.name} queue is full ({self.max_queue} waiting); retry shortly.",
                    retry_after=1.0,
                )
            self._pending += 1

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, fn: Callable[..., T], *args) -> T:
        self._admit()
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, fn, *args)
        finally:
            self._release()

    async def stream(self, produce: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Drain a blocking iterator on the pool, yielding its items as they come.

        If the consumer stops early (client gone), the producer thread stops
        at its next item.
        """
        self._admit()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        done = object()

        def pump() -> None:
            try:
                for item in produce():
                    if stop.is_set():
                        break
                    loop.call_soon_threadsafe(queue.put_nowait, (item, None))
            except BaseException as exc:  # forwarded to the consumer
                loop.call_soon_threadsafe(queue.put_nowait, (done, exc))
                return
            loop.call_soon_threadsafe(queue.put_nowait, (done, None))

        future = loop.run_in_executor(self._pool, pump)
        try:
            while True:
                item, exc = await queue.get()
                if exc is not None:
                    raise exc
                if item is done:
                    break
                yield item
        finally:
            stop.set()
            future.add_done_callback(lambda _: self._release())

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
