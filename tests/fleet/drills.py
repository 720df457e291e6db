"""Game traffic through the fleet's balancer while instances are lost, and the
table of what the players saw per event.

Traffic is `voxhost loadtest`'s (loadtest/runner.run_roles): open-mic players in
resumable live sessions, push-to-talk players over REST, NPC lines over TTS,
REST through the openai SDK with its default retries. The drills run back to
back on one fleet (each window ends where the next event begins):

1. kill -9 of one instance;
2. an instance added mid-load (it replaces the killed one: registered when ready);
3. one instance's link down for 20 s;
4. a rolling restart, SIGTERM one instance at a time (each back before the next);
5. spot-style: one instance disabled in the balancer, SIGTERM 30 s later.

Per event: REST requests that failed after the SDK's retries, live turns lost
(an utterance no final covers) and heard twice, p95 latency of what started in
the window (REST: request to answer, retries included; live: end of speech to
final), and seconds until full service: until the last moment a player met
the loss (an attempt the SDK had to retry, a live session's outage until it
resumed), and until the balancer had its full pool up again.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import httpx
import numpy as np
from fleet.harness import Fleet


@dataclass
class Event:
    name: str
    started: float
    capacity_at: float | None = None  # the balancer had its full pool UP again
    ended: float = 0.0
    note: str = ""
    balancer_retries: int = 0  # connects HAProxy retried or redispatched away from a lost server


@dataclass
class Row:
    event: str
    rest_requests: int
    rest_failed: int  # after the SDK's retries
    rest_retried: int
    rest_p95_ms: float | None
    live_turns: int
    live_lost: int
    live_duplicated: int
    live_p95_ms: float | None
    reconnects: int
    recovered_s: float  # until the last moment a player met the loss (a failed try, a session's outage)
    capacity_s: float | None  # until the balancer's pool was whole again
    note: str = ""
    balancer_retries: int = 0
    retry_causes: dict = field(default_factory=dict)  # what the SDK retried on: status or transport error
    close_codes: dict = field(default_factory=dict)  # what live sessions reconnected on
    lost_because: dict = field(default_factory=dict)  # failed (shed), empty, gave up, unanswered


@dataclass
class Traffic:
    """The load test running in a thread of its own until stopped."""

    base_url: str
    live_players: int = 3
    rest_players: int = 2
    tts_players: int = 1
    think_s: float = 0.6
    utterances: int = 8  # per open-mic session (~40 s): some outlive the spot drill's 30 s
    scenarios: list = field(default_factory=list)
    samples: list = field(default_factory=list)

    def start(self) -> None:
        from voxhost.evaluation.dataset import load_manifest, tts_sentences
        from voxhost.loadtest.scenarios import LiveConversation, NpcSpeech, RestTranscription, load_clips

        english = load_manifest(lang="en")
        speech = load_clips([u for u in english if u.audio.name.startswith("cathy_arctic") and u.duration <= 3.5])
        short = load_clips([u for u in english if 1.5 <= u.duration <= 4.0][:12])
        self.live = LiveConversation("live", "/v1/realtime", clips=speech, base_url=self.base_url,
                                     utterances=self.utterances)
        self.rest = RestTranscription("rest", "/v1/audio/transcriptions", clips=short)
        self.pinned = RestTranscription("pinned", "/v1/audio/transcriptions", clips=load_clips(
            [u for u in english if u.audio.name == "ls_2412-153948-0000.wav"]))  # 11.7 s: decoding a while
        self.pinned_samples: list = []
        self.pinned_live = LiveConversation("pinned live", "/v1/realtime", clips=speech, base_url=self.base_url)
        self.tts = NpcSpeech("tts", "/v1/audio/speech", lines=tts_sentences()[:20], cache_hit_share=0.5)
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="fleet-traffic", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from voxhost.loadtest.runner import run_roles

        asyncio.set_event_loop(self._loop)
        self.live.stop = self.pinned_live.stop = self._stop  # players leave at once when the drills end
        roles = [(self.live, self.live_players), (self.rest, self.rest_players), (self.tts, self.tts_players)]
        self.samples = self._loop.run_until_complete(
            run_roles(self.base_url, roles, stop=self._stop, think_s=self.think_s, on_sample=None))

    def pin(self, instance, *, session_s: float = 0.0, timeout: float = 15.0) -> bool:
        """Work the drill's loss must catch, sent through the balancer to `instance`: a long
        transcription (returns once the instance is serving it: its in-flight count rose) and,
        with `session_s`, an open-mic session of about that long (returns once it is live there)."""
        if session_s:
            sessions = _gauge(instance, "voxhost_live_sessions")
            utterances = max(2, int(session_s / 4.5) + 1)
            asyncio.run_coroutine_threadsafe(self._pinned_session(instance.name, utterances), self._loop)
            deadline = time.monotonic() + timeout
            while _gauge(instance, "voxhost_live_sessions") <= sessions and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)  # into its first sentence
        before = _in_flight(instance)
        asyncio.run_coroutine_threadsafe(self._pinned(instance.name), self._loop)
        deadline = time.monotonic() + timeout
        while _in_flight(instance) <= before and time.monotonic() < deadline:
            time.sleep(0.02)
        seen = _in_flight(instance) > before
        time.sleep(0.1)  # uploaded and decoding
        return seen

    async def _pinned(self, name: str) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=300) as client:
            sample = await self.pinned.turn(client, random.Random(0), headers={"X-Fleet-Server": name})
        self.pinned_samples.append(sample)

    async def _pinned_session(self, name: str, utterances: int) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=300) as client:
            await self.pinned_live.turn(client, random.Random(len(self.pinned_live.turns)),
                                        headers={"X-Fleet-Server": name}, utterances=utterances)

    def stop(self, timeout: float = 120.0) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError("the load test did not stop")


def _gauge(instance, name: str) -> float:
    try:
        text = httpx.get(instance.url + "/metrics", timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def _in_flight(instance) -> float:
    return _gauge(instance, "voxhost_http_in_flight")


def designed_voice_visible_s(fleet: Fleet, timeout: float = 10.0) -> float:
    """A voice designed through one instance, then used through another: the seconds from
    its creation until the other knows it (then it must speak with it)."""
    first, second = fleet.instances[0], fleet.instances[1]
    base = httpx.get(first.url + "/v1/audio/voices", timeout=10).json()["data"][0]["id"]
    name = f"fleet-{int(time.time() * 1000) % 10**8}"
    created = httpx.post(first.url + "/v1/audio/voices", timeout=30,
                         json={"name": name, "base": base, "pitch_semitones": -3.0, "effect": "radio"})
    created.raise_for_status()
    start = time.monotonic()
    while httpx.get(f"{second.url}/v1/audio/voices/{name}", timeout=10).status_code != 200:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"designed voice {name} unknown to {second.name} after {timeout}s")
        time.sleep(0.02)
    visible = time.monotonic() - start
    spoken = httpx.post(second.url + "/v1/audio/speech", timeout=60,
                        json={"model": "tts-1", "voice": name, "input": "Halt! Who goes there?",
                              "response_format": "wav"})
    assert spoken.status_code == 200 and name in spoken.headers.get("x-voxhost-voice", ""), spoken.text[:300]
    return visible


def run_drills(fleet: Fleet, *, steady_s: float = 5.0, observe_s: float = 4.0, link_down_s: float = 20.0,
               spot_wait_s: float = 30.0, traffic: Traffic | None = None) -> tuple[list[Row], dict]:
    """The five events on one fleet of 3 (+4 spare namespaces: s4 replaces the killed task,
    s5-s7 are a deployment's new tasks). Each event's victim is the busiest task (most live
    sessions), with an open-mic session and a long transcription pinned to it, in flight
    when the loss comes."""
    balancer = fleet.balancer
    by_name = {i.name: i for i in fleet.instances}
    traffic = traffic or Traffic(balancer.url)
    events: list[Event] = []

    def begin(name: str, note: str = "") -> Event:
        now = time.monotonic()
        if events:
            events[-1].ended = now
        events.append(Event(name, now, note=note))
        return events[-1]

    def busiest(names: list[str]):
        """The task with the most live sessions (then open connections): the loss players feel most."""
        stats = balancer.stats()
        return by_name[max(names, key=lambda n: (_gauge(by_name[n], "voxhost_live_sessions"),
                                                 int(stats[n]["scur"] or 0)))]

    def ready(instances, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        for instance in instances:
            while not instance.ready():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{instance.name} not ready:\n{instance.log_tail()}")
                time.sleep(0.1)

    traffic.start()
    try:
        begin("steady (no event)")
        time.sleep(steady_s)

        victim = busiest(["s1", "s2", "s3"])
        event = begin("kill -9 of one instance", f"{victim.name}, with a request in flight; its replacement starts loading")
        if not traffic.pin(victim, session_s=15):
            event.note += " (the pinned request was not seen in flight before the kill)"
        victim.kill()
        replacement = by_name["s4"]
        replacement.start()
        serving = [n for n in ("s1", "s2", "s3") if n != victim.name]
        time.sleep(observe_s)
        # A request that met the dead server is either answered 502 and retried by the SDK, or,
        # when it had not reached the server yet, retried by HAProxy on another (`retries`,
        # `option redispatch`): on a loaded host the pinned request can land on either path.
        lost_server = balancer.stats()[victim.name]
        event.balancer_retries = sum(int(lost_server.get(k) or 0) for k in ("wretr", "wredis"))

        ready([replacement])
        event = begin("instance added mid-load", "s4 registered once ready")
        balancer.enable(replacement.name)
        serving.append(replacement.name)
        fleet.wait_up(serving, 120)
        event.capacity_at = time.monotonic()
        time.sleep(observe_s)
        event.note += f"; it took {balancer.stats()[replacement.name]['stot']} connections in its first {observe_s:.0f} s"

        victim = busiest(serving)
        event = begin(f"link down {link_down_s:.0f} s", f"{victim.name}'s own link: silence, no resets")
        traffic.pin(victim, session_s=link_down_s + 10)
        victim.link(False)
        deployment = [by_name[n] for n in ("s5", "s6", "s7")]
        for new in deployment:  # a deployment's new tasks load meanwhile (ECS maximumPercent 200)
            new.start()
        time.sleep(link_down_s)
        victim.link(True)
        fleet.wait_up(serving, 120)
        event.capacity_at = time.monotonic()
        time.sleep(observe_s)

        ready(deployment)
        event = begin("rolling deployment (SIGTERM one at a time)",
                      "new tasks s5-s7 registered first, then the old ones drained in turn")
        for new in deployment:
            balancer.enable(new.name)
        fleet.wait_up([n.name for n in deployment], 60)
        for old in [by_name[n] for n in serving]:
            traffic.pin(old, session_s=15)
            old.terminate()
            if old.wait_exit(90) is None:
                raise RuntimeError(f"{old.name} did not exit after SIGTERM:\n{old.log_tail()}")
        event.capacity_at = time.monotonic()
        time.sleep(observe_s)

        victim = busiest([n.name for n in deployment])
        begin(f"spot: disabled, SIGTERM {spot_wait_s:.0f} s later", f"{victim.name}; no replacement started")
        traffic.pin(victim, session_s=spot_wait_s + 15)
        balancer.disable(victim.name)
        time.sleep(spot_wait_s)
        victim.terminate()
        if victim.wait_exit(90) is None:
            raise RuntimeError(f"{victim.name} did not exit after SIGTERM:\n{victim.log_tail()}")
        time.sleep(observe_s)
        events[-1].ended = time.monotonic()
    finally:
        stopping = time.monotonic()
        traffic.stop()
    return tabulate(events, traffic), {"events": [asdict(e) for e in events],
                                       "traffic_stop_s": round(time.monotonic() - stopping, 1)}


def _p95(values: list[float]) -> float | None:
    return round(float(np.percentile(values, 95)) * 1000, 0) if values else None


def tabulate(events: list[Event], traffic: Traffic) -> list[Row]:
    rest = [s for s in traffic.samples + traffic.pinned_samples
            if s.route in ("/v1/audio/transcriptions", "/v1/audio/speech")]
    turns = traffic.live.turns + traffic.pinned_live.turns
    outages = traffic.live.outages + traffic.pinned_live.outages
    rows = []
    for e in events:
        within = lambda t, e=e: e.started <= t < e.ended  # noqa: E731
        mine = [s for s in rest if within(s.start)]
        spoken = [t for t in turns if within(t.spoken_at)]
        lost = [o for o in outages if within(o.at)]
        # The last moment a player met the loss: a failed attempt (retried by the SDK), a live
        # session's outage until it resumed, a request that failed for good.
        attempts = traffic.rest.failed_attempts + traffic.tts.failed_attempts + traffic.pinned.failed_attempts
        disrupted = [t for t, _ in attempts if within(t)]
        disrupted += [o.resumed for o in lost if o.resumed is not None]
        disrupted += [s.start + s.latency for s in mine if s.status != 200]
        recovered = max(disrupted) - e.started if disrupted else 0.0
        causes = Counter(why for t, why in attempts if within(t))
        rows.append(Row(
            e.name, len(mine), sum(s.status != 200 for s in mine), sum(s.retries > 0 for s in mine),
            _p95([s.latency for s in mine]), len(spoken), sum(t.lost for t in spoken),
            sum(t.duplicated for t in spoken), _p95([t.latency for t in spoken if t.latency is not None]),
            len(lost), round(recovered, 1),
            round(e.capacity_at - e.started, 1) if e.capacity_at is not None else None, e.note, e.balancer_retries,
            dict(causes), dict(Counter(str(o.code) for o in lost)), dict(Counter(t.why for t in spoken if t.lost))))
    return rows


def table(rows: list[Row]) -> str:
    head = ("| event | REST requests | failed after SDK retries | retried | REST p95 ms | live turns | lost | "
            "heard twice | live p95 ms | reconnects | players whole after (s) | pool whole after (s) |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        cap = "–" if r.capacity_s is None else f"{r.capacity_s:.1f}"
        lines.append(f"| {r.event} | {r.rest_requests} | {r.rest_failed} | {r.rest_retried}"
                     f"{f' (+{r.balancer_retries} by HAProxy)' if r.balancer_retries else ''} | "
                     f"{r.rest_p95_ms if r.rest_p95_ms is not None else '–'} | {r.live_turns} | {r.live_lost} | "
                     f"{r.live_duplicated} | {r.live_p95_ms if r.live_p95_ms is not None else '–'} | "
                     f"{r.reconnects} | {r.recovered_s:.1f} | {cap} |")
    return "\n".join(lines)
