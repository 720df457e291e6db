"""Short encoder windows for short turns (live finals/partials), on real speech."""

from __future__ import annotations

import logging
import threading

import faster_whisper.transcribe as fw_transcribe
import numpy as np

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt import fw_window
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.stt.wer import wer


def test_short_window_keeps_the_text_and_leaves_other_calls_alone(server, eval_audio):
    engine = server.app.state.voxhost.services.stt_engines.get("whisper-base")
    audio = decode_audio((eval_audio / "cathy_arctic_a0001.wav").read_bytes())
    reference = "Author of the danger trail, Philip Steels, etc."
    full = engine.transcribe(audio, TranscriptionOptions(language="en", without_timestamps=True)).text
    short = engine.transcribe(
        audio, TranscriptionOptions(language="en", without_timestamps=True, chunk_length=5)).text
    assert wer([reference], [short]) <= wer([reference], [full]) + 0.15, (short, full)
    # The window applied to that call only: the shared model still pads to 30 s.
    assert engine.model.feature_extractor.chunk_length == 30
    assert fw_transcribe.pad_or_trim(np.zeros((80, 10), dtype=np.float32)).shape[-1] == 3000
    # ...also from another thread while this one has a window set.
    with fw_window.encoder_window(500):
        seen = []
        worker = threading.Thread(target=lambda: seen.append(
            fw_transcribe.pad_or_trim(np.zeros((80, 10), dtype=np.float32)).shape[-1]))
        worker.start()
        worker.join()
        assert seen == [3000]
        assert fw_transcribe.pad_or_trim(np.zeros((80, 10), dtype=np.float32)).shape[-1] == 500
    assert fw_transcribe.pad_or_trim(np.zeros((80, 10), dtype=np.float32)).shape[-1] == 3000


def test_the_window_wrapper_is_pinned_to_tested_faster_whisper_versions():
    assert fw_window.tested("1.1.0") and fw_window.tested("1.2.1")
    assert not fw_window.tested("1.0.3") and not fw_window.tested("1.3.0") and not fw_window.tested("2.0")


def test_an_untested_faster_whisper_falls_back_to_full_windows_with_a_warning(server, monkeypatch, caplog):
    engine = server.app.state.voxhost.services.stt_engines.get("whisper-base")
    monkeypatch.setattr(fw_window, "_state", {})  # forget the version check made at first use
    monkeypatch.setattr(fw_window, "version", lambda _name: "9.0.0")
    with caplog.at_level(logging.WARNING, logger="voxhost.stt"):
        assert engine._window_seconds(TranscriptionOptions(chunk_length=5)) == 30
    assert "outside the versions" in caplog.text and "faster-whisper>=1.1,<1.3" in caplog.text
