"""Holes a hostile tester found (issue 14), each through a real server with
the real models: keys in logs and URLs, work for clients that hung up,
language tags, decompression bombs, CORS, and the smaller ones."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest
import websockets
import websockets.sync.client as ws_client
from fastapi import WebSocket

from voxhost.ops.auth import new_entry
from voxhost_testing import (
    assert_openai_error,
    free_port,
    long_speech_wav,
    metric_sum,
    open_request,
    silent_flac,
    wait_until,
)

URL = "/v1/audio/transcriptions"


def _ws(base_url: str, path: str = "/v1/realtime?intent=transcription") -> str:
    return base_url.replace("http://", "ws://") + path


# ---- 1. keys never reach the logs -------------------------------------------

def test_no_log_line_contains_a_key(tmp_path):
    """A real `voxhost serve`, its stdout grepped for every key presented."""
    from voxhost.ops.auth import hash_key

    key, entry = new_entry("studio")
    custom = "studio-own-secret-Zq81x"  # a studio's own key format, configured by its hash
    wrong = "vxh_" + "W" * 40
    other_wrong = "sk-not-a-voxhost-key-123456"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    env = {**os.environ, "VOXHOST_API_KEYS": f"studio:{entry['sha256']},own:{hash_key(custom)}",
           "VOXHOST_TTS_ENGINES": "hibari", "VOXHOST_LOG_LEVEL": "debug"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(port),
                                 "--stt-model", "whisper-tiny.en"], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _get_ok(base + "/health"), 120, "server up")
            for presented in (key, custom, wrong, other_wrong):
                for url in (_ws(base, f"/v1/realtime?intent=transcription&api_key={presented}"),
                            # The name percent-encoded (accepted: it decodes to api_key), the value too.
                            _ws(base, f"/v1/realtime?intent=transcription&api%5Fkey={presented.replace('_', '%5F')}"),
                            _ws(base, f"/v1/nowhere?api_key={presented}")):
                    _try_ws(url)
                _try_ws(_ws(base), subprotocols=["realtime", f"openai-insecure-api-key.{presented}"])
                httpx.get(base + f"/v1/models?api_key={presented}")
                httpx.get(base + "/v1/models", headers={"Authorization": f"Bearer {presented}"})
                httpx.get(base + "/v1/nowhere", headers={"X-API-Key": presented})
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    output = log_path.read_text()
    assert "WebSocket" in output, "uvicorn's handshake lines were not logged: the test proves nothing"
    assert "api%5Fkey=[redacted]" in output, "the percent-encoded handshake was not logged: the test proves nothing"
    for secret in (key, custom, wrong, other_wrong):
        assert secret not in output
        assert secret[4:20] not in output  # not even the key's body after a prefix
        assert secret.replace("_", "%5F")[4:20] not in output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert not [line for line in lines if line["level"] == "error"], "refused handshakes must not log errors"


def _get_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _try_ws(url: str, **kw) -> None:
    try:
        with ws_client.connect(url, open_timeout=10, **kw) as ws:
            ws.recv(timeout=5)
    except Exception:  # refused or closed: all that matters here is what was logged
        pass


# ---- 2. work for clients that hung up is cancelled --------------------------

def test_requests_whose_client_hung_up_are_not_decoded(sibling, short_clip):
    """Orphans queued behind a busy decoder are dropped when their clients go,
    not decoded later (which made fresh requests wait behind dead work)."""
    import threading

    release = threading.Event()

    def add_hold(app):  # occupies the tiny.en decoder until the test releases it
        @app.post("/test/hold")
        async def hold():
            state = app.state.voxhost
            engine = state.services.stt_engines.get("whisper-tiny.en")
            await state.services.stt_scheduler.executor_for(engine).run(release.wait, 60)
            return {}

    live = sibling(setup=add_hold, stt_num_workers=1, stt_batching=False)
    base = live.base_url
    jobs = lambda: metric_sum(base, "voxhost_scheduler_wait_seconds_count", engine="stt:whisper-tiny.en")
    holder = threading.Thread(target=lambda: httpx.post(base + "/test/hold", timeout=120))
    holder.start()
    try:
        wait_until(lambda: metric_sum(base, "voxhost_in_flight", engine="stt:whisper-tiny.en") == 1, 30, "decoder held")
        orphans = 5
        for _ in range(orphans):  # each client gives up while its request is queued
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(base + URL, files={"file": ("a.wav", short_clip.read_bytes())},
                           data={"model": "whisper-tiny.en"}, timeout=httpx.Timeout(30, read=0.5))
        wait_until(lambda: metric_sum(base, "voxhost_requests_abandoned_total") == orphans, 30, "orphans noticed")
        assert metric_sum(base, "voxhost_queue_depth", engine="stt:whisper-tiny.en") == 0
    finally:
        release.set()
        holder.join(timeout=60)
    fresh = httpx.post(base + URL, files={"file": ("a.wav", short_clip.read_bytes())},
                       data={"model": "whisper-tiny.en"}, timeout=120)
    assert fresh.status_code == 200 and "modern" in fresh.json()["text"].lower()
    assert jobs() == 2  # the hold and the fresh request; none of the orphans
    # Abandoned work is logged as 499 and never priced.
    assert metric_sum(base, "voxhost_requests_total", status="499") == orphans
    assert metric_sum(base, "voxhost_cost_usd_total", route=URL) == pytest.approx(
        float(fresh.headers["x-cost-usd"]), rel=0.01, abs=1e-9)


def test_a_running_decode_stops_when_its_client_hangs_up(sibling, english, monkeypatch):
    """90 s of real speech (three Whisper windows and more): the client hangs up once
    the first segments are decoded, and the decode stops at the next segment instead
    of running through every remaining window for nobody."""
    import threading

    wav = long_speech_wav(english[:30], 90)
    live = sibling(stt_num_workers=1, stt_batching=False)
    engine = live.app.state.voxhost.services.stt_engines.get("whisper-tiny.en")
    first_segment, decode = threading.Event(), {"segments": 0, "finished": False}
    # Both of the engine's entry points (transcribe, transcribe_stream) decode through _stream.
    real_stream = engine._stream

    def counted_stream(audio, plan):  # the real decode, its segments counted as they come
        info, segments = real_stream(audio, plan)

        def counted():
            for segment in segments:
                decode["segments"] += 1
                first_segment.set()
                yield segment
            decode["finished"] = True

        return info, counted()

    monkeypatch.setattr(engine, "_stream", counted_stream)
    with open_request(live.base_url, URL, files={"file": ("long.wav", wav)}, data={"model": "whisper-tiny.en"}):
        assert first_segment.wait(120), "the decode never produced a segment"
    wait_until(lambda: metric_sum(live.base_url, "voxhost_requests_abandoned_total") == 1, 30, "hang-up noticed")
    wait_until(lambda: metric_sum(live.base_url, "voxhost_in_flight", engine="stt:whisper-tiny.en") == 0, 60,
          "decoder freed")
    assert not decode["finished"], f"decoded all {decode['segments']} segments for a client that had gone"
    assert metric_sum(live.base_url, "voxhost_requests_total", status="499") == 1
    assert metric_sum(live.base_url, "voxhost_cost_usd_total", route=URL) == 0


# ---- 3. language tags -------------------------------------------------------

def test_bcp47_language_tags_work_and_unknown_codes_are_400_before_work(openai_client, base_url, short_clip):
    with short_clip.open("rb") as f:
        result = openai_client.audio.transcriptions.create(
            model="whisper-base", file=f, language="en-US", response_format="verbose_json")
    assert "modern" in result.text.lower() and result.language == "english"
    for bad in ("xx", "klingon", "en-"):
        for stream in ("false", "true"):
            response = httpx.post(base_url + URL, files={"file": ("a.wav", short_clip.read_bytes())},
                                  data={"model": "whisper-base", "language": bad, "stream": stream}, timeout=120)
            error = assert_openai_error(response, 400, "language")
            assert error["code"] == "unsupported_language"
    # An English-only model still refuses another language, in a BCP-47 form too.
    response = httpx.post(base_url + URL, files={"file": ("a.wav", short_clip.read_bytes())},
                          data={"model": "whisper-tiny.en", "language": "de-DE"}, timeout=120)
    assert_openai_error(response, 400, "language")


def test_realtime_session_update_refuses_unknown_language(base_url):
    async def run():
        async with websockets.connect(_ws(base_url)) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            for tag, ok in (("xx", False), ("en-GB", True)):
                await ws.send(json.dumps({"type": "session.update", "session": {"type": "transcription", "audio": {
                    "input": {"transcription": {"model": "whisper-base", "language": tag}}}}}))
                event = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if ok:
                    assert event["type"] == "session.updated", event
                    assert event["session"]["audio"]["input"]["transcription"]["language"] == "en"
                else:
                    assert event["type"] == "error", event
                    assert event["error"]["param"] == "session.audio.input.transcription.language"
                    assert event["error"]["code"] == "unsupported_language"

    asyncio.run(run())


# ---- 5. keys in URLs only on the WebSocket handshake --------------------------

def test_query_string_keys_only_open_websockets(sibling):
    key, entry = new_entry("studio")

    def add_echo(app):
        @app.websocket("/test/echo")
        async def echo(websocket: WebSocket):
            await websocket.accept()
            await websocket.send_text(await websocket.receive_text())

    live = sibling(api_keys=[f"studio:{entry['sha256']}"], setup=add_echo)
    error = assert_openai_error(httpx.get(live.base_url + f"/v1/models?api_key={key}"), 401)
    assert "WebSocket" in error["message"] and key not in error["message"]
    assert httpx.get(live.base_url + "/v1/models", headers={"X-API-Key": key}).status_code == 200
    # Refused even beside a good header, and under any spelling of the name: the URL is what leaks.
    for query in (f"api_key={key}", f"api%5Fkey={key}", f"API_KEY={key}", "api_key="):
        refused = httpx.get(live.base_url + f"/v1/models?{query}", headers={"Authorization": f"Bearer {key}"})
        assert_openai_error(refused, 401)
    for kw in ({"uri": _ws(live.base_url, f"/test/echo?api_key={key}")},
               {"uri": _ws(live.base_url, "/test/echo"), "subprotocols": [f"openai-insecure-api-key.{key}"]}):
        with ws_client.connect(**kw) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi"


# ---- 6. decompression bombs -----------------------------------------------------

def test_a_flac_declaring_hours_is_refused_on_its_header(base_url, settings):
    bomb = silent_flac(2 * 3600)
    assert len(bomb) < settings.max_upload_bytes
    response = httpx.post(base_url + URL, files={"file": ("bomb.flac", bomb)}, data={"model": "whisper-1"},
                          timeout=120)
    error = assert_openai_error(response, 400, "file", "audio_too_long")
    assert "declares 7200 seconds" in error["message"]  # refused on the header, not after decoding to the cap


# ---- 8. CORS ------------------------------------------------------------------------

def test_cors_for_configured_origins_only(sibling):
    key, entry = new_entry("studio")
    game = "https://game.example.com"
    live = sibling(api_keys=[f"studio:{entry['sha256']}"], cors_origins=[game])
    preflight = {"Origin": game, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    ok = httpx.options(live.base_url + URL, headers=preflight)  # no key: browsers never send one here
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == game
    evil = httpx.options(live.base_url + URL, headers={**preflight, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers
    got = httpx.get(live.base_url + "/v1/models", headers={"Origin": game, "Authorization": f"Bearer {key}"})
    assert got.status_code == 200 and got.headers["access-control-allow-origin"] == game
    assert "x-request-id" in got.headers["access-control-expose-headers"].lower()
    # WebSockets: the same list decides, with a valid key.
    url = _ws(live.base_url, f"/v1/realtime?intent=transcription&api_key={key}")
    with ws_client.connect(url, origin=game) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "session.created"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        ws_client.connect(url, origin="https://evil.example", open_timeout=10)
    assert refused.value.response.status_code == 403


# ---- 9. smaller holes ---------------------------------------------------------------------

def test_two_file_parts_are_refused(base_url, short_clip):
    audio = short_clip.read_bytes()
    response = httpx.post(base_url + URL, files=[("file", ("a.wav", audio)), ("file", ("b.wav", audio))],
                          data={"model": "whisper-1"}, timeout=120)
    assert_openai_error(response, 400, "file")


def test_drain_503_says_when_to_retry(sibling):
    live = sibling()
    live.app.state.voxhost.draining.set()
    response = httpx.get(live.base_url + "/v1/models")
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1


def test_invalid_json_names_no_param(base_url):
    response = httpx.post(base_url + "/v1/audio/speech", content=b'{"model": "tts-1", "input": "hi",,}',
                          headers={"content-type": "application/json"})
    error = assert_openai_error(response, 400, None)
    assert error["code"] == "invalid_json"


def test_huge_model_names_are_not_echoed(base_url, short_clip):
    name = "m" * 20_000
    response = httpx.post(base_url + URL, files={"file": ("a.wav", short_clip.read_bytes())},
                          data={"model": name}, timeout=120)
    assert_openai_error(response, 400, "model")
    assert len(response.content) < 1000
    assert len(httpx.get(base_url + "/v1/models/" + name).content) < 1000


def test_models_lists_only_what_can_be_named_and_an_unknown_one_is_404(sibling, openai_client, short_clip):
    """A bundled model that is not loaded answers 400 when named, so it is not listed."""
    def base_only(app):  # the default install: tiny.en bundled, not loaded (the shared models, no reload)
        registry = app.state.voxhost.services.stt_engines
        registry.engines = {"whisper-base": registry.engines["whisper-base"]}  # a dict of its own

    live = sibling(stt_models=["whisper-base"], setup=base_only)
    listed = {row["id"]: row for row in httpx.get(live.base_url + "/v1/models").json()["data"]}
    assert "whisper-base" in listed and "whisper-1" in listed and "whisper-tiny.en" not in listed
    assert all(row["loaded"] for row in listed.values())
    for name in ("whisper-tiny.en", "nonexistent"):
        error = assert_openai_error(httpx.get(live.base_url + f"/v1/models/{name}"), 404, "model", "model_not_found")
        assert name in error["message"]
    from openai import NotFoundError, OpenAI

    client = OpenAI(base_url=live.base_url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(NotFoundError):
        client.models.retrieve("nonexistent")
    for name in listed:  # every listed transcription model answers
        if listed[name].get("task") == "transcription":
            with short_clip.open("rb") as f:
                assert "modern" in client.audio.transcriptions.create(model=name, file=f).text.lower()


def test_refused_live_sessions_are_counted(sibling):
    live = sibling(max_live_sessions=0)
    # at capacity: error event, then 1013
    with ws_client.connect(_ws(live.base_url)) as ws, pytest.raises(websockets.exceptions.ConnectionClosed):
        while True:
            ws.recv(timeout=10)
    live.app.state.voxhost.draining.set()
    with ws_client.connect(_ws(live.base_url)) as ws, pytest.raises(websockets.exceptions.ConnectionClosed):
        ws.recv(timeout=10)
    assert metric_sum(live.base_url, "voxhost_live_sessions_rejected_total", reason="capacity") == 1
    assert metric_sum(live.base_url, "voxhost_live_sessions_rejected_total", reason="draining") == 1


def test_megabyte_prompts_are_refused_before_work(base_url, short_clip):
    for field in ("prompt", "hotwords"):
        response = httpx.post(base_url + URL, files={"file": ("a.wav", short_clip.read_bytes())},
                              data={"model": "whisper-1", field: "y " * 500_000}, timeout=120)
        assert_openai_error(response, 400, field)
