"""REST short clips: Whisper's 30 s encoder window vs a window sized to the clip
(VOXHOST_STT_REST_SHORT_WINDOW, as live finals: at least 15 s), side by side.

Each clip is decoded both ways in turn (so machine load hits both alike) with the
REST defaults (options from settings, as `stt/service.py` builds them); reports WER
of each and the median decode-time ratio. Throughput at 1/4/8 concurrent requests
through the server is the issue's goal and needs a quiet machine; this is the WER check.

  python bench/rest_window.py --model whisper-base --clips 24
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.registry import SttRegistry
from voxhost.evaluation.dataset import load_manifest
from voxhost.evaluation.wer import wer
from voxhost.ops.settings import Settings
from voxhost.realtime.decoding import final_window_seconds
from voxhost.stt.service import options_from


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--max-seconds", type=float, default=6.0)
    args = parser.parse_args()

    settings = Settings(stt_models=[args.model])
    engine = SttRegistry(settings).load(args.model)
    rows = [r for r in load_manifest(lang="en") if r.duration < args.max_seconds][: args.clips]
    base = options_from(settings, language="en", timestamps_needed=False)  # REST json
    configs = {
        "30 s window": lambda d: base,
        "clip-sized window": lambda d: replace(base, chunk_length=final_window_seconds(d)),
        # As live finals decode: no timestamp tokens as well (REST json/text shows none).
        "clip-sized window, text-only": lambda d: replace(base, chunk_length=final_window_seconds(d),
                                                          without_timestamps=True),
    }
    hyps = {k: [] for k in configs}
    times = {k: [] for k in configs}
    for row in rows:
        audio = decode_audio(row.audio.read_bytes())
        for label, make in configs.items():
            options = make(row.duration)
            started = time.perf_counter()
            hyps[label].append(engine.transcribe(audio, options).text)
            times[label].append(time.perf_counter() - started)
    refs = [r.text for r in rows]
    reference = np.median(times["30 s window"])
    print(f"\n{args.model}, {len(rows)} English clips < {args.max_seconds:g} s "
          f"({sum(r.duration for r in rows):.0f} s of audio), load avg {os.getloadavg()[0]:.1f}\n")
    print("| REST decode | WER | median decode s | vs 30 s window |\n|---|---|---|---|")
    for label in hyps:
        median = float(np.median(times[label]))
        print(f"| {label} | {100 * wer(refs, hyps[label]):.2f}% | {median:.2f} | {median / reference:.2f}x |")


if __name__ == "__main__":
    main()
