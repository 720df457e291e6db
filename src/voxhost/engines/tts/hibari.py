"""hibari (Apache-2.0): the default engine, 7.9 MB int8 ONNX, 24 kHz, voice "heart".

hibari's other voices are downloaded from a model hub on first use; no hub is
reachable from our deployments, so only the bundled "heart" is exposed.
"""

from __future__ import annotations

import numpy as np

from voxhost.engines.threads import tts_threads
from voxhost.engines.tts.base import EngineUnavailable, TtsEngine, Voice, VoiceSelection, fingerprint
from voxhost.engines.tts.g2p import shared_g2p

BUNDLED_VOICE = "heart"


def text_seed(text: str, speed: float) -> int:
    # hibari adds shaped noise; seeding per text makes a line sound the same every time.
    return int(fingerprint(text, speed)[:8], 16)


class HibariEngine(TtsEngine):
    name = "hibari"
    sample_rate = 24_000
    license = "Apache-2.0"
    description = "hibari 0.2 (Kokoro-distilled, 7.9 MB ONNX), American English; PyPI hibari-tts"

    def load(self) -> None:
        try:
            import hibari
            from hibari import Hibari
            from hibari.voices import VOICES
        except ImportError as exc:  # pragma: no cover - a core dependency
            raise EngineUnavailable("hibari-tts is not installed (pip install hibari-tts).") from exc
        self._version = f"hibari-{hibari.__version__}:{VOICES[BUNDLED_VOICE]['sha256'][:16]}"
        # The lexicon and OOV net now, not on the first request; one copy shared with Kokoro.
        self.g2p = shared_g2p(british=VOICES[BUNDLED_VOICE]["british"])
        pools = tts_threads(self.name, self.device, self.threads)
        self._tts = Hibari(voice=BUNDLED_VOICE, threads=pools.intra, g2p=self.g2p)
        if pools.intra > 1:  # hibari's own session would spin a pool: sized as every other TTS session
            import onnxruntime as ort

            from voxhost.engines.onnx_device import CPU, session_options

            self._tts.sess = ort.InferenceSession(self._tts.model_path, session_options(pools, cpu_mem_arena=True),
                                                  providers=[CPU])
        self.loaded = True

    @property
    def model_version(self) -> str:
        return self._version

    def voices(self) -> list[Voice]:
        return [Voice(BUNDLED_VOICE, self.name, "en-US", "female", self.sample_rate,
                      "American English, female (Kokoro af_heart style)", "American")]

    def synthesize(self, text: str, voice: VoiceSelection, speed: float = 1.0) -> np.ndarray:
        rng = np.random.default_rng(text_seed(text, speed))
        parts = [self._tts.from_ids(self._tts.ids(ps), speed, rng) for ps in self._tts.phonemize(text)]
        parts = [p for p in parts if p.size]
        return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)
