"""The cast, measured: for OpenAI's 13 voice names on one model, the voice each
maps to, its median pitch against its gender, and how far apart the voices
are (cosine similarity of spectral statistics: per-voice mean and spread of
the log-mel spectrum, centred on the cast's mean, so 1.0 is identical and
lower is more distinct; no speaker-verification model is installable
offline here). Then the cost of shaping a designed voice, per effect preset,
as a ratio of the synthesis time of the same line, side by side in one run.

    PYTHONPATH=src python bench/tts_voices.py [--model tts-1-hd] [--lines 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voxhost.engines.tts.registry import OPENAI_VOICE_GENDER, OPENAI_VOICES, TtsRegistry  # noqa: E402
from voxhost.evaluation.dataset import tts_sentences  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.tts.designs import EFFECTS, VoiceDesign  # noqa: E402
from voxhost.tts.shaping import Shaper  # noqa: E402


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
    args = parser.parse_args()
    registry = TtsRegistry(Settings(tts_engines=["hibari", "kokoro"], voices_dir=Path("/nonexistent")))
    registry.load_all(warm_up=True)
    text = " ".join(tts_sentences()[:args.lines])
    print(f"load average {os.getloadavg()[0]:.2f}; {args.lines} sentences; model {args.model}\n")
    print("| OpenAI voice | gender | voice | median f0 (Hz) | agrees |\n|---|---|---|---|---|")
    stats = {}
    for name in OPENAI_VOICES:
        engine, selection = registry.resolve(args.model, name)
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

    engine, selection = registry.resolve("tts-1-hd", "am_onyx")
    start = time.perf_counter()
    pcm = engine.synthesize(text, selection)
    synth = time.perf_counter() - start
    print(f"\nShaping cost against synthesis ({synth:.2f} s for {pcm.size / engine.sample_rate:.1f} s of audio):\n")
    print("| design | shaping (s) | ratio to synthesis |\n|---|---|---|")
    for label, design in [("pitch -3, formant -0.1", dict(pitch_semitones=-3, formant_shift=-0.1)),
                          *[(effect, dict(effect=effect)) for effect in EFFECTS]]:
        shaper = Shaper(VoiceDesign(name="bench", base="am_onyx", **design), engine.sample_rate)
        start = time.perf_counter()
        shaper.effect(shaper.voice(pcm))
        shaper.flush()
        took = time.perf_counter() - start
        print(f"| {label} | {took:.3f} | {took / synth:.1%} |")


if __name__ == "__main__":
    main()
