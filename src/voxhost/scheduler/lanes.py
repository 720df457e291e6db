"""Priority lanes, shared by every engine's scheduler."""

from __future__ import annotations

from enum import Enum


class Lane(str, Enum):
    """Priority lanes, most urgent first."""

    LIVE = "live"  # realtime sessions: a player is waiting mid-conversation
    INTERACTIVE = "interactive"  # REST requests
    BULK = "bulk"  # long files, batch jobs


LANES: tuple[Lane, ...] = (Lane.LIVE, Lane.INTERACTIVE, Lane.BULK)
