"""The official openai Python SDK's realtime clients, beta and GA, against voxhost over wss,
unchanged: only base_url is https://.../v1 (the SDK builds wss:// from it), the server's
development CA trusted through SSL_CERT_FILE; and the beta client over plain ws with
`websocket_base_url`. Real speech streamed at real time with server VAD; each test checks the
partial deltas and the completed transcript."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from voxhost.stt.wer import wer


async def _send_paced(append, pcm: bytes) -> None:
    """100 ms appends (2,400 samples at 24 kHz), each when a microphone would have it."""
    step, started = 4800, time.monotonic()
    for offset in range(0, len(pcm), step):
        await asyncio.sleep(max(0.0, started + (offset + step) / 48_000 - time.monotonic()))
        await append(audio=base64.b64encode(pcm[offset:offset + step]).decode())


async def _speak_into(conn, pcm: bytes):
    """Stream `pcm` into an open connection while reading its events; (events, completed event)."""
    sender = asyncio.create_task(_send_paced(conn.input_audio_buffer.append, pcm))
    seen = []
    async for event in conn:
        seen.append(event)
        if event.type == "conversation.item.input_audio_transcription.completed":
            await sender
            return seen, event
    raise AssertionError("closed before the transcript")


def _check(name: str, seen: list, done, reference: str) -> None:
    deltas = [e.delta for e in seen if e.type == "conversation.item.input_audio_transcription.delta"]
    print("\n" + json.dumps({"client": name, "transcript": done.transcript, "deltas": deltas}))
    types = [e.type for e in seen]
    assert types.index("input_audio_buffer.speech_started") < types.index("input_audio_buffer.speech_stopped") \
        < types.index("input_audio_buffer.committed") < types.index(done.type)
    assert deltas, "partial transcripts (deltas) while the player speaks"
    assert all(e.item_id == done.item_id for e in seen if e.type.endswith(".delta"))
    assert wer([reference], [done.transcript]) <= 0.1, done.transcript
    partial = "".join(deltas).split()
    assert wer([" ".join(done.transcript.split()[: len(partial)])], [" ".join(partial)]) <= 0.34, deltas


def test_https_base_url_alone_reaches_rest_too(tls_server, monkeypatch, short_clip):
    """The same client, the same base_url: REST over https (the SDK's httpx trusts SSL_CERT_FILE)."""
    from openai import OpenAI

    monkeypatch.setenv("SSL_CERT_FILE", tls_server.ca_file)
    client = OpenAI(base_url=tls_server.base_url + "/v1", api_key=tls_server.api_key, max_retries=0)
    with short_clip.open("rb") as f:
        assert "modern" in client.audio.transcriptions.create(model="whisper-1", file=f).text.lower()
    # Without the CA the server is not trusted: the test's trust comes from the environment alone.
    monkeypatch.delenv("SSL_CERT_FILE")
    try:
        httpx.get(tls_server.base_url + "/health")
    except httpx.ConnectError as exc:
        assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
    else:
        raise AssertionError("an unknown CA must not be trusted")


@pytest.mark.parametrize("transport", ["wss", "ws"])
def test_beta_realtime_client(transport, request, speech_pcm, reference, monkeypatch):
    """wss: only base_url (https) changed. ws: a plain-http server, for which the beta client must be
    told the WebSocket base (`websocket_base_url`), as the README says: it assumes wss otherwise."""
    from openai import AsyncOpenAI

    if transport == "wss":
        server = request.getfixturevalue("tls_server")
        monkeypatch.setenv("SSL_CERT_FILE", server.ca_file)
        options = {"base_url": server.base_url + "/v1", "api_key": server.api_key}
    else:
        base_url = request.getfixturevalue("base_url")
        options = {"base_url": base_url + "/v1", "api_key": "unused",
                   "websocket_base_url": base_url.replace("http://", "ws://") + "/v1"}
    pcm = Path(speech_pcm).read_bytes()

    async def run():
        client = AsyncOpenAI(**options, max_retries=0)
        async with client.beta.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"}) as conn:
            created = await conn.recv()
            assert created.type == "transcription_session.created"
            await conn.transcription_session.update(session={
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": "whisper-1", "language": "en"},
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}})
            assert (await conn.recv()).type == "transcription_session.updated"
            return await _speak_into(conn, pcm)

    seen, done = asyncio.run(run())
    _check(f"openai (Python) beta: client.beta.realtime.connect over {transport}", seen, done, reference)


def test_ga_realtime_client_over_wss(tls_server, speech_pcm, reference, monkeypatch):
    from openai import AsyncOpenAI

    monkeypatch.setenv("SSL_CERT_FILE", tls_server.ca_file)
    pcm = Path(speech_pcm).read_bytes()

    async def run():
        client = AsyncOpenAI(base_url=tls_server.base_url + "/v1", api_key=tls_server.api_key, max_retries=0)
        async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
            created = await conn.recv()
            assert created.type == "session.created" and created.session.type == "transcription"
            await conn.session.update(session={
                "type": "transcription",
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                    "transcription": {"model": "whisper-1", "language": "en"},
                                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}})
            assert (await conn.recv()).type == "session.updated"
            return await _speak_into(conn, pcm)

    seen, done = asyncio.run(run())
    _check("openai (Python) GA: client.realtime.connect", seen, done, reference)
