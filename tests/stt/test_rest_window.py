"""REST json/text clips decode text-only in a clip-sized encoder window (VOXHOST_STT_REST_SHORT_WINDOW,
auto: on for CPU engines): the window the service picks, when it leaves options alone, and that
it keeps Whisper base's words on real clips where shorter windows lost them (docs/benchmarks.md
"REST short clips, the model side", bench/rest_window.py)."""

from __future__ import annotations

import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.evaluation.wer import normalize
from voxhost.ops.settings import Settings
from voxhost.stt.service import REST_MIN_WINDOW_S, SttService, options_from

# Clips where a 15 s window changed the words ("Grigs and ... rose", "Aurora Alice"), and where
# 20 s, and 25 s with timestamp tokens, did ("Gad" -> "God", "therefore" -> "there for").
CLIPS = ["cathy_arctic_a0012.wav", "cathy_arctic_a0015.wav", "cathy_arctic_a0008.wav", "lj_LJ001-0016.wav"]


class Engine:
    def __init__(self, device):
        self.device = device


@pytest.fixture(scope="module")
def service(server):
    return SttService(server.app.state.voxhost.stt, scheduler=None, settings=Settings())


def json_options(service, **kw):
    return service.options(language="en", timestamps_needed=False, **kw)


@pytest.mark.parametrize("seconds, window", [(1.0, 25), (5.9, 25), (15.0, 25), (20.0, 25), (21.0, None), (30.0, None)])
def test_json_clips_decode_text_only_in_the_clip_plus_5_s_at_least_25_s(service, seconds, window):
    audio = np.zeros(int(seconds * 16_000), np.float32)
    options = service.windowed(audio, json_options(service), Engine("cpu"))
    assert options.chunk_length == window and options.without_timestamps and REST_MIN_WINDOW_S == 25


@pytest.mark.parametrize("case", ["timestamps shown", "word timestamps", "client window", "over 30 s", "gpu", "off"])
def test_options_are_left_alone(server, service, case):
    audio = np.zeros(16_000 * (40 if case == "over 30 s" else 3), np.float32)
    options, engine = json_options(service), Engine("cuda" if case == "gpu" else "cpu")
    if case == "timestamps shown":  # verbose_json, srt, vtt, streaming
        options = service.options(language="en")
    elif case == "word timestamps":
        options = json_options(service, word_timestamps=True)
    elif case == "client window":
        options = json_options(service, chunk_length=10)
    elif case == "off":
        service = SttService(server.app.state.voxhost.stt, scheduler=None,
                             settings=Settings(stt_rest_short_window=False))
    assert service.windowed(audio, options, engine) == options


@pytest.mark.parametrize("clip", CLIPS)
def test_the_rest_window_keeps_the_full_windows_words(server, service, eval_audio, clip):
    engine = server.app.state.voxhost.stt.get("whisper-base")
    audio = decode_audio((eval_audio / clip).read_bytes())
    options = options_from(service.settings, language="en", timestamps_needed=False)  # REST json
    full = engine.transcribe(audio, options).text
    windowed = service.windowed(audio, options, engine)
    assert windowed.chunk_length == REST_MIN_WINDOW_S and windowed.without_timestamps
    assert normalize(engine.transcribe(audio, windowed).text) == normalize(full), full
