"""REST short clips: Whisper's 30 s encoder window vs shorter windows, side by side.

Each clip is decoded every way in turn (so machine load hits all alike) with the
REST defaults (options from settings, as `stt/service.py` builds them). Reports,
per window policy, WER (pooled and per category), how many clips' text changed,
the total decode time, the audio-seconds decoded per second (one decode at a time: with one CTranslate2
worker that is also the server's throughput ceiling at any concurrency) and its
ratio to the 30 s window, and the median of each clip's time ratio (steadier
on a loaded machine). `--json` keeps every clip's text and time for analysis.

  python bench/rest_window.py --model whisper-base            # all English clips < 6 s
  python bench/rest_window.py --model whisper-base --windows 30,15,20,25 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace

import numpy as np

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.registry import SttRegistry
from voxhost.evaluation.dataset import load_manifest
from voxhost.evaluation.wer import wer
from voxhost.ops.settings import Settings
from voxhost.stt.service import options_from


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--clips", type=int, default=0, help="first N short clips (0: all)")
    parser.add_argument("--max-seconds", type=float, default=6.0)
    parser.add_argument("--windows", default="30,15,20,25", help="encoder windows in seconds; the first is the reference")
    parser.add_argument("--json", help="write per-clip texts and times here")
    args = parser.parse_args()

    settings = Settings(stt_models=[args.model])
    engine = SttRegistry(settings).load(args.model)
    rows = [r for r in load_manifest(lang="en") if r.duration < args.max_seconds]
    rows = rows[: args.clips] if args.clips else rows
    base = options_from(settings, language="en", timestamps_needed=False)  # REST json
    windows = [int(w) for w in args.windows.split(",")]
    hyps: dict[int, list[str]] = {w: [] for w in windows}
    times: dict[int, list[float]] = {w: [] for w in windows}
    loads = [os.getloadavg()[0]]
    for row in rows:
        audio = decode_audio(row.audio.read_bytes())
        for w in windows:
            options = base if w >= 30 else replace(base, chunk_length=w)
            started = time.perf_counter()
            hyps[w].append(engine.transcribe(audio, options).text)
            times[w].append(time.perf_counter() - started)
        loads.append(os.getloadavg()[0])
    refs = [r.text for r in rows]
    audio_s = sum(r.duration for r in rows)
    ref_time = sum(times[windows[0]])
    print(f"\n{args.model}, {len(rows)} English clips < {args.max_seconds:g} s ({audio_s:.0f} s of audio), "
          f"load avg {min(loads):.1f}-{max(loads):.1f}\n")
    categories = sorted({r.category for r in rows})
    print("| window | WER | " + " | ".join(categories)
          + " | clips changed | decode s | audio-s/s | speed | median clip time vs first |")
    print("|---|---|" + "---|" * len(categories) + "---|---|---|---|---|")
    for w in windows:
        per_cat = []
        for cat in categories:
            pairs = [(r.text, h) for r, h in zip(rows, hyps[w]) if r.category == cat]
            per_cat.append(f"{100 * wer([p[0] for p in pairs], [p[1] for p in pairs]):.1f}%")
        changed = sum(a.strip() != b.strip() for a, b in zip(hyps[w], hyps[windows[0]]))
        total = sum(times[w])
        print(f"| {w} s | {100 * wer(refs, hyps[w]):.2f}% | " + " | ".join(per_cat)
              + f" | {changed} | {total:.1f} | {audio_s / total:.2f} | {ref_time / total:.2f}x"
              # Per clip, the same moment's load hits both: steadier than the totals on a busy box.
              + f" | {np.median(np.array(times[w]) / np.array(times[windows[0]])):.2f}x |")
    if args.json:
        clips = [{"audio": r.audio.name, "category": r.category, "duration": r.duration, "ref": r.text,
                  **{f"hyp_{w}": hyps[w][i] for w in windows}, **{f"s_{w}": times[w][i] for w in windows}}
                 for i, r in enumerate(rows)]
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "loadavg": [min(loads), max(loads)], "clips": clips}, f, indent=1)


if __name__ == "__main__":
    main()
