"""WS /v1/realtime?intent=transcription: OpenAI's Realtime transcription sessions.

The router owns the socket (auth, admission, size limits, timeouts, JSON)
and nothing else: the session (realtime/session.py) owns audio, turns and
decoding; api/protocol/realtime.py owns the wire shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import MutableMapping
from typing import Any

from fastapi import APIRouter, WebSocket

from voxhost.api.admission import DRAINING_MESSAGE, live_refusal
from voxhost.api.protocol.realtime import (
    AppendEvent,
    ClearEvent,
    CommitEvent,
    Generation,
    SessionUpdateEvent,
    apply_session_update,
    decode_client_event,
    error_event,
    expires_at,
    parse_client_event,
    render,
    session_event,
)
from voxhost.api.state import AppState
from voxhost.errors import CloseCode, InvalidRequest, NotReady, Overloaded, SessionEnded, SessionRejected, VoxhostError
from voxhost.ids import new_id
from voxhost.realtime import events as ev
from voxhost.realtime.config import SessionConfig, SessionLimits
from voxhost.realtime.scheduling import SchedulerDecoder
from voxhost.realtime.session import TranscriptionSession

log = logging.getLogger("voxhost.realtime")
router = APIRouter(tags=["live speech-to-text"])

SEND_TIMEOUT_S = 15.0  # a client that stops reading is dropped, not buffered for
# A drain that finds a player mid-sentence (server VAD) hears the sentence out, this long
# at most, before it commits: a cut mid-word splits the sentence into two worse finals, and
# a turn of a fraction of a second decoded after the previous turn's context can come back
# as that context's words.
DRAIN_HEAR_OUT_S = 5.0


class Connection:
    """Serialised, failure-tolerant sends: session tasks and the receive loop
    share one socket, and a vanished client must not crash either."""

    def __init__(self, websocket: WebSocket):
        self.websocket = websocket
        self.open = True
        self._lock = asyncio.Lock()

    async def send(self, payload: dict) -> None:
        if not self.open:
            return
        async with self._lock:
            if not self.open:
                return
            try:
                text = json.dumps(payload, ensure_ascii=False)
                await asyncio.wait_for(self.websocket.send_text(text), SEND_TIMEOUT_S)
            except Exception:  # disconnected, or not reading: stop talking to it
                self.open = False

    async def send_event(self, event: ev.Event) -> None:
        await self.send(render(event))

    async def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        if not self.open:
            return
        async with self._lock:
            self.open = False
            with contextlib.suppress(Exception):
                await self.websocket.close(code, reason[:120])

    async def refuse(self, error: VoxhostError) -> None:
        """An `error` event, then the close code the error class names."""
        await self.send(error_event(error))
        await self.close(error.close_code, error.message)


def _limits(state: AppState) -> SessionLimits:
    s = state.settings
    return SessionLimits(
        max_turn_seconds=s.realtime_max_turn_seconds,
        max_pending_turns=s.realtime_max_pending_turns,
        partial_interval_ms=s.realtime_partial_interval_ms,
        final_beam_size=s.realtime_final_beam_size,
        short_window=s.realtime_short_window,
        speculative_final_ms=s.realtime_speculative_final_ms,
    )


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    state: AppState = websocket.app.state.voxhost
    # Browsers offer ["realtime", "openai-insecure-api-key.<key>"] and fail
    # the handshake unless one is echoed.
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
    conn = Connection(websocket)

    # API keys, rate limits and drain were checked by the Gatekeeper middleware
    # before the handshake; the key it accepted (None when open) is in scope.
    api_key = (websocket.scope.get("state") or {}).get("api_key")
    key_name = api_key.name if api_key is not None else None
    intent = websocket.query_params.get("intent")
    if intent not in (None, "", "transcription"):
        return await conn.refuse(InvalidRequest(
            f"intent '{intent[:40]}' is not supported: voxhost serves ?intent=transcription sessions.",
            param="intent", code="invalid_value"))
    refusal = live_refusal(state, key_name)
    if refusal is not None:
        state.metrics.sessions_rejected.labels(refusal.reason).inc()
        return await conn.refuse(refusal.error)
    beta = "realtime=v1" in websocket.headers.get("openai-beta", "")
    try:
        # The gate counts the session (live-sessions metric, per-key cap) and
        # lets drain wait for it.
        async with state.sessions.session(key_name):
            await _serve(conn, state, Generation.BETA if beta else Generation.GA)
    except SessionRejected as exc:  # lost a race for the last slot
        state.metrics.sessions_rejected.labels("capacity").inc()
        await conn.refuse(Overloaded(exc.message, retry_after=1.0))


async def _serve(conn: Connection, state: AppState, generation: Generation) -> None:
    settings = state.settings
    loop = asyncio.get_running_loop()
    session_id = new_id("sess")
    expiry = expires_at(settings.max_session_seconds)
    deadline = loop.time() + settings.max_session_seconds
    services = state.services
    decoder = SchedulerDecoder(services.stt_engines, services.stt_scheduler, settings.realtime_max_final_wait_seconds)
    session = TranscriptionSession(SessionConfig(), _limits(state), decoder, conn.send_event)
    opened = time.monotonic()
    log.info("realtime session %s opened (%d live)", session_id, state.sessions.active)
    await conn.send(session_event("created", session.config, generation, session_id, expiry))
    draining = asyncio.ensure_future(state.sessions.wait_draining())
    try:
        while conn.open:
            remaining = deadline - loop.time()
            if remaining <= 0:
                await conn.refuse(SessionEnded(
                    f"Your session hit the maximum duration of {settings.max_session_seconds:g} seconds.",
                    code="session_expired"))
                break
            try:
                message = await _receive_unless_draining(
                    conn.websocket, min(settings.realtime_idle_timeout_seconds, remaining), draining)
            except TimeoutError:
                if deadline - loop.time() > 0:
                    await conn.refuse(SessionEnded(
                        f"No events for {settings.realtime_idle_timeout_seconds:g} seconds; closing the idle session.",
                        code="idle_timeout"))
                    break
                continue
            if message is None:  # draining: the turn in progress and its transcript, then the drain's close
                generation = await _hear_out(conn, session, generation, settings.realtime_max_event_bytes,
                                             session_id, expiry, loop.time() + DRAIN_HEAR_OUT_S)
                # Meanwhile the client's frames are read and dropped (its committed event says
                # where the server stopped listening): unread, they would stall the socket and
                # its pongs, and the client would take the drain for a dead link.
                discard = asyncio.ensure_future(_discard_until_closed(conn))
                try:
                    await session.finish()
                finally:
                    discard.cancel()
                await conn.refuse(NotReady(DRAINING_MESSAGE))
                break
            if message["type"] == "websocket.disconnect":
                conn.open = False
                break
            generation = await _handle(conn, session, message, generation, settings.realtime_max_event_bytes,
                                       session_id, expiry)
    finally:
        draining.cancel()
        await session.close()  # cancels its partial and queued finals
        await conn.close()
        state.metrics.speculative_finals.labels("used").inc(session.speculative_used)
        state.metrics.speculative_finals.labels("dropped").inc(session.speculative_dropped)
        log.info("realtime session %s closed after %.1fs, %d turns",
                 session_id, time.monotonic() - opened, session.turns)


async def _hear_out(conn: Connection, session: TranscriptionSession, generation: Generation, max_bytes: int,
                    session_id: str, expiry: int, until: float) -> Generation:
    """While server VAD has a sentence open, keep taking the client's audio until it ends
    (VAD commits it) or `until`; then the drain commits whatever is still open."""
    loop = asyncio.get_running_loop()
    while conn.open and session.speaking and loop.time() < until:
        try:
            message = await asyncio.wait_for(conn.websocket.receive(), until - loop.time())
        except TimeoutError:
            break
        if message["type"] == "websocket.disconnect":
            conn.open = False
            break
        generation = await _handle(conn, session, message, generation, max_bytes, session_id, expiry)
    return generation


async def _discard_until_closed(conn: Connection) -> None:
    while conn.open:
        if (await conn.websocket.receive())["type"] == "websocket.disconnect":
            conn.open = False


async def _receive_unless_draining(websocket: WebSocket, timeout: float,
                                   draining: asyncio.Future) -> MutableMapping[str, Any] | None:
    """The client's next message; None once the server drains (SIGTERM or the
    load balancer deregistering this task). Raises TimeoutError when idle."""
    receive = asyncio.ensure_future(websocket.receive())
    done, _ = await asyncio.wait({receive, draining}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if receive in done:  # a message that arrived with the drain is still handled
        return receive.result()
    receive.cancel()
    if draining in done:
        return None
    raise TimeoutError


async def _handle(conn: Connection, session: TranscriptionSession, message: MutableMapping[str, Any],
                  generation: Generation,
                  max_bytes: int, session_id: str, expiry: int) -> Generation:
    """One client message. Every problem becomes an `error` event; the session goes on."""
    data, text = message.get("bytes"), message.get("text")
    client_event_id = None
    try:
        size = len(data) if data is not None else len(text or "")
        if size > max_bytes:
            raise InvalidRequest(
                f"The message is {size} bytes; the limit is {max_bytes}. Send audio in smaller appends.",
                code="message_too_large")
        if data is not None:  # extension: a binary frame is raw PCM16, no base64
            await session.append(data)
            return generation
        event = decode_client_event(text or "")
        client_event_id = event["event_id"]
        parsed = parse_client_event(event)
        if isinstance(parsed, AppendEvent):
            await session.append(parsed.audio)
        elif isinstance(parsed, CommitEvent):
            await session.commit()
        elif isinstance(parsed, ClearEvent):
            await session.clear()
        else:  # session.update / transcription_session.update
            generation = Generation.GA if isinstance(parsed, SessionUpdateEvent) else Generation.BETA
            config = apply_session_update(parsed.session, session.config)
            await session.update(config)
            await conn.send(session_event("updated", session.config, generation, session_id, expiry))
    except VoxhostError as exc:
        await conn.send(error_event(exc, client_event_id))
    except Exception:  # a bug must cost one event, not the player's session
        log.exception("realtime event failed")
        await conn.send(error_event(VoxhostError("Internal error handling the event.", code="internal_error"),
                                    client_event_id))
    return generation
