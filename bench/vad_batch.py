"""Silero's CPU per 32 ms window: each session alone vs all sessions in one call.

Side by side in one process, alternating: N sessions of T new windows each (a
100 ms append is 3 windows, an ingest slice 8), scored either by one call of
faster-whisper's graph per session (`StreamingSilero`, before issue 12) or by one
call of the batched graph for all of them (realtime/silero_batch.py). The input is
real eval speech. CPU time of this process (`time.process_time`), best of
`--repeats`; pin it (`taskset -c 1`) on a shared machine and read the ratio.

  PYTHONPATH=src taskset -c 1 python bench/vad_batch.py
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from faster_whisper.vad import get_vad_model

from voxhost.audio.decode import decode_audio
from voxhost.evaluation.dataset import load_manifest
from voxhost.realtime.silero_batch import batched_session
from voxhost.realtime.vad_batch import SileroStream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="1x3,8x3,32x3,128x3,8x8,32x8", help="sessions x windows, comma-separated")
    parser.add_argument("--windows", type=int, default=3000, help="windows scored per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    alone, batched = get_vad_model().session, batched_session()
    speech = np.concatenate([decode_audio(row.audio.read_bytes()) for row in load_manifest(lang="en")[:20]])
    rows = SileroStream().rows(speech)  # [count, 576]: context + window, as sessions send them
    h = np.zeros((1, 1, 128), dtype=np.float32)
    print(f"load average {os.getloadavg()[0]:.1f}\n")
    print("| sessions | windows each | alone µs/window | batched µs/window | batched / alone |\n|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        sessions, windows = (int(x) for x in shape.split("x"))
        batch = rows[: sessions * windows]
        calls = max(1, args.windows // (sessions * windows))
        feed = {"input": batch, "lengths": np.full(sessions, windows, dtype=np.int32),
                "slots": np.arange(sessions * windows).reshape(sessions, windows).T.copy(),
                "h": np.zeros((1, sessions, 128), dtype=np.float32), "c": np.zeros((1, sessions, 128), np.float32)}
        per_session = [batch[i * windows:(i + 1) * windows] for i in range(sessions)]
        best = {"alone": float("inf"), "batched": float("inf")}
        for _ in range(args.repeats):
            started = time.process_time()
            for _ in range(calls):
                for x in per_session:
                    alone.run(None, {"input": x, "h": h, "c": h})
            best["alone"] = min(best["alone"], time.process_time() - started)
            started = time.process_time()
            for _ in range(calls):
                batched.run(None, feed)
            best["batched"] = min(best["batched"], time.process_time() - started)
        us = {k: v / (calls * sessions * windows) * 1e6 for k, v in best.items()}
        print(f"| {sessions} | {windows} | {us['alone']:.0f} | {us['batched']:.0f} | "
              f"{us['batched'] / us['alone']:.2f} |")
    print(f"\nload average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
