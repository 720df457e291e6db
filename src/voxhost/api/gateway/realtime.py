"""Realtime sessions through the gateway: decided once, at connect.

A player whose share says upstream - or whose session this server would
refuse (not ready, draining, every live slot or the live lane full) when
fallback is on - is proxied WebSocket to WebSocket to the upstream's
/v1/realtime: every text and binary frame passes untouched both ways, so
either protocol generation (beta `transcription_session.*`, GA `session.*`)
works as the upstream speaks it. The handshake response carries
X-Voxhost-Route. The upstream key goes in the upstream handshake's
Authorization header only; the player's own credentials (header, browser
subprotocol, ?api_key=) are never forwarded.

Back-pressure instead of buffers: a frame is read from one side only after
the previous one was handed to the other (websockets' `send` waits for its
write buffer to drain; its receive queue is bounded by `max_queue`), and a
client that stops reading is dropped after SEND_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.datastructures import Headers, QueryParams
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from voxhost.api.admission import live_refusal
from voxhost.api.gateway.breaker import FAILURE_KINDS, CircuitBreaker
from voxhost.api.gateway.config import GatewayConfig
from voxhost.api.gateway.metrics import GatewayMetrics
from voxhost.api.gateway.policy import MAX_PLAYER_ID, ROUTE_HEADER, RoutePath, Served, wants_local
from voxhost.api.protocol.realtime import error_event
from voxhost.api.state import AppState
from voxhost.errors import CloseCode, VoxhostError
from voxhost.ops.auth import extract_api_key

log = logging.getLogger("voxhost.gateway")


class _NoDebug(logging.LoggerAdapter):
    """websockets logs the handshake's request headers - the upstream key in
    Authorization - at DEBUG; its upstream connections never log at DEBUG,
    whatever level the operator turns on."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and super().isEnabledFor(level)


WS_LOG = _NoDebug(logging.getLogger("voxhost.gateway.upstream_ws"), {})

PATH = "/v1/realtime"
ROUTE = "realtime"
SEND_TIMEOUT_S = 15.0  # as the local router: a client that stops reading is dropped
MAX_UPSTREAM_EVENT_BYTES = 4 * 1024 * 1024  # server events are transcripts; bounds one frame's memory
MAX_QUEUE = 16  # upstream frames buffered before its reads pause (websockets' flow control)
# Query parameters passed upstream; anything else (a player's ?api_key=) stays here.
PASS_QUERY = ("intent", "model")
# Close codes that may not be sent in a close frame (RFC 6455 7.4.1): replaced on the other side.
UNSENDABLE = {1005, 1006, 1015}


class UpstreamSessionFailure(VoxhostError):
    close_code = CloseCode.TRY_AGAIN  # another try may reach the upstream (or a local server)

    def __init__(self, message: str, code: str):
        super().__init__(message, code=code)


def player_id(scope) -> str:
    """X-Player-Id, else the API key the player presented (its name when keys are configured)."""
    headers = Headers(scope=scope)
    player = headers.get("x-player-id")
    if not player:
        key = (scope.get("state") or {}).get("api_key")
        player = key.name if key is not None else extract_api_key(headers, QueryParams(scope.get("query_string", b"")))
    return (player or "")[:MAX_PLAYER_ID]


def upstream_uri(config: GatewayConfig, scope) -> str:
    parts = urlsplit(config.url)
    query = QueryParams(scope.get("query_string", b""))
    passed = [(name, query[name]) for name in PASS_QUERY if name in query]
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/realtime", urlencode(passed), ""))


class RealtimeProxy:
    def __init__(self, config: GatewayConfig, state: AppState, metrics: GatewayMetrics, breaker: CircuitBreaker):
        self.config = config
        self.state = state
        self.metrics = metrics
        self.breaker = breaker

    def decide(self, scope, share: float) -> tuple[Served, str | None]:
        """Where this session is served, and the fallback reason if that is why."""
        if share < 1.0 and (share <= 0.0 or not wants_local(player_id(scope), share)):
            return Served.UPSTREAM, None
        refusal = live_refusal(self.state)  # no key: a per-key cap stays a local refusal
        if refusal is not None and self.config.fallback:
            return Served.FALLBACK, refusal.reason
        return Served.LOCAL, None

    async def serve(self, app, scope, receive, send, served: Served, reason: str | None) -> None:
        scope.setdefault("route", RoutePath(PATH))  # request logs and metrics label it as the router would
        if not self.breaker.allows_upstream:
            return await self._without_upstream(app, scope, receive, send, served, "breaker_open", None)
        self.metrics.served.labels(ROUTE, served.value).inc()
        if reason is not None:
            self.metrics.fallbacks.labels(ROUTE, reason).inc()
        headers = Headers(scope=scope)
        offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
        extra = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        if headers.get("openai-beta"):  # selects the protocol generation upstream
            extra["OpenAI-Beta"] = headers["openai-beta"]
        connect_message = await receive()  # websocket.connect
        if connect_message["type"] != "websocket.connect":
            return
        try:
            upstream = await connect(
                upstream_uri(self.config, scope), additional_headers=extra,
                subprotocols=[Subprotocol("realtime")] if "realtime" in offered else None,
                open_timeout=self.config.connect_timeout_s, max_queue=MAX_QUEUE,
                max_size=MAX_UPSTREAM_EVENT_BYTES, user_agent_header=None, logger=WS_LOG,
            )
        except Exception as exc:  # unreachable, refused, timed out: the player hears why, the key stays out
            kind, message = _connect_failure(exc)
            self.metrics.upstream_errors.labels(ROUTE, kind).inc()
            self.breaker.record(kind)
            log.warning("realtime upstream session could not open: %s", kind)
            if self.breaker.enabled and kind in FAILURE_KINDS:
                return await self._without_upstream(app, scope, _replay_connect(connect_message, receive), send,
                                                    served, "upstream_failed", message)
            return await self._refuse(send, served, message, kind)
        self.breaker.record(None)
        try:
            # Browsers fail the handshake unless the `realtime` they offered is echoed, whatever the upstream did.
            await send({"type": "websocket.accept", "subprotocol": "realtime" if "realtime" in offered else None,
                        "headers": [(ROUTE_HEADER, served.value.encode())]})
            await _pump(upstream, receive, send, self.metrics, self.breaker)
        finally:
            await upstream.close()

    async def _without_upstream(self, app, scope, receive, send, served: Served, why: str,
                                message: str | None) -> None:
        """The upstream cannot take this session: a local one if this server would take
        it now, else `error` + 1013 so the client tries again (another task, or later)."""
        if live_refusal(self.state) is None:
            self.metrics.failovers.labels(ROUTE, why).inc()
            self.metrics.served.labels(ROUTE, Served.FAILOVER.value).inc()

            async def accept_with_route(event):
                if event["type"] == "websocket.accept":
                    event = {**event, "headers": [*event.get("headers", []),
                                                  (ROUTE_HEADER, Served.FAILOVER.value.encode())]}
                await send(event)
            return await app(scope, receive, accept_with_route)
        self.metrics.failovers.labels(ROUTE, "no_room").inc()
        if why == "breaker_open":
            await receive()  # websocket.connect, before the accept that carries the refusal
        await self._refuse(send, served, message or "The upstream provider is unavailable and this server is "
                           "full; reconnect shortly.", "unavailable")

    async def _refuse(self, send, served: Served, message: str, kind: str) -> None:
        await send({"type": "websocket.accept", "headers": [(ROUTE_HEADER, served.value.encode())]})
        error = UpstreamSessionFailure(message, f"upstream_{kind}")
        with contextlib.suppress(Exception):
            await send({"type": "websocket.send", "text": json.dumps(error_event(error), ensure_ascii=False)})
            await send({"type": "websocket.close", "code": error.close_code, "reason": message[:120]})


def _connect_failure(exc: Exception) -> tuple[str, str]:
    """(metric kind, message for the player): never the exception's text, which may quote the URI or headers."""
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in (401, 403):
            return "auth", "The upstream provider rejected voxhost's credentials (VOXHOST_UPSTREAM_API_KEY)."
        kind = "status_429" if status == 429 else ("status_4xx" if status < 500 else "status_5xx")
        return kind, f"The upstream provider refused the realtime session ({status})."
    if isinstance(exc, TimeoutError):
        return "timeout", "The upstream provider did not answer in time."
    return "unreachable", f"The upstream provider is unreachable ({type(exc).__name__})."


def _replay_connect(connect_message: dict, receive):
    """The local router reads `websocket.connect` itself: hand it the one already read."""
    pending = [connect_message]

    async def replayed():
        return pending.pop() if pending else await receive()
    return replayed


# Upstream closes that mean it went (no close frame, internal error, going away, restarting):
# the player gets the documented `error` + 1013, which says "reconnect", not the upstream's code.
UPSTREAM_LOST = {1001, 1006, 1011, 1012}


async def _pump(upstream: ClientConnection, receive, send, metrics: GatewayMetrics, breaker: CircuitBreaker) -> None:
    """Frames both ways until one side goes; the other is then closed with its code and reason."""

    async def client_to_upstream() -> None:
        while True:  # ConnectionClosed from send: the upstream went first; upstream_to_client reports it
            message = await receive()
            if message["type"] == "websocket.disconnect":
                code = message.get("code", 1000)
                await upstream.close(1000 if code in UNSENDABLE else code, message.get("reason") or "")
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])

    async def upstream_to_client() -> None:
        try:
            async for frame in upstream:
                key = "bytes" if isinstance(frame, bytes) else "text"
                await asyncio.wait_for(send({"type": "websocket.send", key: frame}), SEND_TIMEOUT_S)
        except ConnectionClosed:
            pass
        code, reason = upstream.close_code, upstream.close_reason or ""
        if code is None or code in UPSTREAM_LOST:
            if code is None or code in (1006, 1011):  # dropped without a close frame, or broke
                metrics.upstream_errors.labels(ROUTE, "cut").inc()
                breaker.record("cut")
            error = UpstreamSessionFailure("The upstream provider's session was lost; reconnect to continue.",
                                           "upstream_lost")
            with contextlib.suppress(Exception):
                await send({"type": "websocket.send", "text": json.dumps(error_event(error), ensure_ascii=False)})
            code, reason = error.close_code, error.message
        elif code in UNSENDABLE:  # 1005: closed without a code
            code = 1000
        with contextlib.suppress(Exception):
            await send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    tasks = [asyncio.create_task(client_to_upstream()), asyncio.create_task(upstream_to_client())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[0] in done and isinstance(tasks[0].exception(), ConnectionClosed):
            # Let the other side pass the upstream's close code on to the player.
            done, _ = await asyncio.wait(tasks, timeout=SEND_TIMEOUT_S)
        for task in done:
            if task.exception() is not None and not isinstance(task.exception(), (ConnectionClosed, OSError,
                                                                                   TimeoutError)):
                log.warning("realtime proxy side failed: %s", type(task.exception()).__name__, exc_info=task.exception())
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
