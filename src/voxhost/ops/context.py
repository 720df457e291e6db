"""Per-request accounting, filled as a request travels through the layers.

The HTTP middleware opens a RequestContext; the scheduler adds queue wait,
compute time and cost to whichever context is current; the middleware turns
it into response headers, metrics and logs. A ContextVar carries it, so
domain code never sees a request object (and code outside a request simply
finds no context and records nothing).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from voxhost.ids import new_id


def new_request_id() -> str:
    return new_id("req")


@dataclass
class RequestContext:
    request_id: str = field(default_factory=new_request_id)
    route: str = "unmatched"
    key_name: str | None = None  # the API key's name, once authenticated
    queue_seconds: float = 0.0
    compute_seconds: float = 0.0
    cost_usd: float = 0.0
    audio_seconds: float = 0.0  # speech decoded for this request
    characters: int = 0  # text synthesised for this request
    cache_hits: int = 0
    cache_misses: int = 0
    # The client hung up before the response: its work was cancelled, and it
    # is counted as abandoned, never priced or charged to the key's quota.
    abandoned: bool = False
    # The response's headers leave before its work is done (streamed speech, SSE): they
    # cannot carry its queue, compute or cost, so they carry none rather than a false 0.
    work_after_headers: bool = False

    def add_job(self, queue_seconds: float, compute_seconds: float, cost_usd: float) -> None:
        self.queue_seconds += queue_seconds
        self.compute_seconds += compute_seconds
        self.cost_usd += cost_usd

    def figures(self) -> dict[str, float]:
        """Queue, compute and cost so far, as the headers and SSE events state them."""
        return {"queue_ms": round(self.queue_seconds * 1000, 1), "compute_ms": round(self.compute_seconds * 1000, 1),
                "cost_usd": round(self.cost_usd, 8)}


_current: ContextVar[RequestContext | None] = ContextVar("voxhost_request", default=None)


def current() -> RequestContext | None:
    return _current.get()


def activate(ctx: RequestContext):
    """Make `ctx` current; returns the token for `deactivate`."""
    return _current.set(ctx)


def deactivate(token) -> None:
    _current.reset(token)


# Small hooks other routers call (TTS, realtime) so they are counted the same way.
def note_characters(count: int) -> None:
    ctx = current()
    if ctx is not None:
        ctx.characters += count


def note_cache(hit: bool) -> None:
    ctx = current()
    if ctx is not None:
        if hit:
            ctx.cache_hits += 1
        else:
            ctx.cache_misses += 1


def note_audio_seconds(seconds: float) -> None:
    ctx = current()
    if ctx is not None:
        ctx.audio_seconds += seconds


def note_work_after_headers() -> None:
    """The response streams while its work runs: its figures go to the stream's last event,
    /metrics and the request log, not to headers."""
    ctx = current()
    if ctx is not None:
        ctx.work_after_headers = True


def figures() -> dict[str, float] | None:
    ctx = current()
    return ctx.figures() if ctx is not None else None
