"""How many decodes a Whisper engine runs at once, and on how many threads (issue 12,
"REST short clips, the model side"): on a CPU two single-threaded CTranslate2 workers
share the cores, on a GPU one worker (the batcher gives the concurrency there); the
server's executor runs as many decodes at once as the engine has workers; and eight
concurrent short clips through the real server come back with the words each has alone."""

from __future__ import annotations

import concurrent.futures as cf

import pytest

from voxhost.engines.stt.whisper import resolve_parallelism


@pytest.mark.parametrize("device, cores, threads, workers, expected", [
    ("cpu", 2, 0, 0, (1, 2)),   # this box: two one-thread decodes, not one two-thread decode
    ("cpu", 4, 0, 0, (2, 2)),   # the cores are shared among the workers, never oversubscribed
    ("cpu", 1, 0, 0, (1, 1)),
    ("cpu", 2, 0, 8, (1, 8)),   # workers set (the planner's bench): threads still share the cores
    ("cpu", 2, 2, 1, (2, 1)),   # both set: as given
    ("cuda", 4, 0, 0, (0, 1)),  # GPU: one replica, CTranslate2's own thread default
    ("cuda", 4, 0, 2, (0, 2)),
])
def test_auto_parallelism(device, cores, threads, workers, expected):
    assert resolve_parallelism(device, threads, workers, cores=cores) == expected


def test_the_servers_executor_runs_as_many_decodes_as_the_engine_has_workers(server):
    state = server.app.state.voxhost
    engine = state.stt.get("whisper-base")
    assert state.settings.stt_num_workers == 0 and engine.device == "cpu"
    assert engine.num_workers == 2
    assert state.stt_scheduler.executor_for(engine).workers == 2


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
