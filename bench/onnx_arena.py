"""onnxruntime's CPU memory arena for the TTS engines that make their own session (Kokoro,
piper): off, on (onnxruntime's default: kept for the session's life), and on but shrunk after
every run (the server's default: onnx_device.ShrinkingSession). Resident memory after the same
syntheses, and synthesis time side by side.

    PYTHONPATH=src python bench/onnx_arena.py [--engines kokoro,piper] [--rounds 3] [--threads 1]

Memory: one fresh process per engine and setting (the allocator set up and trimmed as the
server does), RSS after load and warm-up and after synthesising the sentences. Time: the
sessions in one process, their syntheses interleaved sentence by sentence, so all see the
same machine load; the ratios to `off` are what to read (wall time, and CPU time, which a
loaded machine disturbs less: on one thread it is the synthesis's own work). Figures:
docs/benchmarks.md. Writes bench/results/onnx_arena.json.
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


VARIANTS = {"off": (False, False), "on": (True, False), "on, shrunk per run": (True, True)}


def engine(name: str, variant: str, threads: int):
    from voxhost.engines.tts.registry import engine_factories
    from voxhost.ops.settings import Settings

    settings = Settings()
    e = engine_factories()[name](threads=threads, models_dir=settings.models_dir)
    e.device = "cpu"
    e.cpu_mem_arena, e.arena_shrinkage = VARIANTS[variant]
    e.load()
    e.warm_up()
    return e


def child(name: str, variant: str, threads: int) -> None:
    from voxhost.ops.memory import configure_allocator

    configure_allocator()
    before = rss_mib()
    e = engine(name, variant, threads)
    loaded = rss_mib()
    voice = e.resolve_voice(e.default_voice)
    for text in sentences():
        e.synthesize(text, voice)
    print(json.dumps({"before": before, "loaded": loaded, "after": rss_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="kokoro,piper")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the sentences for the timing")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (1: CPU time is the work)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "onnx_arena.json")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))

    loads = [os.getloadavg()[0]]
    print(f"load average {loads[0]:.1f}, {os.cpu_count()} cores, {args.threads} intra-op thread(s)")
    print("| engine | arena | RSS loaded MiB | RSS after syntheses MiB | growth MiB | median synthesis s | "
          "wall / off | CPU / off |")
    print("|---|---|---|---|---|---|---|---|")
    results = {}
    for name in args.engines.split(","):
        memory = {}
        for variant in VARIANTS:
            out = subprocess.run([sys.executable, __file__, "--child", name, variant, str(args.threads)],
                                 capture_output=True, text=True, check=True).stdout
            memory[variant] = json.loads(out.strip().splitlines()[-1])
        engines = {variant: engine(name, variant, args.threads) for variant in VARIANTS}
        wall = {variant: [] for variant in VARIANTS}
        cpu = {variant: [] for variant in VARIANTS}
        for _ in range(args.rounds):
            for text in sentences():
                for variant, e in engines.items():
                    started, cpu_started = time.perf_counter(), time.process_time()
                    e.synthesize(text, e.resolve_voice(e.default_voice))
                    wall[variant].append(time.perf_counter() - started)
                    cpu[variant].append(time.process_time() - cpu_started)
        results[name] = {}
        for variant in VARIANTS:
            m = memory[variant]
            wall_ratio = statistics.median(a / b for a, b in zip(wall[variant], wall["off"]))
            cpu_ratio = statistics.median(a / b for a, b in zip(cpu[variant], cpu["off"]))
            results[name][variant] = {**m, "median_s": statistics.median(wall[variant]), "wall_vs_off": wall_ratio,
                                      "cpu_vs_off": cpu_ratio}
            print(f"| {name} | {variant} | {m['loaded']:.0f} | {m['after']:.0f} | {m['after'] - m['loaded']:+.0f} | "
                  f"{statistics.median(wall[variant]):.2f} | {wall_ratio:.2f} | {cpu_ratio:.2f} |")
        del engines
    loads.append(os.getloadavg()[0])
    print(f"load average {loads[-1]:.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"threads": args.threads, "loadavg": loads, "results": results}, indent=1))


if __name__ == "__main__":
    main()
