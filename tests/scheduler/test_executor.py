"""Scheduler logic with fake engines: order, lanes, batching, deadlines,
cancellation, admission. Real-model batching is tested in tests/engines and
tests/api."""

from __future__ import annotations

import asyncio
import threading

import pytest

from voxhost.api.admission import SessionGate
from voxhost.errors import DeadlineExceeded, Overloaded, SessionRejected
from voxhost.ops import context
from voxhost.ops.cost import ComputeCost
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.lanes import Lane
from voxhost_testing import Gate
from voxhost_testing import until as _until


async def _hold(ex: EngineExecutor) -> tuple[Gate, asyncio.Task]:
    gate = Gate()
    task = asyncio.ensure_future(ex.run(gate, lane=Lane.BULK))
    await _until(gate.started.is_set)
    return gate, task


def test_lanes_run_in_priority_order_and_fifo_within_a_lane():
    async def main():
        ex = EngineExecutor("fake", workers=1)
        order = []
        gate, held = await _hold(ex)
        tasks = []
        for lane, tag in [(Lane.BULK, "b1"), (Lane.INTERACTIVE, "i1"), (Lane.LIVE, "l1"),
                          (Lane.INTERACTIVE, "i2"), (Lane.LIVE, "l2")]:
            tasks.append(asyncio.ensure_future(ex.run(order.append, tag, lane=lane)))
        await _until(lambda: ex.queued == 5)
        gate.release.set()
        await asyncio.gather(held, *tasks)
        assert order == ["l1", "l2", "i1", "i2", "b1"]
        ex.shutdown()

    asyncio.run(main())


def test_full_lane_rejects_with_retry_after_and_accepted_jobs_all_complete():
    async def main():
        ex = EngineExecutor("fake", workers=1, max_queue=2)
        gate, held = await _hold(ex)
        accepted = [asyncio.ensure_future(ex.run(lambda i=i: i)) for i in range(2)]
        await _until(lambda: ex.depth(Lane.INTERACTIVE) == 2)
        with pytest.raises(Overloaded) as info:
            await ex.run(lambda: "too many")
        assert info.value.status_code == 429 and info.value.retry_after >= 1
        # Another lane has its own bound: a live turn still gets in.
        live = asyncio.ensure_future(ex.run(lambda: "live", lane=Lane.LIVE))
        await _until(lambda: ex.depth(Lane.LIVE) == 1)
        gate.release.set()
        assert await asyncio.gather(*accepted, live) == [0, 1, "live"]
        assert await ex.run(lambda: "again") == "again"  # recovered
        await held
        ex.shutdown()

    asyncio.run(main())


def test_job_past_its_deadline_is_shed_not_run():
    async def main():
        ex = EngineExecutor("fake", workers=1)
        ran = []
        gate, held = await _hold(ex)
        late = asyncio.ensure_future(ex.run(ran.append, "late", deadline_s=0.01))
        ok = asyncio.ensure_future(ex.run(ran.append, "ok", deadline_s=60))
        await _until(lambda: ex.queued == 2)
        await asyncio.sleep(0.05)  # let the first deadline pass while the worker is held
        gate.release.set()
        with pytest.raises(DeadlineExceeded):
            await late
        await ok
        assert ran == ["ok"]
        await held
        ex.shutdown()

    asyncio.run(main())


def test_cancelled_waiter_leaves_the_queue():
    async def main():
        ex = EngineExecutor("fake", workers=1)
        ran = []
        gate, held = await _hold(ex)
        waiter = asyncio.ensure_future(ex.run(ran.append, "gone"))
        await _until(lambda: ex.queued == 1)
        waiter.cancel()
        await asyncio.sleep(0)
        assert ex.queued == 0
        gate.release.set()
        await held
        assert await ex.run(ran.append, "next") is None
        assert ran == ["next"]
        ex.shutdown()

    asyncio.run(main())


def test_cancelled_running_job_finishes_and_its_result_is_dropped():
    async def main():
        ex = EngineExecutor("fake", workers=1)
        gate = Gate()
        waiter = asyncio.ensure_future(ex.run(gate))
        await _until(gate.started.is_set)
        waiter.cancel()
        gate.release.set()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # The worker is free again: the next job runs.
        assert await ex.run(lambda: "after") == "after"
        assert ex.running == 0
        ex.shutdown()

    asyncio.run(main())


def test_cancelled_running_job_is_told_to_stop():
    """A long job given a `stop` event ends part-way when its caller goes away
    (a decode of many windows for a client that hung up), freeing the worker."""
    async def main():
        ex = EngineExecutor("fake", workers=1)
        stop, started, steps = threading.Event(), threading.Event(), []

        def long_work():
            started.set()
            while not stop.wait(0.01):  # one "window" at a time, checking between them
                steps.append(1)
                if len(steps) > 500:
                    return "ran to the end"
            return "stopped"

        waiter = asyncio.ensure_future(ex.run(long_work, stop=stop))
        await _until(started.is_set)
        waiter.cancel()
        await _until(lambda: ex.running == 0)
        assert stop.is_set() and len(steps) < 500
        with pytest.raises(asyncio.CancelledError):
            await waiter
        ex.shutdown()

    asyncio.run(main())


def test_compatible_jobs_are_batched_up_to_max_batch():
    async def main():
        ex = EngineExecutor("fake", workers=1, max_batch=4)
        sizes = []

        def double(items):
            sizes.append(len(items))
            return [x * 2 for x in items]

        gate, held = await _hold(ex)
        tasks = [asyncio.ensure_future(ex.run_batched(double, i, key="k")) for i in range(6)]
        other = asyncio.ensure_future(ex.run_batched(double, 100, key="other"))
        await _until(lambda: ex.queued == 7)
        gate.release.set()
        assert await asyncio.gather(*tasks) == [0, 2, 4, 6, 8, 10]
        assert await other == 200
        assert sorted(sizes) == [1, 2, 4]  # keys never mixed; 6 -> 4 + 2
        await held
        ex.shutdown()

    asyncio.run(main())


def test_batch_window_waits_for_company_when_idle():
    async def main():
        ex = EngineExecutor("fake", workers=1, max_batch=8, max_wait_s=0.5)
        sizes = []

        def ident(items):
            sizes.append(len(items))
            return items

        first = asyncio.ensure_future(ex.run_batched(ident, "a", key="k"))
        await asyncio.sleep(0.02)  # well inside the window
        second = asyncio.ensure_future(ex.run_batched(ident, "b", key="k"))
        assert await asyncio.gather(first, second) == ["a", "b"]
        assert sizes == [2]
        ex.shutdown()

    asyncio.run(main())


def test_a_failing_item_fails_only_its_caller():
    async def main():
        ex = EngineExecutor("fake", workers=1, max_batch=4)

        def picky(items):
            return [ValueError("bad clip") if x == "bad" else x.upper() for x in items]

        gate, held = await _hold(ex)
        good = asyncio.ensure_future(ex.run_batched(picky, "good", key="k"))
        bad = asyncio.ensure_future(ex.run_batched(picky, "bad", key="k"))
        await _until(lambda: ex.queued == 2)
        gate.release.set()
        assert await good == "GOOD"
        with pytest.raises(ValueError):
            await bad
        await held
        ex.shutdown()

    asyncio.run(main())


def test_stream_yields_in_order_and_respects_priority():
    async def main():
        ex = EngineExecutor("fake", workers=1)
        order = []
        gate, held = await _hold(ex)

        async def consume():
            return [x async for x in ex.stream(lambda: iter(range(3)), lane=Lane.BULK)]

        streamed = asyncio.ensure_future(consume())
        live = asyncio.ensure_future(ex.run(order.append, "live", lane=Lane.LIVE))
        await _until(lambda: ex.queued == 2)
        gate.release.set()
        assert await streamed == [0, 1, 2]
        await live
        assert order == ["live"]
        await held
        ex.shutdown()

    asyncio.run(main())


def test_a_streamed_job_is_costed_even_when_its_last_item_beats_its_completion():
    """Streamed speech of every format must be priced. The consumer can read the last item
    before the job's own completion reaches the loop; cancelling the job then lost its cost."""
    import time

    def produce():
        yield b"audio"
        time.sleep(0.05)  # a worker's real time, then the tail at once
        yield b"tail"

    async def main():
        ex = EngineExecutor("fake", workers=1, cost=ComputeCost(price_per_hour=3600.0))
        for _ in range(20):  # the race is a loop turn wide: repeat it
            ctx = context.RequestContext()
            token = context.activate(ctx)
            try:
                assert [x async for x in ex.stream(produce)] == [b"audio", b"tail"]
            finally:
                context.deactivate(token)
            assert ctx.compute_seconds >= 0.05 and ctx.cost_usd == pytest.approx(ctx.compute_seconds, rel=1e-6)
        ex.shutdown()

    asyncio.run(main())


def test_request_context_gets_queue_compute_and_cost():
    async def main():
        ex = EngineExecutor("fake", workers=2, cost=ComputeCost(price_per_hour=3600.0))
        ctx = context.RequestContext()
        token = context.activate(ctx)
        try:
            await ex.run(lambda: sum(range(200_000)))
        finally:
            context.deactivate(token)
        assert ctx.compute_seconds > 0
        # $1/s of compute, shared by 2 workers.
        assert ctx.cost_usd == pytest.approx(ctx.compute_seconds / 2, rel=1e-6)
        ex.shutdown()

    asyncio.run(main())


def test_session_gate_capacity_per_key_and_drain():
    async def main():
        changes = []
        gate = SessionGate(max_sessions=2, max_per_key=1, on_change=changes.append)
        async with gate.session("a"):
            assert not gate.can_admit_session("a")  # per-key cap
            with pytest.raises(SessionRejected) as info:
                async with gate.session("a"):
                    pass
            assert info.value.close_code == 1013
            async with gate.session("b"):
                assert not gate.can_admit_session("c")  # process cap
        assert gate.active == 0 and gate.can_admit_session("c")
        gate.draining = True
        assert not gate.can_admit_session("c")
        await asyncio.wait_for(gate.wait_idle(), 1)
        assert changes == [1, 2, 1, 0]

    asyncio.run(main())


def test_live_admission_refuses_sessions_when_full_or_draining():
    from voxhost.api.admission import live_refusal
    from voxhost.api.app import build_state
    from voxhost.ops.settings import Settings

    state = build_state(Settings(max_live_sessions=1, queue_max_per_lane=1))

    class Engine:
        name = "fake"
        device = "cpu"
        num_workers = 1

    engine = Engine()
    state.services.stt_engines.engines[state.settings.stt_models[0]] = engine

    def refused(key):
        refusal = live_refusal(state, key)
        return refusal.reason if refusal is not None else None

    async def main():
        assert refused("k") == "not_ready"
        state.ready.set()
        assert refused("k") is None
        async with state.sessions.session("k"):
            assert refused("other") == "capacity"
        assert refused("k") is None
        executor = state.services.stt_scheduler.executor_for(engine)
        gate, held = await _hold(executor)
        queued = asyncio.ensure_future(executor.run(lambda: None, lane=Lane.LIVE))
        await _until(lambda: executor.depth(Lane.LIVE) == 1)
        assert refused("k") == "capacity"  # live lane full
        gate.release.set()
        await asyncio.gather(held, queued)
        # Room in the live lane, but the work ahead would keep a final waiting past its limit.
        executor.service_times.seed(30.0)
        gate, held = await _hold(executor)
        assert executor.expected_wait(Lane.LIVE) > state.settings.realtime_max_final_wait_seconds
        assert refused("k") == "capacity"
        gate.release.set()
        await held
        state.draining.set()
        assert refused("k") == "draining"
        state.services.shutdown()

    asyncio.run(main())



def test_idle_only_with_nothing_running_or_queued():
    """What the TTS service asks before cutting a line's first chunk short (tts/service.py)."""
    async def main():
        ex = EngineExecutor("fake", workers=2)
        assert ex.idle
        first, held = await _hold(ex)
        assert not ex.idle  # a worker is free, but the cores are shared
        second, held2 = await _hold(ex)
        queued = asyncio.ensure_future(ex.run(lambda: "bulk", lane=Lane.BULK))
        await _until(lambda: ex.depth(Lane.BULK) == 1)
        first.release.set()
        second.release.set()
        assert not ex.idle
        await asyncio.gather(held, held2)
        assert await queued == "bulk"
        await _until(lambda: ex.running == 0)
        assert ex.idle
        ex.shutdown()

    asyncio.run(main())
