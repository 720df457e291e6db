"""Cross-origin access for browser games: CORS on HTTP, Origin on WebSockets.

Only origins in VOXHOST_CORS_ORIGINS (default: none) may call the API from a
page on another origin. Preflights are answered before the key check (a
browser never sends credentials on a preflight). WebSockets are not covered
by CORS at all, so the handshake's Origin is checked against the same list.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware

from voxhost.errors import OriginNotAllowed

# What a browser client needs to send and read (request ids, cost, backoff).
ALLOW_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "OpenAI-Beta"]
EXPOSE_HEADERS = ["X-Request-Id", "X-Queue-Ms", "X-Compute-Ms", "X-Cost-USD", "Retry-After", "retry-after-ms"]


def install_cors(app: FastAPI, origins: list[str]) -> None:
    """Outermost middleware, so preflights never reach the key check."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=ALLOW_HEADERS, expose_headers=EXPOSE_HEADERS, max_age=600,
    )


def check_websocket_origin(headers: Headers, origins: list[str]) -> None:
    """Refuse a browser handshake from a page outside `origins`.

    Clients that send no Origin (game servers, SDKs) and pages served by
    this server itself (the console) pass. With no list configured, any
    origin passes, as before (keys still apply)."""
    origin = headers.get("origin")
    if not origins or not origin or "*" in origins or origin in origins:
        return
    if urlsplit(origin).netloc == headers.get("host"):
        return
    raise OriginNotAllowed(f"Origin {origin[:100]!r} is not allowed; add it to VOXHOST_CORS_ORIGINS.")
