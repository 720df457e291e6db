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

from voxhost.scheduler.lanes import Lane


class Served(str, enum.Enum):
    """The X-Voxhost-Route header's values."""

    LOCAL = "local"
    UPSTREAM = "upstream"  # the player's share says upstream
    FALLBACK = "fallback"  # local would have failed (not ready, draining, queue full, engine error)
    BURST = "burst"  # the local queue is past the burst threshold


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


def local_state(state, route: str, burst_queue: int) -> Served:
    """For a player whose share says local: LOCAL, or why the request goes
    upstream before it is even tried here (FALLBACK, BURST)."""
    if not state.is_ready:  # loading, failed to load, or draining
        return Served.FALLBACK
    if burst_queue > 0 and queue_depth(state, route) > burst_queue:
        return Served.BURST
    return Served.LOCAL


def queue_depth(state, route: str) -> int:
    """Jobs waiting in the lane this route uses: the least-loaded STT engine's
    interactive lane (a request can pick its model) or the TTS queue."""
    if route == "speech":
        executor = state.tts_scheduler.executor
        return executor.depth(Lane.INTERACTIVE) if executor is not None else 0
    executors = state.stt_scheduler.executors.values()
    return min((e.depth(Lane.INTERACTIVE) for e in executors), default=0)
