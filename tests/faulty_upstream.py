"""A small fault-injecting upstream speaking OpenAI's audio API.

`FaultyUpstream.mode` picks the behaviour of the next requests: ok, slow,
500, 429, 401 (echoing the key it was sent, as OpenAI does, masked or not),
cut (a stream that dies half way) or block (hold the request until
`release` is set). Every request it receives is recorded (headers, fields).
"""

from __future__ import annotations

import asyncio
import json
import threading

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

TEXT = "in being comparatively modern."
# The key a gateway presents upstream in tests: it must show up nowhere else.
UPSTREAM_KEY = "sk-test-UPSTREAMSECRET-0123456789abcdef"


class FaultyUpstream:
    def __init__(self):
        self.mode = "ok"
        self.delay_s = 2.0
        self.received: list[dict] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.app = Starlette(routes=[
            Route("/ready", lambda r: PlainTextResponse("ok")),
            Route("/v1/models", self.models),
            Route("/v1/audio/transcriptions", self.stt, methods=["POST"]),
            Route("/v1/audio/translations", self.stt, methods=["POST"]),
            Route("/v1/audio/speech", self.speech, methods=["POST"]),
        ])

    async def _record(self, request: Request) -> dict:
        if request.headers.get("content-type", "").startswith("multipart/"):
            form = await request.form()
            fields = {k: (v if isinstance(v, str) else f"<file {len(await v.read())} bytes>")
                      for k, v in form.multi_items()}
        else:
            fields = json.loads(await request.body())
        entry = {"headers": dict(request.headers), "fields": fields, "path": request.url.path}
        self.received.append(entry)
        return entry

    async def _fault(self, entry: dict) -> Response | None:
        if self.mode == "slow":
            await asyncio.sleep(self.delay_s)
        elif self.mode == "block":
            self.entered.set()
            await asyncio.to_thread(self.release.wait, 30)
        elif self.mode == "500":
            return JSONResponse({"error": {"message": "The server had an error", "type": "server_error",
                                           "param": None, "code": None}}, status_code=500)
        elif self.mode == "429":
            return JSONResponse({"error": {"message": "Rate limit reached for requests", "type": "requests",
                                           "param": None, "code": "rate_limit_exceeded"}},
                                status_code=429, headers={"retry-after": "7"})
        elif self.mode == "401":
            key = entry["headers"].get("authorization", "").removeprefix("Bearer ")
            return JSONResponse({"error": {"message": f"Incorrect API key provided: {key}.",
                                           "type": "invalid_request_error", "param": None,
                                           "code": "invalid_api_key"}}, status_code=401)
        return None

    async def models(self, request: Request) -> Response:
        """What the gateway's breaker probes: healthy unless the mode makes the upstream fail."""
        if self.mode in ("500", "cut", "slow", "block"):
            return JSONResponse({"error": {"message": "The server had an error", "type": "server_error",
                                           "param": None, "code": None}}, status_code=500)
        return JSONResponse({"object": "list", "data": [{"id": "whisper-1", "object": "model"}]})

    async def stt(self, request: Request) -> Response:
        entry = await self._record(request)
        fault = await self._fault(entry)
        if fault is not None:
            return fault
        if entry["fields"].get("stream") == "true" or self.mode == "cut":
            return StreamingResponse(self._sse(), media_type="text/event-stream")
        return JSONResponse({"text": TEXT})

    async def _sse(self):
        words = TEXT.split()
        for i, word in enumerate(words):
            if self.mode == "cut" and i == 2:
                raise RuntimeError("upstream died mid-stream")
            yield f"data: {json.dumps({'type': 'transcript.text.delta', 'delta': ' ' + word})}\n\n"
            await asyncio.sleep(0.01)
        yield f"data: {json.dumps({'type': 'transcript.text.done', 'text': TEXT})}\n\n"

    async def speech(self, request: Request) -> Response:
        entry = await self._record(request)
        fault = await self._fault(entry)
        if fault is not None:
            return fault

        async def pcm():
            for i in range(5):
                if self.mode == "cut" and i == 2:
                    raise RuntimeError("upstream died mid-stream")
                yield b"\x00\x01" * 2400
                await asyncio.sleep(0.01)
        return StreamingResponse(pcm(), media_type="audio/pcm")
