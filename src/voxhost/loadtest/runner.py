"""Runs stages of rising offered load and samples the server's queue depth.

Each stage has P players (closed loop: think, talk, wait for the answer).
Each turn picks a scenario by its weight: push-to-talk over the live
protocol, push-to-talk over REST, or an NPC line through TTS. Bounded by
`max_requests` and each stage's duration; talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from urllib.parse import urlparse

import httpx

from voxhost.loadtest.scenarios import Sample, Scenario

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Stage:
    players: int
    started: float = 0.0
    ended: float = 0.0
    offered_rps: float = 0.0  # what the players would send if answers were instant
    samples: list[Sample] = field(default_factory=list)


@dataclass
class LoadResult:
    stages: list[Stage]
    depth: list[tuple[float, float]]  # (seconds since start, queued jobs)
    t0: float
    scenarios: list[Scenario]


def check_local(url: str, allow_remote: bool = False) -> None:
    """This machine only, unless the operator says the remote server is their own
    (a deployment behind its load balancer: docs/deploy.md, runbook step 10)."""
    host = urlparse(url).hostname or ""
    if host not in LOCAL_HOSTS and not allow_remote:
        raise ValueError(f"the load test only targets this machine (127.0.0.1), not {host!r}; "
                         "--allow-remote for your own deployment")


async def _scrape_depth(client: httpx.AsyncClient, out: list, t0: float, stop: asyncio.Event, every: float):
    while not stop.is_set():
        try:
            text = (await client.get("/metrics", timeout=5)).text
            depth = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("voxhost_queue_depth{"))
            out.append((time.monotonic() - t0, depth))
        except (httpx.HTTPError, ValueError):
            pass
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def run_load(base_url: str, scenarios: list[tuple[Scenario, float]], *, players: list[int],
                   stage_seconds: float, think_s: float, max_requests: int, api_key: str | None = None,
                   seed: int = 7, on_sample=None, allow_remote: bool = False) -> LoadResult:
    check_local(base_url, allow_remote)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=max(players) * 2 + 4)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300, limits=limits) as client:
        t0 = time.monotonic()
        depth: list[tuple[float, float]] = []
        stop = asyncio.Event()
        scraper = asyncio.create_task(_scrape_depth(client, depth, t0, stop, 0.5))
        budget = [max_requests]
        stages: list[Stage] = []
        for count in players:
            stage = Stage(players=count, started=time.monotonic() - t0, offered_rps=count / think_s)
            end = time.monotonic() + stage_seconds

            async def player(index: int, stage=stage, end=end):
                rng = random.Random(seed * 1000 + index + 100 * len(stages))
                await asyncio.sleep(rng.uniform(0, think_s))  # players don't all talk at once
                while time.monotonic() < end and budget[0] > 0:
                    live = [(s, w) for s, w in scenarios if s.enabled]
                    if not live:
                        return
                    scenario = rng.choices([s for s, _ in live], [w for _, w in live])[0]
                    budget[0] -= 1
                    sample = await scenario.turn(client, rng)
                    if sample is not None:
                        stage.samples.append(sample)
                        if on_sample:
                            on_sample(sample)
                    await asyncio.sleep(rng.expovariate(1.0 / think_s))

            await asyncio.gather(*(player(i) for i in range(count)))
            stage.ended = time.monotonic() - t0
            stages.append(stage)
            if budget[0] <= 0:
                break
        stop.set()
        await scraper
    return LoadResult(stages, depth, t0, [s for s, _ in scenarios])


async def run_roles(base_url: str, roles: list[tuple[Scenario, int]], *, stop: asyncio.Event, think_s: float,
                    api_key: str | None = None, seed: int = 7, on_sample=None,
                    allow_remote: bool = False) -> list[Sample]:
    """Fixed players until `stop`: `count` players per scenario, each a closed loop of its
    scenario's turns and think time (an open-mic player's turn is a whole session). For
    tests of a fleet, where each kind of traffic must be there throughout an event."""
    check_local(base_url, allow_remote)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    samples: list[Sample] = []
    players = sum(count for _, count in roles)
    limits = httpx.Limits(max_connections=players * 2 + 4)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300, limits=limits) as client:
        async def player(scenario: Scenario, index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            await asyncio.sleep(rng.uniform(0, think_s))
            while not stop.is_set() and scenario.enabled:
                sample = await scenario.turn(client, rng)
                if sample is not None:
                    samples.append(sample)
                    if on_sample:
                        on_sample(sample)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rng.expovariate(1.0 / think_s))

        index = 0
        tasks = []
        for scenario, count in roles:
            for _ in range(count):
                tasks.append(player(scenario, index))
                index += 1
        await asyncio.gather(*tasks)
    return samples
