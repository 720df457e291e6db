"""Admission arithmetic with fakes: measured service times, the expected wait,
the refusal and its Retry-After, and the decoded-audio memory budget. The same
through the real server and models: tests/api/test_admission.py."""

from __future__ import annotations

import asyncio

import pytest

from voxhost.errors import AudioTooLarge, Overloaded
from voxhost.scheduler.audio_memory import MB, AudioMemoryBudget
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.expected_wait import ServiceTimes, expected_start
from voxhost.scheduler.lanes import Lane
from voxhost_testing import Gate
from voxhost_testing import until as _until


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_service_time_is_fitted_as_a_line_per_lane():
    times = ServiceTimes()
    for seconds in (1, 2, 3, 4, 5, 2, 4):  # Whisper-like: a window's cost plus a little per second
        times.record(None, "interactive", seconds, 1.5 + 0.1 * seconds)
    assert times.estimate(None, "interactive", 3) == pytest.approx(1.8)
    assert times.estimate(None, "interactive", 10) == pytest.approx(2.5)
    for chars in (10, 50, 100):  # TTS-like: proportional to the text
        times.record("kokoro", "interactive", chars, 0.02 * chars)
    assert times.estimate("kokoro", "interactive", 200) == pytest.approx(4.0)


def test_recent_jobs_outweigh_old_ones():
    times = ServiceTimes(half_life_jobs=5)
    for _ in range(50):
        times.record(None, "interactive", 2.0, 1.0)
    for _ in range(20):  # the host slowed down threefold
        times.record(None, "interactive", 2.0, 3.0)
    assert times.estimate(None, "interactive", 2.0) == pytest.approx(3.0, rel=0.1)


def test_estimate_falls_back_to_another_lane_then_the_prior():
    times = ServiceTimes()
    times.seed(0.7)
    times.seed(2.0, kind="kokoro")
    assert times.estimate(None, "bulk", 600) == 0.7
    assert times.estimate("kokoro", "interactive", 50) == 2.0
    for _ in range(3):
        times.record(None, "interactive", 4.0, 2.0)  # 0.5 s per second of audio
    assert times.estimate(None, "bulk", 600) == pytest.approx(300.0)  # a rate, until bulk jobs are measured
    times.record(None, "interactive", None, 99.0)  # a job of unknown size teaches nothing
    assert times.estimate(None, "interactive") == pytest.approx(2.0)


def test_a_running_job_needs_the_mean_residual_of_recent_jobs_that_ran_longer():
    times = ServiceTimes()
    assert times.remaining(2.0, 0.5) == 1.5  # nothing measured yet: its estimate less what it ran
    for real in (0.5, 1.0, 2.0, 3.0):  # recent jobs took half to three times their estimate of 1 s
        times.record(None, "interactive", 2.0, real, expected=1.0)
    assert times.remaining(2.0, 0.0) == pytest.approx((1 + 2 + 4 + 6) / 4)
    assert times.remaining(2.0, 3.0) == pytest.approx((4 + 6) / 2 - 3)  # past its estimate, not done
    assert times.remaining(2.0, 7.0) == 0.0  # longer than any: about to end


def test_expected_start_plays_the_queue_on_the_workers():
    assert expected_start(2, [], []) == 0.0
    assert expected_start(2, [3.0], []) == 0.0  # a worker is free
    assert expected_start(2, [3.0, 1.0], []) == 1.0
    assert expected_start(2, [3.0, 1.0], [2.0]) == 3.0  # the job ahead takes the worker free at 1
    assert expected_start(1, [0.5], [1.0, 1.0, 1.0]) == 3.5
    assert expected_start(1, [-2.0], [1.0]) == 1.0  # a job past its estimate: about to finish


def _executor(clock, **kw) -> EngineExecutor:
    times = ServiceTimes()
    for _ in range(3):
        times.record(None, "interactive", 2.0, 1.0)  # a 2 s clip: 1 s
        times.record(None, "live", 1.0, 0.25)
    return EngineExecutor("fake", workers=1, service_times=times, clock=clock,
                          wait_budgets={Lane.INTERACTIVE: 2.5}, **kw)


def test_a_job_whose_expected_wait_passes_the_budget_is_refused_with_that_wait():
    async def main():
        clock = Clock()
        ex = _executor(clock)
        held = Gate()
        running = asyncio.ensure_future(ex.run(held, units=2.0))  # expected: 1 s
        await _until(held.started.is_set)
        clock.now += 0.4  # 0.6 s left
        queued = [asyncio.ensure_future(ex.run(lambda: "ok", units=2.0)) for _ in range(2)]
        await _until(lambda: ex.queued == 2)
        assert ex.expected_wait(Lane.INTERACTIVE) == pytest.approx(0.6 + 2 * 1.0)
        with pytest.raises(Overloaded) as refused:
            await ex.run(lambda: "too late", units=2.0)
        assert refused.value.status_code == 429
        assert refused.value.retry_after == pytest.approx(2.6)  # the wait it would have had
        # A live turn is not held to the REST budget, and jumps the queue.
        assert ex.expected_wait(Lane.LIVE) == pytest.approx(0.6)
        live = asyncio.ensure_future(ex.run(lambda: "live", lane=Lane.LIVE, units=1.0))
        await _until(lambda: ex.depth(Lane.LIVE) == 1)
        # Once the running job is past its estimate it counts as about to end.
        clock.now += 5.0
        assert ex.expected_wait(Lane.INTERACTIVE) == pytest.approx(0.25 + 2 * 1.0)
        held.release.set()
        assert await asyncio.gather(running, *queued, live) == ["gate", "ok", "ok", "live"]
        assert ex.expected_wait(Lane.INTERACTIVE) == 0.0
        ex.shutdown()

    asyncio.run(main())


def test_arriving_requests_count_and_an_admitted_job_is_not_refused_again():
    async def main():
        clock = Clock()
        ex = _executor(clock)
        held = Gate()
        running = asyncio.ensure_future(ex.run(held, units=2.0))
        await _until(held.started.is_set)
        with ex.arriving(Lane.INTERACTIVE), ex.arriving(Lane.INTERACTIVE):  # two uploads still decoding
            assert ex.expected_wait(Lane.INTERACTIVE) == pytest.approx(1.0 + 2 * 1.0)
            with pytest.raises(Overloaded):
                ex.admit(Lane.INTERACTIVE)
        assert ex.expected_wait(Lane.INTERACTIVE) == pytest.approx(1.0)
        late = [asyncio.ensure_future(ex.run(lambda: "ok", units=2.0, check_wait=False)) for _ in range(3)]
        await _until(lambda: ex.queued == 3)  # admitted before their decode: no second check
        held.release.set()
        assert await asyncio.gather(running, *late) == ["gate", "ok", "ok", "ok"]
        ex.shutdown()

    asyncio.run(main())


def test_the_executor_learns_each_jobs_share_of_its_batch():
    async def main():
        ex = EngineExecutor("fake", workers=1, max_batch=4, max_wait_s=0.05)
        held = Gate()
        first = asyncio.ensure_future(ex.run(held, units=1.0))
        await _until(held.started.is_set)

        def batch(items):
            return [f"done {item}" for item in items]

        jobs = [asyncio.ensure_future(ex.run_batched(batch, i, "k", units=units)) for i, units in enumerate((1, 3))]
        await _until(lambda: ex.queued == 2)
        held.release.set()
        await asyncio.gather(first, *jobs)
        fit = ex.service_times._fits[(None, "interactive")]
        assert fit.jobs == 3 and fit.weight > 0
        ex.shutdown()

    asyncio.run(main())


def test_memory_budget_refuses_past_it_413_alone_and_frees_on_release():
    seen = []
    budget = AudioMemoryBudget(100 * MB, on_change=seen.append)
    first = budget.reservation()
    first.hold(60 * MB)
    second = budget.reservation()
    with pytest.raises(Overloaded) as busy:
        second.hold(50 * MB)
    assert busy.value.status_code == 429 and second.nbytes == 0
    with pytest.raises(AudioTooLarge) as alone:
        second.hold(101 * MB)
    assert alone.value.status_code == 413 and alone.value.param == "file"
    second.hold(40 * MB)
    assert budget.held == 100 * MB
    first.settle(30 * MB)  # decoded: what it really holds
    with second:
        second.hold(70 * MB)
    assert budget.held == 30 * MB
    first.release()
    first.release()  # idempotent
    assert budget.held == 0 and seen[-1] == 0 and max(seen) <= 100 * MB
