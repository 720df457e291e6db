"""Client-side bookkeeping that lets a live transcription session outlive its server.

A live session's audio exists in two places only: the client, and one server's
memory. When that server goes (killed, drained, its link down, or full and
handing the player on with 1013), the client opens a session elsewhere and
replays the audio that no completed transcript has covered yet, so no spoken
turn is lost; and it drops any final for audio that a final already covered,
so no turn is transcribed twice. Everything here is decided from the protocol's
own events; nothing is sent that OpenAI's protocol does not have:

- each connection's server clock starts at 0 with its first append, so a server
  position (`audio_start_ms`, `audio_end_ms`) is `base + ms` on the client's own
  timeline, `base` being where that connection's replay started;
- `speech_started` / `speech_stopped` give a VAD turn's span; voxhost also puts
  the span on `committed` (an extension), which covers turns the server commits
  on its own: at the turn-length limit, or when it drains mid-turn;
- with push-to-talk the client's own commits mark the ends, matched in order;
- `completed` (and `failed`) carry the item: the audio up to its end is answered
  and leaves the buffer (finals arrive in commit order, so that end only grows).

Nothing else leaves it: not the silence of an idle open mic, because nothing
the server says proves it *processed* audio it has not answered (a pong only
says it read it; a draining server reads and drops). An idle mic's buffer is
capped instead (`max_buffer_ms`, 60 s: 2.9 MB at 24 kHz); replaying silence
costs the new server a little VAD, nothing else.

On a new connection, replay starts at the first uncovered sample: the turns in
flight and the open one are heard again by the new server, and push-to-talk
commits that were not answered are re-sent at the same places. Events of an
earlier connection's items are stale and dropped; a final whose span ends
within audio already covered by a final is a duplicate and dropped.

Pure bookkeeping (no I/O), so a game-engine client can port it line for line;
docs/architecture.md ("Surviving a lost server") is the same in prose.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"


@dataclass
class _Turn:
    item_id: str
    start: int | None = None  # sample on the client's timeline
    end: int | None = None
    committed: bool = False
    done: bool = False


@dataclass(frozen=True)
class Final:
    """A delivered final and the span of the client's audio it answers (ms on the timeline)."""

    item_id: str
    transcript: str | None  # None: the turn failed
    start_ms: float | None
    end_ms: float | None


class ResumeLedger:
    def __init__(self, rate: int = 24_000, *, manual: bool = False, max_buffer_ms: int = 60_000):
        self.rate = rate
        self.manual = manual  # push-to-talk (turn_detection null): the client's commits end turns
        self.max_buffer = max_buffer_ms * rate // 1000
        self._audio = bytearray()  # PCM16 of the timeline's samples [kept, end)
        self.kept = 0
        self.covered = 0  # nothing before this sample needs replaying
        self.finalized = 0  # ... of which a final answered everything before this one
        self.base = 0  # the timeline sample where the current connection's clock starts
        self.sent = 0  # how far the current connection has been given audio
        self.acked = 0  # the current connection has read everything before this (a pong)
        self.live = False  # a connection is open and configured
        self.connections = 0
        self._turns: dict[str, _Turn] = {}
        self._commits: list[int] = []  # push-to-talk commit points without a final yet
        self._unmatched: list[int] = []  # commit points sent on this connection, no `committed` yet
        self._stale: set[str] = set()  # items of earlier connections
        self.finals: list[Final] = []
        self.duplicates_dropped = 0
        self.stale_dropped = 0
        self.replayed = 0  # samples sent again after reconnects
        self.dropped = 0  # samples the buffer cap let go unanswered (possible loss)

    # --- the client's audio ----------------------------------------------
    @property
    def end(self) -> int:
        return self.kept + len(self._audio) // 2

    def append(self, pcm: bytes) -> None:
        self._audio += pcm
        over = self.end - self.kept - self.max_buffer
        if over > 0:
            # Only what a live connection was already given may go; while none is
            # open the oldest audio goes, counted as possibly lost.
            limit = self.sent if self.live else self.end
            target = min(self.kept + over, limit)
            if target > self.covered:
                self.dropped += target - max(self.covered, self.kept)
                self.covered = target
            self._trim()

    def commit(self) -> None:
        """Push-to-talk released: the turn ends at the audio appended so far."""
        if not self._commits or self._commits[-1] < self.end:
            self._commits.append(self.end)

    # --- the connection --------------------------------------------------
    def start_connection(self) -> None:
        """A new connection is open and configured: replay from the first uncovered sample."""
        self._stale.update(self._turns)
        self._turns = {}
        self._unmatched = []
        self.base = max(self.covered, self.kept)
        self._commits = [p for p in self._commits if p > self.base]
        if self.connections:
            self.replayed += self.end - self.base
        self.sent = self.acked = self.base
        self.connections += 1
        self.live = True

    def lost(self) -> None:
        self.live = False

    def next_chunk(self, max_samples: int) -> tuple[bytes, bool]:
        """The next audio to send on this connection and whether a commit follows it."""
        stop = min(self.end, self.sent + max_samples)
        commit = False
        upcoming = next((p for p in self._commits if p > self.sent), None)
        if upcoming is not None and upcoming <= stop:
            stop, commit = upcoming, True
        data = bytes(self._audio[(self.sent - self.kept) * 2:(stop - self.kept) * 2])
        self.sent = stop
        if commit:
            self._unmatched.append(stop)
        return data, commit

    @property
    def caught_up(self) -> bool:
        return self.sent >= self.end and not any(p > self.sent for p in self._commits)

    def on_pong(self, position: int) -> None:
        """A pong for a ping sent when `position` had been sent: the server read that far
        (read, not processed: the client's `finished` check uses it, the buffer does not)."""
        self.acked = max(self.acked, position)

    # --- the server's events -----------------------------------------------
    def on_event(self, event: dict) -> dict | None:
        """Book the event; returns it for the application, or None to drop it."""
        kind = event.get("type", "")
        item = event.get("item_id")
        if item is not None and item in self._stale:
            self.stale_dropped += 1
            return None
        if kind == "input_audio_buffer.speech_started":
            self._turn(item).start = self._at(event.get("audio_start_ms"))
        elif kind == "input_audio_buffer.speech_stopped":
            self._turn(item).end = self._at(event.get("audio_end_ms"))
        elif kind == "input_audio_buffer.committed":
            self._committed(self._turn(item), event)
        elif kind in (COMPLETED, FAILED):
            turn = self._turns.get(item or "")
            if turn is not None and not self._answer(turn, event):
                return None
        self._trim()
        return event

    def _committed(self, turn: _Turn, event: dict) -> None:
        turn.committed = True
        end = self._at(event.get("audio_end_ms"))
        if end is not None:  # voxhost: the span, whoever committed
            turn.start, turn.end = self._at(event.get("audio_start_ms")), end
            # Our own commits up to there are answered by this one.
            while self._unmatched and self._unmatched[0] <= end + self.rate // 100:
                self._unmatched.pop(0)
        elif self.manual and self._unmatched:  # a server without the span: our commits, in order
            turn.end = self._unmatched.pop(0)
        # Else (VAD) speech_stopped gave the end; without either it stays unknown.

    def _answer(self, turn: _Turn, event: dict) -> bool:
        if turn.end is not None and turn.end <= self.finalized and not turn.done:
            # Every sample of it was answered already: a replay heard it again.
            self.duplicates_dropped += 1
            turn.done = True
            return False
        turn.done = True
        if turn.end is not None:
            self.covered = max(self.covered, turn.end)
            self.finalized = max(self.finalized, turn.end)
            self._commits = [p for p in self._commits if p > turn.end + self.rate // 100]
        self.finals.append(Final(turn.item_id, event.get("transcript") if event["type"] == COMPLETED else None,
                                 self._ms(turn.start), self._ms(turn.end)))
        return True

    # --- internals ----------------------------------------------------------
    def _turn(self, item: str | None) -> _Turn:
        key = item or ""
        if key not in self._turns:
            self._turns[key] = _Turn(key)
        return self._turns[key]

    def _at(self, ms) -> int | None:
        return None if ms is None else self.base + int(ms) * self.rate // 1000

    def _ms(self, sample: int | None) -> float | None:
        return None if sample is None else sample * 1000 / self.rate

    @property
    def open_turns(self) -> int:
        """Turns this connection has started or committed that have no final yet."""
        return sum(1 for t in self._turns.values() if not t.done)

    def _trim(self) -> None:
        cut = min(self.covered, self.sent if self.live else self.covered) - self.kept
        if cut > 0:
            del self._audio[:cut * 2]
            self.kept += cut

    def span_ms(self, item_id: str) -> tuple[float | None, float | None]:
        turn = self._turns.get(item_id)
        return (self._ms(turn.start), self._ms(turn.end)) if turn else (None, None)
