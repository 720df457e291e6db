"""REST short clips in a clip-sized encoder window (VOXHOST_STT_REST_SHORT_WINDOW): the
window the service picks, and that it keeps Whisper base's text on real clips where the
live finals' 15 s floor lost words (docs/benchmarks.md, bench/rest_window.py)."""

from __future__ import annotations

import pytest

from voxhost.audio.decode import decode_audio
from voxhost.evaluation.wer import normalize
from voxhost.ops.settings import Settings
from voxhost.stt.service import REST_MIN_WINDOW_S, SttService, options_from

# Clips where a 15 s window changed the words ("Grigs and ... rose", "Aurora Alice").
CLIPS = ["cathy_arctic_a0012.wav", "cathy_arctic_a0015.wav"]


@pytest.fixture(scope="module")
def service(server):
    settings = Settings(stt_rest_short_window=True)
    return SttService(server.app.state.voxhost.stt, scheduler=None, settings=settings)


@pytest.mark.parametrize("seconds, window", [(1.0, 20), (5.9, 20), (15.0, 20), (17.0, 25), (24.0, 30), (40.0, 30)])
def test_the_window_is_the_clip_plus_5_s_at_least_20_s(service, seconds, window):
    import numpy as np

    options = service.windowed(np.zeros(int(seconds * 16_000), np.float32), service.options(language="en"))
    assert options.chunk_length == window and REST_MIN_WINDOW_S == 20


def test_off_by_default_and_a_client_window_is_kept(server):
    import numpy as np

    audio = np.zeros(16_000, np.float32)
    off = SttService(server.app.state.voxhost.stt, scheduler=None, settings=Settings())
    assert off.windowed(audio, off.options(language="en")).chunk_length is None


@pytest.mark.parametrize("clip", CLIPS)
def test_the_rest_window_keeps_the_full_windows_words(server, service, eval_audio, clip):
    engine = server.app.state.voxhost.stt.get("whisper-base")
    audio = decode_audio((eval_audio / clip).read_bytes())
    options = options_from(service.settings, language="en", timestamps_needed=False)  # REST json
    full = engine.transcribe(audio, options).text
    windowed = service.windowed(audio, options)
    assert windowed.chunk_length == REST_MIN_WINDOW_S
    assert normalize(engine.transcribe(audio, windowed).text) == normalize(full), full
