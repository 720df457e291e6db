"""Stop work for clients that hung up.

Starlette only notices a disconnect when it next sends, so a non-streaming
request whose client has gone would stay queued, be decoded, and be logged,
metered and priced as a 200: after an overload, fresh requests waited tens
of seconds behind dead work. Watching the ASGI `http.disconnect` message
while the work runs lets it be cancelled instead; a queued scheduler job
then leaves its queue (scheduler/executor.py), and a running one has its
result dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from voxhost.ops import context

T = TypeVar("T")

# nginx's "client closed request": never sent (nobody is listening), but it
# is what the access log and the requests metric record.
CLIENT_CLOSED_REQUEST = 499


class ClientDisconnected(Exception):
    """The client went away before its response was ready (rendered as 499)."""


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await `work` (whose request body has been read), cancelling it and
    raising ClientDisconnected if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task.done():
        return task.result()
    task.cancel()
    ctx = context.current()
    if ctx is not None:
        ctx.abandoned = True
    raise ClientDisconnected()


async def _disconnected(request: Request) -> None:
    # Once the body is read, the server's next message is the disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        pass
