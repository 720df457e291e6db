"""Two Whisper decodes at once (engines/threads.py whisper_threads; the sizes themselves are
pinned in test_threads.py): the server's executor runs as many decodes at once as the engine
has workers, and eight concurrent short clips through the real server come back with the
words each has alone."""

from __future__ import annotations

import concurrent.futures as cf


def test_the_servers_executor_runs_as_many_decodes_as_the_engine_has_workers(server):
    state = server.app.state.voxhost
    engine = state.services.stt_engines.get("whisper-base")
    assert state.settings.stt_num_workers == 0 and engine.device == "cpu"
    assert engine.num_workers == 2
    assert state.services.stt_scheduler.executor_for(engine).workers == 2


def test_eight_concurrent_short_clips_keep_their_own_words(openai_client, english):
    """Two decodes at once must not mix clips up or change words: each of eight real clips
    under 6 s, posted at once, gets exactly the text it gets posted alone."""
    clips = [u.audio for u in english if u.duration < 6.0][:8]

    def transcribe(path):
        with open(path, "rb") as f:
            return openai_client.audio.transcriptions.create(model="whisper-base", file=f, language="en").text

    alone = [transcribe(p) for p in clips]
    with cf.ThreadPoolExecutor(len(clips)) as pool:
        together = list(pool.map(transcribe, clips))
    assert together == alone
    assert all(alone)
