"""The resume ledger's rules, event by event (no server: the bookkeeping alone;
tests/loadtest/test_resume.py runs it against real servers that go away)."""

from __future__ import annotations

from voxhost.loadtest.resume import COMPLETED, ResumeLedger

RATE = 24_000
MS = RATE // 1000  # samples per ms


def pcm(ms: int) -> bytes:
    return b"\x01\x00" * (ms * MS)


def drain_sent(ledger: ResumeLedger) -> tuple[int, list[int]]:
    """Everything the sender would send now: (samples, positions of the commits it sends)."""
    samples, commits = 0, []
    while True:
        data, commit = ledger.next_chunk(100 * MS)
        samples += len(data) // 2
        if commit:
            commits.append(ledger.sent)
        if not data and not commit:
            return samples, commits


def vad_turn(ledger, item, start_ms, end_ms) -> None:
    for event in ({"type": "input_audio_buffer.speech_started", "item_id": item, "audio_start_ms": start_ms},
                  {"type": "input_audio_buffer.speech_stopped", "item_id": item, "audio_end_ms": end_ms},
                  {"type": "input_audio_buffer.committed", "item_id": item, "previous_item_id": None}):
        assert ledger.on_event(event) is event


def completed(item: str, text: str = "words") -> dict:
    return {"type": COMPLETED, "item_id": item, "transcript": text}


def test_replay_starts_after_the_last_answered_turn():
    ledger = ResumeLedger(RATE)
    ledger.start_connection()
    ledger.append(pcm(5000))
    drain_sent(ledger)
    vad_turn(ledger, "a", 500, 2000)
    vad_turn(ledger, "b", 2500, 4000)  # committed, its final lost with the server
    assert ledger.on_event(completed("a")) is not None
    ledger.lost()
    ledger.append(pcm(1000))  # the microphone goes on during the outage
    ledger.start_connection()
    assert ledger.base == 2000 * MS
    assert drain_sent(ledger) == (4000 * MS, [])  # turn b, the rest, and the outage's audio
    assert ledger.replayed == 4000 * MS
    # The new server's clock starts at the replay: its positions map back onto the timeline.
    vad_turn(ledger, "b2", 400, 2100)
    ledger.on_event(completed("b2"))
    assert [(f.item_id, f.start_ms, f.end_ms) for f in ledger.finals] == [("a", 500, 2000), ("b2", 2400, 4100)]


def test_events_of_an_earlier_connection_are_dropped():
    ledger = ResumeLedger(RATE)
    ledger.start_connection()
    ledger.append(pcm(3000))
    drain_sent(ledger)
    vad_turn(ledger, "a", 500, 2000)
    ledger.lost()
    ledger.start_connection()
    assert ledger.on_event(completed("a")) is None  # late, from the old socket: "a" is replayed
    assert ledger.stale_dropped == 1 and ledger.finals == []


def test_a_final_for_audio_already_answered_is_a_duplicate():
    ledger = ResumeLedger(RATE)
    ledger.start_connection()
    ledger.append(pcm(6000))
    drain_sent(ledger)
    vad_turn(ledger, "a", 500, 3000)
    ledger.on_event(completed("a"))
    # A server that heard the same audio again (a client that replayed too much) answers it twice.
    vad_turn(ledger, "a-again", 600, 2900)
    assert ledger.on_event(completed("a-again")) is None
    assert ledger.duplicates_dropped == 1 and [f.item_id for f in ledger.finals] == ["a"]


def test_a_drain_mid_turn_is_answered_up_to_where_the_server_stopped():
    """The draining server commits the open turn where it stopped reading; `committed`
    carries that span (voxhost extension), so the replay starts exactly there."""
    ledger = ResumeLedger(RATE)
    ledger.start_connection()
    ledger.append(pcm(4000))
    drain_sent(ledger)
    ledger.on_event({"type": "input_audio_buffer.speech_started", "item_id": "a", "audio_start_ms": 1000})
    ledger.on_event({"type": "input_audio_buffer.committed", "item_id": "a", "previous_item_id": None,
                     "audio_start_ms": 700, "audio_end_ms": 3200})  # no speech_stopped: cut by the drain
    ledger.on_event(completed("a", "the first half"))
    ledger.lost()
    ledger.start_connection()
    assert ledger.base == 3200 * MS  # the rest of the sentence, not the whole turn again


def test_push_to_talk_commits_are_resent_at_the_same_places():
    ledger = ResumeLedger(RATE, manual=True)
    ledger.start_connection()
    ledger.append(pcm(1500))
    ledger.commit()
    ledger.append(pcm(1000))
    ledger.commit()
    assert drain_sent(ledger) == (2500 * MS, [1500 * MS, 2500 * MS])
    # The first commit answered (a server without spans: matched in order), the second lost.
    ledger.on_event({"type": "input_audio_buffer.committed", "item_id": "a", "previous_item_id": None})
    ledger.on_event(completed("a"))
    ledger.lost()
    ledger.start_connection()
    assert ledger.base == 1500 * MS
    assert drain_sent(ledger) == (1000 * MS, [2500 * MS])


def test_an_idle_open_mic_keeps_what_no_final_answered_up_to_the_cap():
    """Pongs say the server read audio, not that it processed it (a draining server reads
    and drops): silence stays until a final or the cap lets it go."""
    ledger = ResumeLedger(RATE, max_buffer_ms=10_000)
    ledger.start_connection()
    for _ in range(30):  # half a minute of silence, the server pongs as it reads
        ledger.append(pcm(1000))
        drain_sent(ledger)
        ledger.on_pong(ledger.sent)
    assert ledger.end - ledger.kept == 10_000 * MS
    assert ledger.dropped == 20_000 * MS
    vad_turn(ledger, "a", 25_000, 29_000)
    ledger.on_event(completed("a"))
    assert ledger.kept == 29_000 * MS


def test_the_buffer_cap_counts_what_it_drops_during_a_long_outage():
    ledger = ResumeLedger(RATE, manual=True, max_buffer_ms=10_000)
    ledger.start_connection()
    ledger.append(pcm(2000))
    drain_sent(ledger)
    ledger.lost()
    for _ in range(12):
        ledger.append(pcm(1000))
    assert ledger.end - ledger.kept == 10_000 * MS
    assert ledger.dropped == 4000 * MS
