"""One scheduler per engine: it owns the model and decides what runs next.

- Bounded queues per priority lane (live > interactive > bulk). A full lane
  rejects at admission with Overloaded (429 + Retry-After); a job that was
  admitted is never dropped for load.
- Admission by expected wait (scheduler/expected_wait.py): a lane with a wait
  budget refuses a job whose expected queue wait, from the measured service
  time of the work ahead, is past it; Retry-After says that wait.
- A per-job deadline: a job still queued when its deadline passes is failed
  with DeadlineExceeded instead of running late (its result would be useless).
- Cancellation: if the awaiting caller is cancelled (client went away), a
  queued job leaves the queue; a running one has its `stop` event set (if the
  caller gave one, for work that can stop part-way, like a long decode) and
  its result is dropped.
- Dynamic batching (like Triton's dynamic batcher): jobs that carry the same
  `batch_key` are run together by their `batch_fn`, up to `max_batch` at once,
  waiting at most `max_wait_s` after the oldest arrived for company.
- `workers` jobs (or batches) run at once, on a thread pool, off the event loop.

Knows nothing of HTTP or models: callers hand it plain callables.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from voxhost.errors import DeadlineExceeded, Overloaded
from voxhost.ops import context
from voxhost.ops.cost import ComputeCost
from voxhost.scheduler.expected_wait import ServiceTimes, expected_start, retry_after_s
from voxhost.scheduler.lanes import LANES, Lane

T = TypeVar("T")


class SchedulerObserver(Protocol):
    """What the scheduler reports (ops/metrics.py implements it)."""

    def queue_depth(self, engine: str, lane: str, depth: int) -> None: ...
    def in_flight(self, engine: str, count: int) -> None: ...
    def batch(self, engine: str, size: int) -> None: ...
    def job_done(self, engine: str, lane: str, queue_s: float, compute_s: float) -> None: ...
    def rejected(self, engine: str, lane: str, reason: str) -> None: ...


class _NullObserver:
    def queue_depth(self, engine, lane, depth): pass
    def in_flight(self, engine, count): pass
    def batch(self, engine, size): pass
    def job_done(self, engine, lane, queue_s, compute_s): pass
    def rejected(self, engine, lane, reason): pass


@dataclass(eq=False)
class _Job:
    lane: Lane
    call: Callable[[], Any] | None  # unbatched work
    item: Any = None  # batched work: this job's input to batch_fn
    batch_key: Hashable | None = None
    batch_fn: Callable[[list], Sequence[Any]] | None = None
    deadline: float | None = None  # time.monotonic()
    enqueued: float = field(default_factory=time.monotonic)
    # Jobs are made inside the coroutines that submit them, so on the loop that awaits them.
    future: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    stop: threading.Event | None = None  # set when the waiter goes away while the job runs
    # Admission: the job's size (seconds of audio, characters of text; None: unknown), what
    # else its service time depends on (the engine, where one executor serves several),
    # and the service seconds expected of it (ServiceTimes), set when it is admitted.
    units: float | None = None
    kind: Hashable = None
    estimate: float = 0.0
    # Filled when it runs, read by the waiter for accounting.
    started: float = 0.0
    compute_s: float = 0.0
    batch_size: int = 1


class EngineExecutor:
    def __init__(
        self,
        name: str,
        *,
        workers: int = 1,
        max_queue: int = 64,
        max_batch: int = 1,
        max_wait_s: float = 0.0,
        deadline_s: float | None = None,
        cost: ComputeCost | None = None,
        observer: SchedulerObserver | None = None,
        wait_budgets: Mapping[Lane, float] | None = None,
        service_times: ServiceTimes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`wait_budgets`: per lane, the longest expected queue wait (seconds) a new
        job may have; a lane without one admits up to `max_queue` waiting."""
        self.name = name
        self.workers = max(1, workers)
        self.max_queue = max_queue  # per lane
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max_wait_s
        self.deadline_s = deadline_s
        self.cost = cost
        self.observer: SchedulerObserver = observer or _NullObserver()
        self.wait_budgets: dict[Lane, float] = dict(wait_budgets or {})
        self.service_times = service_times or ServiceTimes()
        self._clock = clock
        self._arriving: dict[Lane, int] = {lane: 0 for lane in LANES}
        self._active: dict[int, tuple[float, float]] = {}  # running batch -> (started, expected seconds)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"engine-{name}")
        self._queues: dict[Lane, deque[_Job]] = {lane: deque() for lane in LANES}
        self._running = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()  # made anew for each loop the executor is used from
        self._dispatcher: asyncio.Task | None = None
        self._closed = False
        for lane in LANES:  # every series exists from the start: dashboards see 0, not "no data"
            self.observer.queue_depth(name, lane.value, 0)
        self.observer.in_flight(name, 0)

    # ---- introspection -------------------------------------------------
    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queues.values())

    @property
    def running(self) -> int:
        return self._running

    @property
    def pending(self) -> int:
        return self.queued + self._running

    def depth(self, lane: Lane) -> int:
        return len(self._queues[lane])

    def has_room(self, lane: Lane) -> bool:
        """Whether one more job fits this lane. `max_queue` bounds jobs that
        will actually wait: a queued job that a
        free worker takes on the dispatcher's next turn is not waiting, so
        max_queue=0 means "no waiting", not "closed"."""
        free = max(0, self.workers - self._running)
        ahead = sum(len(self._queues[other]) for other in LANES[: LANES.index(lane)])
        waiting_if_added = max(0, len(self._queues[lane]) + 1 - max(0, free - ahead))
        return waiting_if_added <= self.max_queue

    @property
    def idle(self) -> bool:
        """Nothing running and nothing queued: a job admitted now would have the engine to itself."""
        return self._running == 0 and self.queued == 0

    def expected_wait(self, lane: Lane) -> float:
        """Seconds a job admitted to `lane` now is expected to wait before it starts:
        the running work's estimated remainder, then every queued (or arriving) job
        of this lane and the more urgent ones, each on the worker that frees first."""
        now = self._clock()
        running = [self.service_times.remaining(expected, now - started) for started, expected in self._active.values()]
        ahead: list[float] = []
        for other in LANES[: LANES.index(lane) + 1]:
            ahead += [job.estimate for job in self._queues[other] if not job.future.done()]
            if self._arriving[other]:
                ahead += [self.service_times.estimate(None, other.value)] * self._arriving[other]
        return expected_start(self.workers, running, ahead)

    def refusal(self, lane: Lane, *, check_wait: bool = True) -> Overloaded | None:
        """Why a new job in `lane` would be refused now (None: it would be admitted)."""
        refused = self._refusal(lane, check_wait)
        return refused[1] if refused else None

    def admit(self, lane: Lane, *, check_wait: bool = True) -> None:
        """Raise the refusal a new job in `lane` would get now (counted), if any."""
        refused = self._refusal(lane, check_wait)
        if refused is not None:
            reason, error = refused
            self.observer.rejected(self.name, lane.value, reason)
            raise error

    def _refusal(self, lane: Lane, check_wait: bool) -> tuple[str, Overloaded] | None:
        if self._closed:
            return "shutdown", Overloaded(f"The {self.name} engine is shutting down.", retry_after=5.0)
        if not self.has_room(lane):
            return "queue_full", Overloaded(
                f"The {self.name} {lane.value} queue is full ({self.max_queue} waiting); retry shortly.",
                retry_after=retry_after_s(self.expected_wait(lane)),
            )
        budget = self.wait_budgets.get(lane) if check_wait else None
        if budget:  # None or 0: no budget
            wait = self.expected_wait(lane)
            if wait > budget:
                return "wait_budget", Overloaded(
                    f"The {self.name} {lane.value} queue holds about {wait:.1f} s of work, over this "
                    f"server's {budget:g} s budget for waiting; retry in {math.ceil(wait)} s or use another instance.",
                    retry_after=retry_after_s(wait),
                )
        return None

    @contextmanager
    def arriving(self, lane: Lane) -> Iterator[None]:
        """Count a job that was admitted but is not queued yet (its audio still
        decoding) in the expected wait of the jobs after it, as the lane's mean job:
        a burst is refused at the door, before each request's decode is paid for."""
        self._arriving[lane] += 1
        try:
            yield
        finally:
            self._arriving[lane] -= 1

    # ---- public API ----------------------------------------------------
    async def run(self, fn: Callable[..., T], *args, lane: Lane = Lane.INTERACTIVE,
                  deadline_s: float | None = None, stop: threading.Event | None = None,
                  units: float | None = None, kind: Hashable = None, check_wait: bool = True) -> T:
        """Run `fn(*args)` on the engine's pool in priority order. `stop`, if given,
        is set when the caller is cancelled while `fn` runs, for `fn` to end early.
        `units`/`kind`: the job's size and kind, for its expected service time;
        `check_wait=False`: the caller already admitted it (`admit`)."""
        job = _Job(lane=lane, call=lambda: fn(*args), stop=stop, units=units, kind=kind)
        return await self._submit(job, deadline_s, check_wait)

    async def run_batched(self, batch_fn: Callable[[list], Sequence[Any]], item: Any, key: Hashable, *,
                          lane: Lane = Lane.INTERACTIVE, deadline_s: float | None = None,
                          units: float | None = None, kind: Hashable = None, check_wait: bool = True) -> Any:
        """Run `item` through `batch_fn([items...])` together with queued jobs of the same `key`.

        `batch_fn` returns one result per item, in order; an Exception instance
        as a result fails only that item.
        """
        if self.max_batch <= 1:
            return await self.run(lambda: _unwrap(batch_fn([item])[0]), lane=lane, deadline_s=deadline_s,
                                  units=units, kind=kind, check_wait=check_wait)
        job = _Job(lane=lane, call=None, item=item, batch_key=key, batch_fn=batch_fn, units=units, kind=kind)
        return await self._submit(job, deadline_s, check_wait)

    async def stream(self, produce: Callable[[], Iterator[T]], *, lane: Lane = Lane.INTERACTIVE,
                     deadline_s: float | None = None, units: float | None = None, kind: Hashable = None,
                     check_wait: bool = True) -> AsyncGenerator[T, None]:
        """Drain a blocking iterator on the pool (one worker slot), yielding items as they come.

        If the consumer stops early (client gone), the producer stops at its next item.
        """
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

        # The job finishes when the producer is exhausted; items flow meanwhile.
        finished = asyncio.ensure_future(self._submit(_Job(lane=lane, call=pump, units=units, kind=kind),
                                                      deadline_s, check_wait))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, finished}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    finished.result()  # rejected/expired before producing: raise it
                    item, exc = await queue.get()  # pump finished: its items are queued
                else:
                    item, exc = getter.result()
                if exc is not None:
                    raise exc
                if item is done:
                    break
                yield item
            # The last item can arrive before the job's own completion: wait for it, so
            # the job's compute and cost reach the request (cancelling it lost them).
            await finished
        finally:
            stop.set()
            if not finished.done():
                finished.cancel()  # still queued: leave the queue; running: pump stops
            else:
                finished.exception() if not finished.cancelled() else None

    def shutdown(self) -> None:
        self._closed = True
        if self._dispatcher is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._dispatcher.cancel)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- internals -----------------------------------------------------
    def _ensure_dispatcher(self) -> None:
        loop = asyncio.get_running_loop()
        if self._dispatcher is None or self._loop is not loop or self._dispatcher.done():
            self._loop = loop
            self._wake = asyncio.Event()
            self._dispatcher = loop.create_task(self._dispatch(), name=f"scheduler-{self.name}")

    async def _submit(self, job: _Job, deadline_s: float | None, check_wait: bool = True) -> Any:
        self._ensure_dispatcher()
        self.admit(job.lane, check_wait=check_wait)
        job.estimate = self.service_times.estimate(job.kind, job.lane.value, job.units)
        limit = deadline_s if deadline_s is not None else self.deadline_s
        if limit is not None:
            job.deadline = job.enqueued + limit
        self._queues[job.lane].append(job)
        self._report_depth(job.lane)
        self._wake.set()
        try:
            result = await asyncio.shield(job.future)
        except asyncio.CancelledError:
            # Client gone. Queued: leave the queue now. Running: told to stop if it
            # can; the runner finds the future cancelled and drops the result.
            if job in self._queues[job.lane]:
                self._queues[job.lane].remove(job)
                self._report_depth(job.lane)
            elif job.stop is not None:
                job.stop.set()
            job.future.cancel()
            raise
        self._account(job)
        return result

    def _account(self, job: _Job) -> None:
        queue_s = max(0.0, job.started - job.enqueued)
        usd = 0.0
        if self.cost is not None:
            usd = self.cost.request_usd(job.compute_s, parallelism=self.workers * job.batch_size)
        ctx = context.current()
        if ctx is not None:
            ctx.add_job(queue_s, job.compute_s, usd)

    def _report_depth(self, lane: Lane) -> None:
        self.observer.queue_depth(self.name, lane.value, len(self._queues[lane]))

    def _next_job(self) -> _Job | None:
        """Highest-priority live job; expired ones are failed on the way."""
        now = time.monotonic()
        for lane in LANES:
            queue = self._queues[lane]
            while queue:
                job = queue.popleft()
                self._report_depth(lane)
                if job.future.done():  # cancelled while queued
                    continue
                if job.deadline is not None and now > job.deadline:
                    self.observer.rejected(self.name, lane.value, "deadline")
                    job.future.set_exception(DeadlineExceeded(
                        f"The request waited longer than its {job.deadline - job.enqueued:.0f} s deadline "
                        f"in the {self.name} queue; retry shortly.",
                        retry_after=retry_after_s(self.expected_wait(lane)),
                    ))
                    continue
                return job
        return None

    def _take_compatible(self, key: Hashable, limit: int) -> list[_Job]:
        """Pull up to `limit` queued jobs sharing `key`, most urgent lanes first."""
        taken: list[_Job] = []
        now = time.monotonic()
        for lane in LANES:
            queue = self._queues[lane]
            for job in list(queue):
                if len(taken) >= limit:
                    break
                if job.batch_key == key and not job.future.done() and (job.deadline is None or now <= job.deadline):
                    queue.remove(job)
                    taken.append(job)
            self._report_depth(lane)
        return taken

    async def _dispatch(self) -> None:
        free = asyncio.Semaphore(self.workers)
        while not self._closed:
            await free.acquire()
            job = self._next_job()
            while job is None:
                self._wake.clear()
                await self._wake.wait()
                job = self._next_job()
            batch = [job]
            if job.batch_key is not None:
                batch += self._take_compatible(job.batch_key, self.max_batch - 1)
                close_at = job.enqueued + self.max_wait_s
                while len(batch) < self.max_batch and (left := close_at - time.monotonic()) > 0:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), left)
                    except TimeoutError:
                        break
                    batch += self._take_compatible(job.batch_key, self.max_batch - len(batch))
                batch = [j for j in batch if not j.future.done()]  # cancelled during the window
                if not batch:
                    free.release()
                    continue
            self._running += 1
            self.observer.in_flight(self.name, self._running)
            asyncio.get_running_loop().create_task(self._execute(batch, free))
            # Let go of it here: this loop would otherwise hold the last job (its audio)
            # until the next one arrives.
            del job, batch

    async def _execute(self, batch: list[_Job], free: asyncio.Semaphore) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        for job in batch:
            job.started = started
            job.batch_size = len(batch)
        self._active[id(batch)] = (self._clock(), sum(job.estimate for job in batch))
        try:
            call, fn = batch[0].call, batch[0].batch_fn
            if call is not None:
                outcome = await _capture(loop.run_in_executor(self._pool, call))
                outcomes = [outcome]
            else:
                assert fn is not None  # a job carries its call, or its batch's function
                self.observer.batch(self.name, len(batch))
                items = [j.item for j in batch]
                outcome = await _capture(loop.run_in_executor(self._pool, fn, items))
                if isinstance(outcome, BaseException):
                    outcomes = [outcome] * len(batch)
                else:
                    outcomes = list(outcome)
            compute_s = time.monotonic() - started
            shares = _shares(batch)
            for job, result, share in zip(batch, outcomes, shares):
                job.compute_s = compute_s
                self.observer.job_done(self.name, job.lane.value, started - job.enqueued, compute_s)
                if job.future.done():  # the waiter is gone: drop the result (its run may have stopped early)
                    continue
                if not isinstance(result, BaseException):
                    self.service_times.record(job.kind, job.lane.value, job.units, compute_s * share, job.estimate)
                if isinstance(result, BaseException):
                    job.future.set_exception(result)
                else:
                    job.future.set_result(result)
        finally:
            self._active.pop(id(batch), None)
            self._running -= 1
            self.observer.in_flight(self.name, self._running)
            free.release()


def _shares(batch: list[_Job]) -> list[float]:
    """Each job's share of its batch's wall time: by size where every job has one."""
    sizes = [job.units for job in batch]
    if all(size is not None for size in sizes) and sum(sizes) > 0:  # type: ignore[arg-type]
        total = float(sum(sizes))  # type: ignore[arg-type]
        return [size / total for size in sizes]  # type: ignore[operator]
    return [1.0 / len(batch)] * len(batch)


async def _capture(awaitable) -> Any:
    try:
        return await awaitable
    except Exception as exc:
        return exc


def _unwrap(result):
    if isinstance(result, BaseException):
        raise result
    return result
