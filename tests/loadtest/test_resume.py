"""A live session that loses its server three ways, against real servers with
real speech: its connection cut (1006, as after a kill -9), its link dead
(only the client's pings notice: 1011), and its server drained mid-sentence
(`error` + 1013) with the balancer sending the reconnect to another server.
The reference client reconnects and replays: every utterance comes back once."""

from __future__ import annotations

import asyncio
import contextlib

import httpx
import pytest
from relay import Relay

from voxhost.audio.decode import decode_audio
from voxhost.loadtest.conversation import account, build_script
from voxhost.loadtest.realtime_client import ReconnectPolicy, pcm16, session_update, stream_resumable
from voxhost_testing import LiveServer

pytestmark = pytest.mark.timeout(300)

# Four sentences of one speaker, ~2.5-3 s each.
SENTENCES = ("cathy_arctic_a0004.wav", "cathy_arctic_a0008.wav", "cathy_arctic_a0014.wav", "cathy_arctic_a0012.wav")


@pytest.fixture
def two_servers(server, settings):
    """Two servers sharing the session's loaded models; the first can be drained over HTTP."""
    from voxhost.api.app import create_app
    from voxhost.api.lifecycle import drain

    with contextlib.ExitStack() as stack:
        lives = []
        for _ in range(2):
            # A loaded CI box decodes slowly: no final may be shed as late while a replay catches up.
            app = create_app(settings.model_copy(update={"realtime_max_final_wait_seconds": 120,
                                                         "realtime_max_pending_turns": 8}), load_models=False)
            state = app.state.voxhost
            state.services.stt_engines.engines = server.app.state.voxhost.services.stt_engines.engines
            state.ready.set()

            app.add_api_route("/test/drain", _drainer(state, drain), methods=["POST"])
            lives.append(stack.enter_context(LiveServer(app)))
        yield lives


def _drainer(state, drain):
    async def start_drain():
        asyncio.get_running_loop().create_task(drain(state, 60))
        return {}
    return start_drain


@pytest.fixture(scope="module")
def script(english):
    by_name = {u.audio.name: u for u in english}
    clips = [(pcm16(decode_audio(by_name[n].audio.read_bytes()), 24_000), by_name[n].text) for n in SENTENCES]
    return build_script(clips, gap_s=1.5)


def test_a_live_session_survives_a_cut_a_dead_link_and_a_drain(two_servers, script, monkeypatch):
    from voxhost.api.routers import realtime as router

    monkeypatch.setattr(router, "DRAIN_HEAR_OUT_S", 1.0)  # the drain must cut a sentence: its span is the test
    first, second = two_servers

    async def run():
        relay = await Relay(("127.0.0.1", first.port)).start()

        async def lose_the_server():
            utterances = script.utterances
            # 1006: mid-way through the first sentence.
            await asyncio.sleep((utterances[0].start_ms + 1200) / 1000)
            relay.cut()
            # 1011: the link dies during the second sentence; only pings notice.
            await asyncio.sleep((utterances[1].start_ms - utterances[0].start_ms) / 1000)
            relay.freeze()
            # error + 1013: the server drains during the last sentence; it hears it out for as
            # long as it may (1 s here: a sentence longer than that), then commits the words
            # heard so far, and the balancer sends the reconnect to the other server, where the
            # replay brings the rest.
            await asyncio.sleep((utterances[3].start_ms + 1000 - utterances[1].start_ms) / 1000)
            relay.target = ("127.0.0.1", second.port)
            async with httpx.AsyncClient() as client:
                await client.post(first.base_url + "/test/drain")

        chaos = asyncio.create_task(lose_the_server())
        try:
            return await stream_resumable(relay.ws_url, script.pcm, update=session_update(),
                                          policy=ReconnectPolicy(ping_timeout_s=3.0), settle_timeout=180)
        finally:
            await chaos
            await relay.close()

    result = asyncio.run(run())
    codes = [o.code for o in result.outages]
    assert 1006 in codes and 1011 in codes and 1013 in codes, result.outages
    assert all(o.resumed is not None for o in result.outages)
    assert not result.gave_up
    tally = account(script, result.finals)
    # Every final knows the audio it answers (a drain's cut turn too), so none is placed by guesswork.
    assert tally.unplaced_finals == 0, result.finals
    assert (tally.lost, tally.duplicated) == (0, 0), (tally, result.finals)
    assert result.replayed_ms > 0
    # The words too, independently of the spans: nothing missing or doubled beyond a misheard word or two.
    assert tally.longest_missing_run <= 2 and tally.longest_added_run <= 2, (tally, result.finals)
