"""Which bundled voice the custom-voice flow (multipart POST /v1/audio/voices) picks for real
speakers, and whether its gender agrees with the speaker's. The speakers are the English
ones in shared/eval whose gender is stated (manifest notes, or the corpus: LJ Speech's
reader is a woman, JFK a man); every clip of each is matched on its own.

    PYTHONPATH=src python bench/tts_voice_match.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from voxhost.audio.decode import decode_audio  # noqa: E402
from voxhost.evaluation.dataset import eval_dir  # noqa: E402
from voxhost.tts import matching  # noqa: E402

SPEAKERS = {"cmu-arctic-aew": "male", "cmu-arctic-axb": "female", "rhasspy-cathy": "female",
            "ljspeech-linda-johnson": "female", "john-f-kennedy": "male"}


def main() -> None:
    root = eval_dir()
    profiles = matching.kokoro_profiles()
    rows: dict[str, list] = {}
    for line in (root / "manifest.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["speaker"] not in SPEAKERS:
            continue
        audio = decode_audio((root / "audio" / item["audio"]).read_bytes())
        try:
            match = matching.nearest(matching.measure(audio), profiles)
        except matching.SampleUnusable:
            continue
        rows.setdefault(item["speaker"], []).append(match)
    print("| speaker | gender | clips | median F0 of clips (Hz) | gender agrees | bases chosen (count) | shift (st) |\n"
          "|---|---|---|---|---|---|---|")
    for speaker, matches in rows.items():
        gender = SPEAKERS[speaker]
        agree = sum(m.gender == gender for m in matches)
        f0s = sorted(m.sample.f0_hz for m in matches)
        bases = ", ".join(f"{b} ({n})" for b, n in Counter(m.base for m in matches).most_common())
        shifts = sorted(m.pitch_semitones for m in matches)
        print(f"| {speaker} | {gender} | {len(matches)} | {f0s[len(f0s) // 2]:.0f} | {agree}/{len(matches)} | "
              f"{bases} | {shifts[0]:+.1f} to {shifts[-1]:+.1f} |")


if __name__ == "__main__":
    main()
