"""WhisperEngine decodes a live turn from the features the turn carries, with the same text."""

from __future__ import annotations

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.engines.stt.features import IncrementalMel, with_features


class CountingMel(IncrementalMel):
    def __init__(self, n_mels: int):
        super().__init__(n_mels)
        self.calls = 0

    def features(self, audio):
        self.calls += 1
        return super().features(audio)


def test_carried_features_give_the_same_text_sequential_and_batched(server, eval_audio):
    engine = server.app.state.voxhost.stt.get("whisper-base")
    audio = decode_audio((eval_audio / "cathy_arctic_a0001.wav").read_bytes())
    options = TranscriptionOptions(language="en", beam_size=1, without_timestamps=True, chunk_length=10,
                                   vad_filter=False)
    plain = engine.transcribe(audio, options).text
    mel = CountingMel(engine.n_mels)
    mel.features(audio[: audio.size // 2])  # a partial earlier in the turn
    assert engine.transcribe(with_features(audio, mel), options).text == plain
    assert engine.transcribe_batch([with_features(audio, mel)], [options])[0].text == plain
    assert mel.calls == 3  # both paths took the carried features
