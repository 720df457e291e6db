"""onnxruntime's CPU memory arena on or off for the TTS engines that make their own session
(Kokoro, piper): resident memory after the same syntheses, and synthesis time side by side.

    PYTHONPATH=src python bench/onnx_arena.py [--engines kokoro,piper] [--rounds 3]

Memory: one fresh process per engine and setting (the allocator set up and trimmed as the
server does), RSS after load and warm-up and after synthesising the sentences. Time: both
sessions in one process, their syntheses interleaved sentence by sentence, so both see the
same machine load; the ratio off/on is what to read. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from voxhost.evaluation.dataset import eval_dir


def sentences() -> list[str]:
    lines = [line.strip() for line in (eval_dir() / "tts_sentences.txt").read_text().splitlines() if line.strip()]
    return [lines[0], " ".join(lines[1:5]), lines[5]]  # short, a four-sentence paragraph, short again


def rss_mib() -> float:
    from voxhost.ops.memory import trim

    gc.collect()
    trim()
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmRSS"].split()[0]) / 1024


def engine(name: str, arena: bool):
    from voxhost.engines.tts.registry import engine_factories
    from voxhost.ops.settings import Settings

    settings = Settings()
    e = engine_factories()[name](threads=max(1, settings.tts_threads), models_dir=settings.models_dir)
    e.device = "cpu"
    e.cpu_mem_arena = arena
    e.load()
    e.warm_up()
    return e


def child(name: str, arena: bool) -> None:
    from voxhost.ops.memory import configure_allocator

    configure_allocator()
    before = rss_mib()
    e = engine(name, arena)
    loaded = rss_mib()
    voice = e.resolve_voice(e.default_voice)
    for text in sentences():
        e.synthesize(text, voice)
    print(json.dumps({"before": before, "loaded": loaded, "after": rss_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="kokoro,piper")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the sentences for the timing")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1] == "on")

    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| engine | arena | RSS loaded MiB | RSS after syntheses MiB | growth MiB | median synthesis s | time off/on |")
    print("|---|---|---|---|---|---|---|")
    for name in args.engines.split(","):
        memory = {}
        for setting in ("on", "off"):
            out = subprocess.run([sys.executable, __file__, "--child", name, setting], capture_output=True,
                                 text=True, check=True).stdout
            memory[setting] = json.loads(out.strip().splitlines()[-1])
        pair = {"on": engine(name, True), "off": engine(name, False)}
        times = {"on": [], "off": []}
        for _ in range(args.rounds):
            for text in sentences():
                for setting, e in pair.items():
                    started = time.perf_counter()
                    e.synthesize(text, e.resolve_voice(e.default_voice))
                    times[setting].append(time.perf_counter() - started)
        ratio = statistics.median(off / on for off, on in zip(times["off"], times["on"]))
        for setting in ("on", "off"):
            m = memory[setting]
            print(f"| {name} | {setting} | {m['loaded']:.0f} | {m['after']:.0f} | {m['after'] - m['loaded']:+.0f} | "
                  f"{statistics.median(times[setting]):.2f} | {ratio:.2f} |")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
