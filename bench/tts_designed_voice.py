"""A designed voice's first byte and phrase-cache hit against its plain base, side by side
in one run over HTTP (one real `voxhost serve`, Kokoro only).

  first byte  each trial sends the same new line with the plain base (am_onyx), a
              pitch/formant design (-3 semitones, formants -10%: the WORLD vocoder path)
              and an effect-only design (cave: filters and reverb), in rotating order so
              all three see the same load; medians, and shaped minus plain in ms
  cache hit   the same line again, many times, for the plain base and each design:
              the whole response (the hit answers the whole file at once), median ms

    PYTHONPATH=src python bench/tts_designed_voice.py [--trials 8] [--hits 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tts_latency import NAMES, http_first_byte, start_server  # bench/ is on sys.path as a script

BASE = "am_onyx"
DESIGNS = {
    "pitch -3, formant -0.1": {"name": "bench_pitch", "base": BASE, "pitch_semitones": -3, "formant_shift": -0.1},
    "cave": {"name": "bench_cave", "base": BASE, "effect": "cave"},
}
LINE = "Halt, {}! Nobody passes the gate after sunset, not even the king's own messenger."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--hits", type=int, default=30)
    args = parser.parse_args()
    voices = {"plain " + BASE: BASE, **{label: d["name"] for label, d in DESIGNS.items()}}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as cache_dir, tempfile.TemporaryDirectory() as voices_dir:
        proc, url = start_server(Path(cache_dir), tts_engines="kokoro", stt_models="whisper-tiny.en",
                                 voices_dir=voices_dir)
        try:
            with httpx.Client(timeout=120) as client:
                for design in DESIGNS.values():
                    client.post(url + "/v1/audio/voices", json=design).raise_for_status()
                for voice in voices.values():  # warm each path once
                    http_first_byte(client, url, {"model": "kokoro", "voice": voice, "input": "Warm up."})
                firsts: dict[str, list[float]] = {label: [] for label in voices}
                labels = list(voices)
                for i in range(args.trials):
                    text = LINE.format(NAMES[i % len(NAMES)]) + f" Trial {i}."
                    for label in labels[i % 3:] + labels[:i % 3]:
                        body = {"model": "kokoro", "voice": voices[label], "input": text, "response_format": "pcm"}
                        first, _, cache, _ = http_first_byte(client, url, body)
                        assert cache == "miss"
                        firsts[label].append(first)
                load_mid = os.getloadavg()[0]
                hits: dict[str, list[float]] = {label: [] for label in voices}
                for label, voice in voices.items():
                    body = {"model": "kokoro", "voice": voice, "input": LINE.format("Aldric"), "response_format": "pcm"}
                    http_first_byte(client, url, body)  # fills the cache
                    for _ in range(args.hits):
                        start = time.perf_counter()
                        response = client.post(url + "/v1/audio/speech", json=body)
                        hits[label].append(time.perf_counter() - start)
                        assert response.headers["x-cache"] == "hit" and response.content
        finally:
            proc.terminate()
            proc.wait(30)
    plain = statistics.median(firsts[labels[0]])
    print(f"\n{os.cpu_count()} CPUs; load average {load_before:.1f} before, {load_mid:.1f} after the first-byte part, "
          f"{os.getloadavg()[0]:.1f} at the end; {args.trials} new lines per voice, {args.hits} hits\n")
    print("| voice | first byte ms (median) | minus plain ms | ratio to plain | cache hit ms (median) |\n"
          "|---|---|---|---|---|")
    for label in labels:
        first = statistics.median(firsts[label])
        print(f"| {label} | {first * 1000:.0f} | {(first - plain) * 1000:+.0f} | {first / plain:.2f} | "
              f"{statistics.median(hits[label]) * 1000:.1f} |")


if __name__ == "__main__":
    main()
