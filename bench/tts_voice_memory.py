"""Memory the cast adds: Kokoro's 28 English voices as loaded by the engine, plus
50 designed voices saved, loaded and resolved (as at server start), measured as
the growth of the process's RSS around each step.

    PYTHONPATH=src python bench/tts_voice_memory.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voxhost.engines.tts.kokoro_voices import load_english_voices  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.services import build_services  # noqa: E402
from voxhost.tts.designs import EFFECTS, VoiceDesign  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    settings = Settings(tts_engines=["kokoro"], voices_dir=Path(tempfile.mkdtemp()))
    start = rss_mb()
    voices = load_english_voices(settings.models_dir)
    english = rss_mb() - start
    services = build_services(settings)
    services.tts_engines.load_all(warm_up=False)
    ids = sorted(voices)
    for i in range(50):
        services.voices.create_design(VoiceDesign(
            name=f"npc_{i:02d}", base=f"{ids[i % 28]}(2)+{ids[(i * 7 + 3) % 28]}(1)", pitch_semitones=(i % 9) - 4,
            formant_shift=((i % 5) - 2) / 20, effect=EFFECTS[i % len(EFFECTS)]))
    before = rss_mb()
    fresh = build_services(settings)  # a second server: loads the 50 from the directory
    fresh.tts_engines.engines = services.tts_engines.engines
    fresh.voices.warm_designs()
    designs = rss_mb() - before
    print(f"28 English voices: {english:.1f} MB RSS ({sum(v.nbytes for v in voices.values()) / 1e6:.1f} MB of "
          f"arrays); 50 designed voices loaded and resolved: {designs:.1f} MB; total {english + designs:.1f} MB")


if __name__ == "__main__":
    main()
