"""Kokoro's graph with its phoneme durations exposed: same waveform, durations that add up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voxhost.engines.tts.kokoro import MODEL_FILE
from voxhost.engines.tts.kokoro_durations import DURATIONS_TENSOR, SAMPLES_PER_FRAME, TIMED_MODEL_FILE


@pytest.fixture(scope="module")
def kokoro(server):
    return server.app.state.voxhost.services.tts_engines.engines["kokoro"]


def test_the_edited_graph_speaks_bit_identically_and_its_frames_are_the_wave_length(kokoro):
    import onnxruntime as ort

    models = Path(kokoro.models_dir) / "kokoro"
    plain = ort.InferenceSession(str(models / MODEL_FILE), providers=["CPUExecutionProvider"])
    timed = ort.InferenceSession(str(models / TIMED_MODEL_FILE), providers=["CPUExecutionProvider"])
    assert [o.name for o in timed.get_outputs()] == ["audio", DURATIONS_TENSOR]
    voice = kokoro.resolve_voice("bf_emma")
    tokens = [kokoro._vocab[c] for c in "ðə bˈɜʧ kənˈu" if c in kokoro._vocab]
    for speed in (1.0, 0.8):
        feed = {"tokens": np.array([[0, *tokens, 0]], np.int64),
                "style": voice.data.rows[len(tokens) - 1].reshape(1, 256),
                "speed": np.array([speed], np.float32)}
        (expected,) = plain.run(None, feed)
        audio, frames = timed.run(None, feed)
        assert np.array_equal(audio, expected)
        assert frames.size == len(tokens) + 2 and audio.size == frames.sum() * SAMPLES_PER_FRAME


def test_timed_synthesis_is_the_same_audio_with_every_word(kokoro):
    voice = kokoro.resolve_voice("am_michael")
    text = "Don't open the vault, Captain Smith-Jones."
    timed = kokoro.synthesize_timed(text, voice)
    assert np.array_equal(timed.audio, kokoro.synthesize(text, voice))
    assert [w.text for w in timed.words] == ["Don't", "open", "the", "vault", "Captain", "Smith-Jones"]
    assert all(0 <= w.start < w.end <= timed.audio.size / kokoro.sample_rate for w in timed.words)


def test_assembly_writes_the_pinned_graph_once(tmp_path):
    from voxhost.engines.assembly import sha256_of
    from voxhost.engines.tts.kokoro import assemble_kokoro
    from voxhost.engines.tts.kokoro_durations import TIMED_MODEL_SHA256, assemble_timed
    from voxhost.ops.settings import Settings

    source = tmp_path / MODEL_FILE
    source.symlink_to(assemble_kokoro(Settings().models_dir))
    built = assemble_timed(source)
    assert built.name == TIMED_MODEL_FILE and sha256_of(built) == TIMED_MODEL_SHA256
    mtime = built.stat().st_mtime_ns
    assert assemble_timed(source) == built and built.stat().st_mtime_ns == mtime  # verified, not rebuilt
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
