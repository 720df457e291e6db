"""Shared by the batching benchmarks: one `transcribe_batch` of N clips vs N
`transcribe` calls, alternated round by round so drift hits both alike."""

from __future__ import annotations

import statistics
import time

import numpy as np


def compare(engine, clips: list[np.ndarray], sizes: list[int], rounds: int, options) -> list[dict]:
    """One row per N: median seconds each way, speedup, and how many texts matched."""
    engine.transcribe_batch(clips[:4], options)  # warm-up (on a GPU, cuBLAS picks its kernels)
    rows = []
    for n in sizes:
        work = [clips[i % len(clips)] for i in range(n)]
        seq, bat = [], []
        for r in range(rounds):
            for kind in (("s", "b") if r % 2 == 0 else ("b", "s")):
                t = time.perf_counter()
                if kind == "s":
                    texts_s = [engine.transcribe(a, options).text for a in work]
                    seq.append(time.perf_counter() - t)
                else:
                    texts_b = [x.text for x in engine.transcribe_batch(work, options)]
                    bat.append(time.perf_counter() - t)
        row = {
            "batch": n,
            "sequential_s": statistics.median(seq),
            "batched_s": statistics.median(bat),
            "same_text": sum(a == b for a, b in zip(texts_s, texts_b)),
        }
        row["speedup"] = row["sequential_s"] / row["batched_s"]
        row["clips_per_s_batched"] = n / row["batched_s"]
        rows.append(row)
        print(f"  N={n:2d}  sequential {row['sequential_s']:.3f}s  batched {row['batched_s']:.3f}s  "
              f"speedup {row['speedup']:.2f}x  same text {row['same_text']}/{n}", flush=True)
    return rows
