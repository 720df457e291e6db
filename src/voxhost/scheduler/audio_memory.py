"""A memory budget for decoded audio: what uploads hold while they decode,
wait in a queue and are transcribed.

A few hundred KB of FLAC can declare an hour of silence, 230 MB once decoded
to 16 kHz float32, and every request held its whole decoded audio while it
waited in a queue that allows 64 per lane: memory was bounded only by RAM
(docs/benchmarks.md, "Decoded audio under a memory budget"). Each request now
takes a reservation before its decode holds anything:

- the decoder asks for the bytes it is about to hold (`Reservation.hold`):
  from the container's declared length before the first sample is decoded,
  and again, growing, when the audio runs past it or declares nothing;
- a request that would pass the budget is refused: 429 (Overloaded) while
  others hold the room, 413 (AudioTooLarge) when it alone would not fit;
- once decoded, the reservation is set to the audio actually held, and it is
  released when the request is done with it (answered, failed, or its client gone).

Thread-safe: decodes run on worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from voxhost.errors import AudioTooLarge, Overloaded

MB = 1024 * 1024


class AudioMemoryBudget:
    def __init__(self, limit_bytes: int, on_change: Callable[[int], None] | None = None):
        """`limit_bytes` <= 0: no budget (reservations are only counted)."""
        self.limit = max(0, int(limit_bytes))
        self.held = 0
        self._lock = threading.Lock()
        self.on_change = on_change or (lambda held: None)  # told the bytes held after each change

    def reservation(self) -> Reservation:
        return Reservation(self)

    def _set(self, reservation: Reservation, nbytes: int, *, refuse: bool) -> None:
        with self._lock:
            others = self.held - reservation.nbytes
            if refuse and self.limit and nbytes > reservation.nbytes:
                if nbytes > self.limit:
                    raise AudioTooLarge(
                        f"Decoded, this audio needs {nbytes / MB:.0f} MB, more than this server's "
                        f"{self.limit / MB:.0f} MB budget for decoded audio (VOXHOST_AUDIO_MEMORY_BUDGET_MB); "
                        "send it in shorter pieces.", param="file")
                if others + nbytes > self.limit:
                    # Retry-After is filled in by the caller, who can see the queues.
                    raise Overloaded(
                        f"Decoded audio in flight ({others / MB:.0f} MB) leaves no room for this upload's "
                        f"{nbytes / MB:.0f} MB under this server's {self.limit / MB:.0f} MB budget; retry shortly.",
                        retry_after=1.0)
            self.held = others + nbytes
            reservation.nbytes = nbytes
            held = self.held
        self.on_change(held)


class Reservation:
    """One request's share of the budget. A context manager: released on exit."""

    def __init__(self, budget: AudioMemoryBudget):
        self.budget = budget
        self.nbytes = 0

    def hold(self, nbytes: int) -> None:
        """Grow to `nbytes` before holding them; raises (429/413) past the budget."""
        if nbytes > self.nbytes:
            self.budget._set(self, int(nbytes), refuse=True)

    def settle(self, nbytes: int) -> None:
        """Set to what is really held now (after a decode: the audio's size)."""
        self.budget._set(self, max(0, int(nbytes)), refuse=False)

    def release(self) -> None:
        if self.nbytes:
            self.budget._set(self, 0, refuse=False)

    def __enter__(self) -> Reservation:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
