"""Who is served where: sticky per-player shares, fallback and burst.

A player's choice is a hash of their id mapped onto [0, 1): a player below
the route's local share is served here, every time, so nobody flips engines
mid-game; over many players the served fraction matches the share. Raising
a share only moves players from upstream to local (never the other way),
which is what a phased migration wants.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from voxhost.api.state import AppState
from voxhost.scheduler.lanes import Lane

ROUTE_HEADER = b"x-voxhost-route"
MAX_PLAYER_ID = 256


@dataclass(frozen=True)
class RoutePath:
    """Stands in for the router's matched route on upstream-served requests,
    so request logs and metrics label them by path."""

    path: str


class Served(str, enum.Enum):
    """The X-Voxhost-Route header's values."""

    LOCAL = "local"
    UPSTREAM = "upstream"  # the player's share says upstream
    FALLBACK = "fallback"  # local would have failed (not ready, draining, queue full, engine error)
    BURST = "burst"  # the local queue is past the burst threshold
    FAILOVER = "failover"  # the player's share says upstream, but the upstream failed: served here


def player_slot(player_id: str) -> float:
    """A stable position in [0, 1) for a player id (same on every instance and restart)."""
    digest = hashlib.blake2b(player_id.encode("utf-8", "surrogatepass"), digest_size=8,
                             person=b"voxhost-route").digest()
    return int.from_bytes(digest, "big") / 2**64


def wants_local(player_id: str, local_share: float) -> bool:
    if local_share >= 1.0:
        return True
    if local_share <= 0.0:
        return False
    return player_slot(player_id) < local_share


def local_state(state: AppState, route: str, burst_queue: int, in_flight: int = 0) -> Served:
    """For a player whose share says local: LOCAL, or why the request goes
    upstream before it is even tried here (FALLBACK, BURST). With burst on,
    a request bursts when local admission would refuse it (its expected wait
    past the budget, or a full queue: the same check as the router's), or when
    the queue is past `burst_queue`. `in_flight`: this route's local requests
    not yet answered (some still uploading or decoding, so not in the
    scheduler's queue yet)."""
    if not state.is_ready:  # loading, failed to load, or draining
        return Served.FALLBACK
    if burst_queue > 0 and (local_refuses(state, route) or queue_depth(state, route, in_flight) > burst_queue):
        return Served.BURST
    return Served.LOCAL


def local_refuses(state: AppState, route: str) -> bool:
    """Whether this server's admission would refuse a new request on `route` now (429)."""
    if route == "speech":
        return state.services.tts_scheduler.refusal(Lane.INTERACTIVE) is not None
    return state.services.stt_scheduler.refusal_any(Lane.INTERACTIVE) is not None


def queue_depth(state: AppState, route: str, in_flight: int = 0) -> int:
    """Requests waiting for the lane this route uses: the scheduler's queue
    (the least-loaded STT engine's interactive lane, a request can pick its
    model; or the TTS queue), or the requests in flight beyond its workers
    when that is more (those are on their way into the queue)."""
    if route == "speech":
        executors = [state.services.tts_scheduler.executor]
    else:
        executors = list(state.services.stt_scheduler.executors.values())
    if not executors:
        return max(0, in_flight - 1)
    queued = min(e.depth(Lane.INTERACTIVE) for e in executors)
    workers = max(e.workers for e in executors)
    return max(queued, in_flight - workers)
