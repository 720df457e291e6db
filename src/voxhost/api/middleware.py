"""ASGI middleware that must see the raw request."""

from __future__ import annotations

import json

from voxhost.api.errors import error_body
from voxhost.errors import PayloadTooLarge


class BodySizeLimit:
    """Reject bodies over `max_bytes` with 413 before they are buffered.

    Checks Content-Length up front and counts chunked bodies as they stream,
    so a client can't make the server hold an unbounded upload in memory.
    """

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)

        seen = 0
        too_large = False

        async def limited_receive():
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge(self.max_bytes)
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)
        except Exception:
            if too_large and not started:
                await self._reject(send)
            else:
                raise

    async def _reject(self, send):
        body = json.dumps(
            error_body(
                f"Request body is larger than the limit of {self.max_bytes} bytes.",
                type_="invalid_request_error",
                param="file",
                code="payload_too_large",
            )
        ).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(PayloadTooLarge):
    """Raised from receive(): handlers that read the body propagate it as a 413."""

    def __init__(self, max_bytes: int):
        super().__init__(f"Request body is larger than the limit of {max_bytes} bytes.", param="file")
