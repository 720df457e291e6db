"""Sticky per-player shares, fallback for every local failure, burst instead
of 429, and upstream failures - through real gateways, real clients, the real
local engines, and the fault-injecting upstream."""

from __future__ import annotations

import concurrent.futures
import math
import time

import httpx
import pytest
from faulty_upstream import UPSTREAM_KEY

from voxhost.api.gateway.policy import player_slot, wants_local

pytestmark = pytest.mark.timeout(300)


def post_clip(base_url: str, clip, player: str | None = None, **fields) -> httpx.Response:
    headers = {"X-Player-Id": player} if player else {}
    with open(clip, "rb") as f:
        return httpx.post(base_url + "/v1/audio/transcriptions", headers=headers, timeout=120,
                          files={"file": (clip.name, f, "audio/wav")}, data={"model": "whisper-1", **fields})


def test_local_share_matches_the_setting_over_many_players():
    players = [f"player-{i}" for i in range(4000)]
    for share in (0.1, 0.5, 0.9):
        local = sum(wants_local(p, share) for p in players)
        sigma = math.sqrt(len(players) * share * (1 - share))
        assert abs(local - share * len(players)) < 4 * sigma, (share, local)
    # Raising a share only moves players towards local, never back.
    assert all(wants_local(p, 0.5) for p in players if wants_local(p, 0.1))
    assert min(map(player_slot, players)) >= 0.0 and max(map(player_slot, players)) < 1.0


def test_players_are_sticky_and_split_by_share(gateway, faulty, short_clip):
    faulty.mode = "ok"
    gw = gateway(upstream_url=faulty.base_url, route_local_share=0.5)
    players = [f"p{i}" for i in range(12)]
    first = {p: post_clip(gw.base_url, short_clip, p).headers["x-voxhost-route"] for p in players}
    again = {p: post_clip(gw.base_url, short_clip, p).headers["x-voxhost-route"] for p in players}
    assert first == again
    assert first == {p: "local" if wants_local(p, 0.5) else "upstream" for p in players}
    assert set(first.values()) == {"local", "upstream"}


def test_openai_user_field_picks_the_player_when_no_header(gateway, faulty, short_clip):
    faulty.mode = "ok"
    gw = gateway(upstream_url=faulty.base_url, route_local_share=0.5)
    users = [f"user-{i}" for i in range(8)]
    routes = {u: post_clip(gw.base_url, short_clip, user=u).headers["x-voxhost-route"] for u in users}
    assert routes == {u: "local" if wants_local(u, 0.5) else "upstream" for u in users}


def _not_ready(app):
    app.state.voxhost.ready.clear()


def _draining(app):
    app.state.voxhost.draining.set()


def _queue_full(app):
    from voxhost.errors import Overloaded

    def full(lane):  # every interactive lane full: the router's refusal
        raise Overloaded("Every speech-to-text queue is full; retry shortly.", retry_after=2.0)

    app.state.voxhost.services.stt_scheduler.admit_any = full


class _BrokenEngine:
    """An engine that fails every decode (a CUDA error, a corrupt model)."""

    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def transcribe(self, *a, **k):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    transcribe_stream = transcribe


def _engine_error(app):
    state = app.state.voxhost
    engines = state.services.stt_engines
    engines.engines = {name: _BrokenEngine(e) for name, e in engines.engines.items()}


@pytest.mark.parametrize("setup, overrides, reason", [
    (_not_ready, {}, "not_ready"),
    (_draining, {}, "draining"),
    (_queue_full, {}, "queue_full"),
    (None, {"request_deadline_s": 0.0}, "deadline"),
    (_engine_error, {}, "engine_error"),
])
def test_every_local_failure_falls_back_and_the_request_is_answered(gateway, upstream_process, short_clip,
                                                                    setup, overrides, reason):
    gw = gateway(setup=setup, upstream_url=upstream_process, upstream_api_key=UPSTREAM_KEY, **overrides)
    response = post_clip(gw.base_url, short_clip, "player-1")
    assert response.status_code == 200, response.text
    assert response.headers["x-voxhost-route"] == "fallback"
    assert "comparatively modern" in response.json()["text"].lower()  # the upload reached the upstream whole
    assert float(response.headers["x-cost-usd"]) > 0
    metrics = httpx.get(gw.base_url + "/metrics").text
    assert f'voxhost_gateway_fallbacks_total{{reason="{reason}",route="transcriptions"}} 1.0' in metrics


def test_without_fallback_a_local_failure_is_the_players(gateway, faulty, short_clip):
    gw = gateway(setup=_queue_full, upstream_url=faulty.base_url, route_fallback=False)
    response = post_clip(gw.base_url, short_clip, "player-1")
    assert response.status_code == 429
    assert response.headers["x-voxhost-route"] == "local"


def test_burst_sends_overflow_upstream_instead_of_429(gateway, faulty, eval_audio):
    """Tiny queues: without burst some of 8 simultaneous requests get 429;
    with burst every one is answered, the overflow by the upstream."""
    faulty.mode = "ok"
    clip = eval_audio / "arctic_aew_arctic_a0001.wav"

    def storm(gw) -> list[httpx.Response]:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            return list(pool.map(lambda i: post_clip(gw.base_url, clip, f"p{i}"), range(8)))

    plain = storm(gateway(upstream_url=faulty.base_url, route_fallback=False, queue_max_per_lane=2))
    assert 429 in [r.status_code for r in plain]
    burst = storm(gateway(upstream_url=faulty.base_url, route_fallback=False, queue_max_per_lane=2,
                          route_burst_queue=1))
    assert [r.status_code for r in burst] == [200] * 8
    routes = [r.headers["x-voxhost-route"] for r in burst]
    assert "burst" in routes and "local" in routes


def test_burst_takes_what_local_admission_would_refuse_before_trying_it(gateway, faulty, short_clip):
    """The burst decision is the router's own expected-wait check: a request local
    admission would refuse goes upstream at once, however short the queue."""
    from voxhost.scheduler.lanes import Lane
    from voxhost_testing import metric_sum

    faulty.mode = "ok"
    waiting = []

    def backlog(app):  # two admitted requests still decoding, each expected to take 2 s
        state = app.state.voxhost
        executor = state.services.stt_scheduler.executor_for(state.services.stt_engines.get(None))
        for _ in range(3):
            executor.service_times.record(None, Lane.INTERACTIVE.value, 2.0, 2.0)
        for _ in range(2):
            waiting.append(executor.arriving(Lane.INTERACTIVE))
            waiting[-1].__enter__()

    gw = gateway(setup=backlog, upstream_url=faulty.base_url, route_fallback=False, route_burst_queue=64,
                 stt_wait_budget_s=1.0)
    response = post_clip(gw.base_url, short_clip, "player-1")
    assert response.status_code == 200 and response.headers["x-voxhost-route"] == "burst"
    assert metric_sum(gw.base_url, "voxhost_scheduler_rejections_total") == 0  # never tried here
    for cm in waiting:
        cm.__exit__(None, None, None)
    local = post_clip(gw.base_url, short_clip, "player-1")
    assert local.status_code == 200 and local.headers["x-voxhost-route"] == "local"


@pytest.mark.parametrize("mode, status, code", [
    ("500", 502, None),
    ("429", 429, "rate_limit_exceeded"),
    ("slow", 504, "upstream_timeout"),
])
def test_upstream_failures_reach_the_player_in_openai_shape_labelled(gateway, faulty, short_clip, mode, status,
                                                                     code):
    """With the breaker off (with it on, test_breaker.py: the player is served here instead)."""
    faulty.mode, faulty.delay_s = mode, 3.0
    gw = gateway(upstream_url=faulty.base_url, route_local_share=0.0, upstream_timeout_s=1.0,
                 upstream_breaker_failures=0)
    response = post_clip(gw.base_url, short_clip, "p")
    faulty.mode = "ok"
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code
    assert error["message"].lower().startswith(("upstream provider", "the upstream provider"))
    assert response.headers["x-voxhost-route"] == "upstream"
    if mode == "429":
        assert response.headers["retry-after"] == "7"
    assert "voxhost_gateway_upstream_errors_total" in httpx.get(gw.base_url + "/metrics").text


def test_upstream_down_is_a_labelled_502(gateway, short_clip):
    from voxhost_testing import free_port

    gw = gateway(upstream_url=f"http://127.0.0.1:{free_port()}/v1", route_local_share=0.0,
                 upstream_breaker_failures=0)
    response = post_clip(gw.base_url, short_clip, "p")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unavailable"


def test_a_stream_cut_mid_way_is_a_broken_response_not_a_short_one(gateway, faulty, short_clip):
    faulty.mode = "cut"
    gw = gateway(upstream_url=faulty.base_url, route_local_share=0.0)
    with pytest.raises(httpx.HTTPError), httpx.stream("POST", gw.base_url + "/v1/audio/speech", timeout=30,
                      json={"model": "tts-1", "voice": "alloy", "input": "Hello there.",
                            "response_format": "pcm"}) as response:
        assert response.status_code == 200
        response.read()
    faulty.mode = "ok"
    assert 'kind="cut"' in httpx.get(gw.base_url + "/metrics").text


def test_shares_change_without_a_restart_and_a_broken_edit_is_ignored(gateway, faulty, short_clip, tmp_path):
    faulty.mode = "ok"
    shares = tmp_path / "shares.json"
    shares.write_text('{"local_share": 0.0}')
    gw = gateway(upstream_url=faulty.base_url, route_shares_file=shares)
    assert post_clip(gw.base_url, short_clip, "p").headers["x-voxhost-route"] == "upstream"
    shares.write_text('{"local_share": 1.0}')
    time.sleep(1.2)  # re-read at most once a second
    assert post_clip(gw.base_url, short_clip, "p").headers["x-voxhost-route"] == "local"
    shares.write_text('{"local_share": 7}')  # rejected: the last good shares stay
    time.sleep(1.2)
    assert post_clip(gw.base_url, short_clip, "p").headers["x-voxhost-route"] == "local"
