"""The cast, measured: for OpenAI's 13 voice names on one model, the voice each
maps to, its median pitch against its gender, and how far apart the voices
are (cosine similarity of spectral statistics: per-voice mean and spread of
the log-mel spectrum, centred on the cast's mean, so 1.0 is identical and
lower is more distinct; no speaker-verification model is installable
offline here). Then the cost of shaping a designed voice, per effect preset,
as a ratio of the synthesis time of the same line, side by side in one run.

    PYTHONPATH=src python bench/tts_voices.py [--model tts-1-hd] [--lines 3] [--shaping-only]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voxhost.evaluation.dataset import tts_sentences  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.services import build_services  # noqa: E402
from voxhost.tts import shaping  # noqa: E402
from voxhost.tts.designs import EFFECTS, VoiceDesign  # noqa: E402
from voxhost.tts.shaping import Shaper  # noqa: E402
from voxhost.tts.voices import OPENAI_VOICE_GENDER, OPENAI_VOICES, VoiceCatalog  # noqa: E402


def median_f0(pcm: np.ndarray, rate: int) -> float:
    import pyworld

    f0, _ = pyworld.harvest(pcm.astype(np.float64), rate, f0_floor=60.0, f0_ceil=500.0, frame_period=10.0)
    return float(np.median(f0[f0 > 0]))


def log_mel_stats(pcm: np.ndarray, rate: int, bands: int = 40) -> np.ndarray:
    from scipy.signal import stft

    freqs, _, spec = stft(pcm, rate, nperseg=1024, noverlap=768)
    power = np.abs(spec) ** 2
    mel = 2595 * np.log10(1 + freqs / 700)
    edges = np.linspace(mel[1], mel[-1], bands + 2)
    bank = np.maximum(0, 1 - np.abs(mel[None, :] - edges[1:-1, None]) / (edges[1] - edges[0]))
    logmel = np.log(bank @ power + 1e-8)
    loud = logmel.sum(axis=0) > np.percentile(logmel.sum(axis=0), 30)  # speech frames, not pauses
    frames = logmel[:, loud]
    return np.concatenate([frames.mean(axis=1), frames.std(axis=1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tts-1-hd")
    parser.add_argument("--lines", type=int, default=3)
    parser.add_argument("--shaping-only", action="store_true", help="skip the cast; only the shaping cost")
    args = parser.parse_args()
    services = build_services(Settings(tts_engines=["hibari", "kokoro"], voices_dir=Path("/nonexistent")))
    services.tts_engines.load_all(warm_up=True)
    registry = services.voices
    text = " ".join(tts_sentences()[:args.lines])
    if not args.shaping_only:
        cast(registry, args.model, text)
    shaping_cost(registry, text)


def cast(registry: VoiceCatalog, model: str, text: str) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}; {len(text.split())} words; model {model}\n")
    print("| OpenAI voice | gender | voice | median f0 (Hz) | agrees |\n|---|---|---|---|---|")
    stats = {}
    for name in OPENAI_VOICES:
        voice = registry.resolve(model, name)
        engine, selection = voice.engine, voice.selection
        pcm = engine.synthesize(text, selection)
        f0 = median_f0(pcm, engine.sample_rate)
        gender = OPENAI_VOICE_GENDER[name]
        agrees = (f0 < 130) == (gender == "male")
        print(f"| {name} | {gender} | {engine.name}:{selection.definition} | {f0:.0f} | {'yes' if agrees else 'NO'} |")
        stats[name] = log_mel_stats(pcm, engine.sample_rate)
    matrix = np.array(list(stats.values()))
    matrix -= matrix.mean(axis=0)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    sim = unit @ unit.T
    print("\nPairwise similarity (cosine, centred log-mel statistics):\n")
    print("| | " + " | ".join(OPENAI_VOICES) + " |\n|---|" + "---|" * len(OPENAI_VOICES))
    for i, name in enumerate(OPENAI_VOICES):
        print(f"| {name} | " + " | ".join(f"{sim[i, j]:.2f}" for j in range(len(OPENAI_VOICES))) + " |")
    off = sim[~np.eye(len(sim), dtype=bool)]
    print(f"\nmost similar pair: {off.max():.2f}; median pair: {np.median(off):.2f}")


def shaping_cost(registry: VoiceCatalog, text: str, repeats: int = 3) -> None:
    """Synthesis and every shaping of its output, interleaved `repeats` times (medians), so a load
    change during the run hits both sides; the pitch/formant design also with the WORLD analysis as
    it was before DIO_SPEED and APERIODICITY_EVERY (both 1), for the speed-up as a ratio."""
    voice = registry.resolve("tts-1-hd", "am_onyx")
    engine, selection = voice.engine, voice.selection
    designs = [("pitch -3, formant -0.1", dict(pitch_semitones=-3, formant_shift=-0.1), (3, 2)),
               ("pitch -3, formant -0.1, before (DIO speed 1, D4C every frame)",
                dict(pitch_semitones=-3, formant_shift=-0.1), (1, 1)),
               *[(effect, dict(effect=effect), (3, 2)) for effect in EFFECTS]]
    synth_times, took = [], {label: [] for label, _, _ in designs}
    for _ in range(repeats):
        start = time.perf_counter()
        pcm = engine.synthesize(text, selection)
        synth_times.append(time.perf_counter() - start)
        for label, design, (speed, every) in designs:
            shaping.DIO_SPEED, shaping.APERIODICITY_EVERY = speed, every
            shaper = Shaper(VoiceDesign(name="bench", base="am_onyx", **design), engine.sample_rate)
            start = time.perf_counter()
            shaper.effect(shaper.voice(pcm))
            shaper.flush()
            took[label].append(time.perf_counter() - start)
    shaping.DIO_SPEED, shaping.APERIODICITY_EVERY = designs[0][2]
    synth = float(np.median(synth_times))
    print(f"\nload average {os.getloadavg()[0]:.2f}. Shaping cost against synthesis (median of {repeats}, "
          f"{synth:.2f} s for {pcm.size / engine.sample_rate:.1f} s of audio):\n")
    print("| design | shaping (s) | ratio to synthesis |\n|---|---|---|")
    for label, _, _ in designs:
        median = float(np.median(took[label]))
        print(f"| {label} | {median:.3f} | {median / synth:.1%} |")


if __name__ == "__main__":
    main()
