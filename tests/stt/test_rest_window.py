"""REST json/text clips decode text-only (VOXHOST_STT_REST_TEXT_ONLY), on a CPU engine in a
clip-sized encoder window: the window the service picks, when it leaves options alone, and that
it keeps Whisper base's words on real clips where shorter windows lost them (docs/benchmarks.md
"REST short clips, the model side", bench/rest_window.py)."""

from __future__ import annotations

import numpy as np
import pytest

from voxhost.audio.decode import decode_audio
from voxhost.ops.settings import Settings
from voxhost.stt.service import REST_WINDOW_FLOOR_S, SttService, options_from
from voxhost.stt.wer import normalize, wer

# Clips where a 15 s window changed the words ("Grigs and ... rose", "Aurora Alice"), and where
# 20 s, and 25 s with timestamp tokens, did ("Gad" -> "God", "therefore" -> "there for").
CLIPS = ["cathy_arctic_a0012.wav", "cathy_arctic_a0015.wav", "cathy_arctic_a0008.wav", "lj_LJ001-0016.wav"]


class Engine:
    def __init__(self, device):
        self.device = device


@pytest.fixture(scope="module")
def service(server):
    return SttService(server.app.state.voxhost.services.stt_engines, scheduler=None, settings=Settings())


def json_options(service, **kw):
    return service.options(language="en", **kw)


def for_json(service, audio, options, engine):
    """The options a REST json/text request of `audio` decodes with."""
    return service.request_options(audio, options, engine, timestamps_needed=False)


@pytest.mark.parametrize("seconds, window", [(1.0, 25), (5.9, 25), (15.0, 25), (20.0, 25), (21.0, None), (30.0, None)])
def test_json_clips_decode_text_only_in_the_clip_plus_5_s_at_least_25_s(service, seconds, window):
    audio = np.zeros(int(seconds * 16_000), np.float32)
    options = for_json(service, audio, json_options(service), Engine("cpu"))
    assert options.chunk_length == window and options.without_timestamps and REST_WINDOW_FLOOR_S == 25


def test_a_gpu_engine_decodes_json_text_only_in_the_whole_window(service):
    audio = np.zeros(16_000 * 3, np.float32)
    options = for_json(service, audio, json_options(service), Engine("cuda"))
    assert options.without_timestamps and options.chunk_length is None


@pytest.mark.parametrize("case", ["timestamps shown", "word timestamps", "client window", "over 30 s", "off",
                                  "off (deprecated name)"])
def test_options_are_left_alone(server, service, case):
    audio = np.zeros(16_000 * (40 if case == "over 30 s" else 3), np.float32)
    options, engine = json_options(service), Engine("cpu")
    if case == "timestamps shown":  # verbose_json, srt, vtt, streaming
        assert service.request_options(audio, options, engine, timestamps_needed=True) == options
        return
    if case == "word timestamps":
        options = json_options(service, word_timestamps=True)
    elif case == "client window":
        options = json_options(service, chunk_length=10)
    elif case.startswith("off"):
        off = Settings(stt_rest_short_window=False) if "deprecated" in case else Settings(stt_rest_text_only=False)
        service = SttService(server.app.state.voxhost.services.stt_engines, scheduler=None, settings=off)
    assert for_json(service, audio, options, engine) == options


@pytest.mark.parametrize("clip", CLIPS)
def test_the_rest_window_keeps_the_full_windows_words(server, service, eval_audio, english, clip):
    engine = server.app.state.voxhost.services.stt_engines.get("whisper-base")
    audio = decode_audio((eval_audio / clip).read_bytes())
    options = options_from(service.settings, language="en")
    full = engine.transcribe(audio, options).text
    windowed = for_json(service, audio, options, engine)
    assert windowed.chunk_length == REST_WINDOW_FLOOR_S and windowed.without_timestamps
    words = engine.transcribe(audio, windowed).text
    if normalize(words) != normalize(full):
        # Float rounding differs between CPUs: on some, the full window itself misreads a word the
        # 25 s window gets right ("there for" for "therefore"). A difference is only allowed when
        # the window's words are at least as close to what was said.
        said = next(row.text for row in english if row.audio.name == clip)
        assert wer([said], [words]) <= wer([said], [full]), (words, full)
