"""Engine-level: one `transcribe_batch` of N short clips vs N `transcribe` calls.

No HTTP, no scheduler: what cross-request batching buys the model itself on
this machine. Alternates the two (so background load hits both) and reports
the median of rounds.

    PYTHONPATH=src python bench/batch_decode.py --model whisper-tiny.en --sizes 1,4,8
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from voxhost.audio.decode import decode_audio
from voxhost.engines.stt.base import TranscriptionOptions
from voxhost.engines.stt.registry import SttRegistry
from voxhost.evaluation.dataset import load_manifest
from voxhost.ops.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--sizes", default="1,4,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/batch_decode.json"))
    args = parser.parse_args()
    engine = SttRegistry(Settings(stt_models=[args.model])).load(args.model)
    clips = [decode_audio(u.audio.read_bytes()) for u in load_manifest(lang="en") if 1.0 <= u.duration <= 5.0]
    options = TranscriptionOptions(language="en")
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        work = clips[:n]
        seq, bat = [], []
        for r in range(args.rounds):
            order = ("s", "b") if r % 2 == 0 else ("b", "s")
            for kind in order:
                t = time.perf_counter()
                if kind == "s":
                    texts_s = [engine.transcribe(a, options).text for a in work]
                    seq.append(time.perf_counter() - t)
                else:
                    texts_b = [x.text for x in engine.transcribe_batch(work, options)]
                    bat.append(time.perf_counter() - t)
        assert texts_s == texts_b
        row = {"batch": n, "sequential_s": float(np.median(seq)), "batched_s": float(np.median(bat))}
        row["speedup"] = row["sequential_s"] / row["batched_s"]
        rows.append(row)
        print(f"N={n:2d}  {n} x transcribe {row['sequential_s']:.2f}s  transcribe_batch {row['batched_s']:.2f}s  "
              f"speedup {row['speedup']:.2f}x  (same text: yes)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "device": engine.device, "rows": rows,
                                    "loadavg": __import__("os").getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
