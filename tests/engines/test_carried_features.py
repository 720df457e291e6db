"""WhisperEngine decodes a live turn from the features the turn carries, with the same text."""

from __future__ import annotations

import numpy as np

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.engines.stt.features import IncrementalMel, after_context, tail, with_features


class CountingMel(IncrementalMel):
    def __init__(self, n_mels: int, context=None):
        super().__init__(n_mels, context)
        self.calls = 0

    def features(self, audio, offset=0, heard=None):
        self.calls += 1
        return super().features(audio, offset, heard)


def test_carried_features_give_the_same_text_sequential_and_batched(server, eval_audio):
    engine = server.app.state.voxhost.services.stt_engines.get("whisper-base")
    audio = decode_audio((eval_audio / "cathy_arctic_a0001.wav").read_bytes())
    options = TranscriptionOptions(language="en", beam_size=1, without_timestamps=True, chunk_length=10,
                                   vad_filter=False)
    plain = engine.transcribe(audio, options).text
    mel = CountingMel(engine.n_mels)
    mel.features(audio[: audio.size // 2])  # a partial earlier in the turn
    assert engine.transcribe(with_features(audio, mel), options).text == plain
    assert engine.transcribe_batch([with_features(audio, mel)], [options])[0].text == plain
    assert mel.calls == 3  # both paths took the carried features


def test_final_after_context_takes_carried_features_with_the_same_text(server, eval_audio):
    """A live final decoded after the previous turn's tail (word timestamps, as the session
    asks) uses the features carried across the join, and reads the same as from plain audio."""
    engine = server.app.state.voxhost.services.stt_engines.get("whisper-base")
    previous = decode_audio((eval_audio / "lj_LJ001-0004.wav").read_bytes())
    audio = decode_audio((eval_audio / "cathy_arctic_a0001.wav").read_bytes())
    context = tail(with_features(previous, IncrementalMel(engine.n_mels)), 64_000)
    mel = CountingMel(engine.n_mels, context)
    assert mel.context is context
    mel.features(audio[: audio.size // 2], mel.turn_offset)  # a partial of the turn alone
    joined = after_context(context, with_features(audio, mel, mel.turn_offset))
    options = TranscriptionOptions(language="en", beam_size=1, chunk_length=15, vad_filter=False,
                                   word_timestamps=True)
    plain = engine.transcribe(np.asarray(joined).copy(), options).text
    assert engine.transcribe(joined, options).text == plain
    assert mel.calls == 2  # the engine took the carried features
