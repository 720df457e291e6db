"""How well the consent check's speaker comparison (tts/consent.py) tells speakers apart with
the statistics voice matching measures (tts/matching.py): median pitch, spectral centroid, tilt.

Pairs of real English recordings from shared/eval: the same speaker (two clips of one
reader: should pass) and different speakers (should be refused); then the attack the check
is for: each of the 28 bundled Kokoro voices reading the consent phrase (a consent the
server's own TTS can make) against every human clip, a different speaker by construction.
Speakers whose label is not one person (FLEURS' unknown readers, the Speech Commands mix) and
the voice-quality clips (falsetto, creaky, whispered on purpose) are left out.

    PYTHONPATH=src python bench/consent_speaker.py        # table; JSON in bench/results/

Prints, per comparison rule, the threshold that passes every clean same-speaker pair and
the share of different-speaker pairs and Kokoro consents it refuses.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _machine import machine  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import track  # noqa: E402
from rich.table import Table  # noqa: E402

from voxhost.audio.decode import decode_audio  # noqa: E402
from voxhost.audio.pcm import from_pcm16, resample_pcm16, to_pcm16  # noqa: E402
from voxhost.evaluation.dataset import load_manifest  # noqa: E402
from voxhost.tts import consent, matching  # noqa: E402

UNLABELLED = ("fleurs-en-unknown", "speech-commands")
OUT = Path(__file__).parent / "results" / "consent_speaker.json"


def human_clips() -> dict[str, tuple[str, matching.VoiceStats]]:
    clips = {}
    rows = [u for u in load_manifest(lang="en")
            if u.duration >= 2 and u.category != "voice-quality" and not u.speaker.startswith(UNLABELLED)]
    for u in track(rows, description="measuring human clips"):
        try:
            clips[u.audio.name] = (u.speaker, matching.measure(decode_audio(u.audio.read_bytes())))
        except matching.SampleUnusable:
            continue
    return clips


def kokoro_consents() -> dict[str, matching.VoiceStats]:
    from voxhost.engines.tts.kokoro_voices import ENGLISH_VOICES
    from voxhost.ops.settings import Settings
    from voxhost.services import build_services

    services = build_services(Settings(tts_engines=["kokoro"], voices_dir=Path("/nonexistent")))
    services.tts_engines.load_all(warm_up=False)
    out = {}
    for vid in track(list(ENGLISH_VOICES), description="Kokoro voices reading the consent phrase"):
        voice = services.voices.resolve("tts-1-hd", vid)
        pcm = to_pcm16(voice.engine.synthesize(consent.CONSENT_PHRASE, voice.selection))
        out[vid] = matching.measure(from_pcm16(resample_pcm16(pcm, voice.engine.sample_rate, matching.RATE)))
    return out


def _semitones(a: matching.VoiceStats, b: matching.VoiceStats) -> float:
    return abs(12 * math.log2(a.f0_hz / b.f0_hz))


def _all_three(a: matching.VoiceStats, b: matching.VoiceStats) -> float:
    coords = lambda s: np.array([12 * math.log2(s.f0_hz), s.centroid_hz, s.tilt_db_per_octave])  # noqa: E731
    table = np.array([coords(s) for _, s in matching.kokoro_profiles().values()])
    return float(np.linalg.norm((coords(a) - coords(b)) / table.std(axis=0)))


RULES = {"pitch (semitones)": _semitones, "pitch, centroid, tilt (scaled distance)": _all_three}


def main() -> None:
    clips = human_clips()
    voices = kokoro_consents()
    pairs = list(itertools.combinations(clips.values(), 2))
    result = {**machine(), "human_clips": len(clips),
              "speakers": len({s for s, _ in clips.values()}), "kokoro_voices": len(voices),
              "threshold_in_use": consent.MAX_SPEAKER_PITCH_SEMITONES, "rules": {}}
    table = Table(title=f"consent vs sample, {len(clips)} human clips, {result['speakers']} speakers, "
                        f"{len(voices)} Kokoro consents")
    for column in ("rule", "threshold (all same-speaker pairs pass)", "different speakers refused",
                   "Kokoro consent + human sample refused"):
        table.add_column(column, justify="right")
    for name, rule in RULES.items():
        same = np.array([rule(a, b) for (s1, a), (s2, b) in pairs if s1 == s2])
        different = np.array([rule(a, b) for (s1, a), (s2, b) in pairs if s1 != s2])
        attack = np.array([rule(v, h) for v in voices.values() for _, h in clips.values()])
        threshold = float(same.max())
        row = {"same_pairs": int(same.size), "different_pairs": int(different.size), "attack_pairs": int(attack.size),
               "threshold_all_same_pass": threshold, "same_p95": float(np.percentile(same, 95)),
               "different_refused": float((different > threshold).mean()),
               "attack_refused": float((attack > threshold).mean())}
        if rule is _semitones:
            used = consent.MAX_SPEAKER_PITCH_SEMITONES
            row |= {"at_threshold_in_use": {"same_passed": float((same <= used).mean()),
                                            "different_refused": float((different > used).mean()),
                                            "attack_refused": float((attack > used).mean())}}
        result["rules"][name] = row
        table.add_row(name, f"{threshold:.2f}", f"{row['different_refused']:.0%}", f"{row['attack_refused']:.0%}")
    Console(width=120).print(table)
    used = result["rules"]["pitch (semitones)"]["at_threshold_in_use"]
    print(f"in use: pitch within {consent.MAX_SPEAKER_PITCH_SEMITONES:g} semitones: same speaker passes "
          f"{used['same_passed']:.0%}, different speakers refused {used['different_refused']:.0%}, "
          f"Kokoro consents refused {used['attack_refused']:.0%}")
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT}")



if __name__ == "__main__":
    main()
