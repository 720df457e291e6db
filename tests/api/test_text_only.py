"""REST json/text may decode without timestamp tokens (`stt_text_only`, auto: on
for GPU engines): what the client gets must be that decode, and responses that
show timestamps must keep them."""

from __future__ import annotations

import pytest

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.stt.service import REST_MIN_WINDOW_S


@pytest.fixture
def text_only_engine(server, monkeypatch):
    engine = server.app.state.voxhost.stt.get("whisper-base")
    assert engine.text_only is False  # CPU default (auto)
    monkeypatch.setattr(engine, "text_only", True)
    return engine


def test_json_decodes_text_only_and_verbose_json_keeps_timestamps(text_only_engine, openai_client, eval_audio):
    path = eval_audio / "lj_LJ001-0004.wav"
    audio = decode_audio(path.read_bytes())
    text_only = text_only_engine.transcribe(audio, TranscriptionOptions(language="en", without_timestamps=True))
    with_ts = text_only_engine.transcribe(audio, TranscriptionOptions(language="en"))

    resolved = text_only_engine.transcribe(audio, TranscriptionOptions(language="en", timestamps_needed=False))
    assert resolved.text == text_only.text
    assert len(resolved.segments) == 1 and resolved.segments[0].start == 0.0  # one untimed span
    # Batched decodes resolve the same way (same batch key as an explicit text-only request).
    assert text_only_engine.batch_key(audio, TranscriptionOptions(language="en", timestamps_needed=False)) == \
        text_only_engine.batch_key(audio, TranscriptionOptions(language="en", without_timestamps=True))

    # REST json on a CPU engine also decodes in the clip-sized window (stt/service.py windowed).
    rest = text_only_engine.transcribe(audio, TranscriptionOptions(language="en", without_timestamps=True,
                                                                   chunk_length=REST_MIN_WINDOW_S))
    with open(path, "rb") as f:
        got = openai_client.audio.transcriptions.create(model="whisper-base", file=f, language="en")
    assert got.text == rest.text
    with open(path, "rb") as f:
        verbose = openai_client.audio.transcriptions.create(
            model="whisper-base", file=f, language="en", response_format="verbose_json",
            timestamp_granularities=["segment"])
    assert verbose.text == with_ts.text
    assert [round(s.end, 2) for s in verbose.segments] == [round(s.end, 2) for s in with_ts.segments]


def test_long_audio_keeps_timestamp_seeking(text_only_engine):
    import numpy as np

    long = np.zeros(16_000 * 31, dtype=np.float32)
    opts = TranscriptionOptions(timestamps_needed=False)
    assert text_only_engine._resolve(long, opts).without_timestamps is False
    assert text_only_engine._resolve(long[: 16_000 * 5], opts).without_timestamps is True
