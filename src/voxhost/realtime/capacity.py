"""How many live sessions the process admits at once."""

from __future__ import annotations

import threading


class SessionSlots:
    """A counter with a ceiling. New sessions past it are refused (close code
    1013, "try again later") instead of all sessions slowing down together."""

    def __init__(self, limit: int):
        self.limit = limit
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def try_acquire(self) -> bool:
        with self._lock:
            if self._active >= self.limit:
                return False
            self._active += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._active = max(0, self._active - 1)
