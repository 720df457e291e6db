"""Where a Kokoro bark's time goes inside onnxruntime, against kokoro-onnx: a diagnostic for
bench/tts_vs_kokoro_onnx.py's bark first byte, at the engine level (no server, no front end).

A bark is one model call on both sides, so its first byte is that call. Sessions, alternating:

  voxhost            the engine's own session, as the server builds it (the timed graph with
                     its Snake activations and Sin nodes on voxhost's kernels, engines/onnx_ops,
                     engines/tts/kokoro_native.py; the thread policy:
                     spinning off, the arena shrunk after each run)
  voxhost, onnxruntime's Sin
                     the plain timed graph, without voxhost's kernels (VOXHOST_TTS_NATIVE_OPS=false, or a host
                     without a C compiler)
  kokoro-onnx        kokoro_onnx.create_session on the same int8 file (its defaults: spinning,
                     the arena kept), from bench/.peers as bench/tts_vs_kokoro_onnx.py installs it
  what-if: spinning  onnxruntime's Sin with VOXHOST_TTS_SPIN_US=2000 and the arena kept: what
                     the peer's two settings are worth

alternating line by line on the bark lines (new names each round), ratios line by line to
kokoro-onnx, then medians. Then onnxruntime's own profiler on each voxhost graph splits each op
type's time into nodes that ran on one thread (the profiler's empty block_size) and nodes that
used the pool: on 2 cores, one-thread time is time the second core idles on a lone request.

  .venv/bin/python bench/kokoro_kernels.py [--rounds 6]

Writes bench/results/kokoro_kernels.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))


def profile_ops(path: Path, options, feeds: list[dict]) -> dict:
    """Per op type: ms per run on one thread and on the pool (onnxruntime's profiler)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "kokoro")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        session.run(None, feeds[0])  # warm-up: its nodes are dropped below
        for feed in feeds:
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    runs = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    first_timed = runs[1] if len(runs) > 1 else 0
    one, pool = collections.Counter(), collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < first_timed:
            continue
        stats = e["args"].get("thread_scheduling_stats", {}).get("main_thread", {})
        (pool if stats.get("block_size") else one)[e["args"]["op_name"]] += e["dur"]
    n = len(feeds)
    ops = sorted(set(one) | set(pool), key=lambda op: -(one[op] + pool[op]))
    return {"runs": n, "ops": {op: {"one_thread_ms": one[op] / 1000 / n, "pool_ms": pool[op] / 1000 / n}
                               for op in ops}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the bark lines")
    parser.add_argument("--gap", type=float, default=0.15, help="seconds between calls")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "kokoro_kernels.json")
    args = parser.parse_args()

    from tts_vs_kokoro_onnx import LINES, NAMES, ensure_peer

    ensure_peer()
    import onnxruntime as ort
    from kokoro_onnx.session import create_session

    from voxhost.engines import onnx_ops
    from voxhost.engines.onnx_device import ShrinkingSession, session_options
    from voxhost.engines.threads import tts_threads
    from voxhost.engines.tts.kokoro import MODEL_FILE
    from voxhost.engines.tts.kokoro_durations import assemble_timed
    from voxhost.engines.tts.kokoro_native import assemble_native
    from voxhost.engines.tts.registry import engine_factories
    from voxhost.ops import memory
    from voxhost.ops.settings import Settings

    memory.configure_allocator()
    settings = Settings()
    engine = engine_factories()["kokoro"](models_dir=settings.models_dir)
    engine.device = "cpu"
    engine.load()
    memory.start_serving()  # the allocator policy the server runs under once its models are in
    plain = settings.models_dir / "kokoro" / MODEL_FILE
    timed = assemble_timed(plain)
    voice = engine.resolve_voice("am_onyx")

    def feed(text: str) -> dict:
        style, spelled = engine.spell(text, voice)
        tokens = engine._tokens(spelled.phonemes)[0]
        return {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64), "style": style[len(tokens) - 1].reshape(1, 256),
                "speed": np.array([1.0], dtype=np.float32)}

    def options(spin_us: int = 0):
        return session_options(tts_threads("kokoro", spin_us=spin_us))

    assert engine.native_sin, "voxhost's Sin kernel did not build (engines/onnx_ops): see the warning above"
    cpu = ["CPUExecutionProvider"]
    sessions = {
        "voxhost": engine._session,
        "voxhost, onnxruntime's Sin": ShrinkingSession(ort.InferenceSession(str(timed), options(), providers=cpu)),
        "kokoro-onnx": create_session(str(plain)),
        "what-if: spinning, arena kept": ShrinkingSession(
            ort.InferenceSession(str(timed), options(spin_us=2000), providers=cpu), shrink=False),
    }
    barks = next(lines for cls, lines in LINES.items() if cls.startswith("bark"))
    for session in sessions.values():
        session.run(None, feed("Warm up, traveler."))
    times: dict[str, list[float]] = {side: [] for side in sessions}
    cpu_s: dict[str, list[float]] = {side: [] for side in sessions}
    feeds = [feed(t.format(NAMES[(r * len(barks) + i) % len(NAMES)]))
             for r in range(args.rounds) for i, t in enumerate(barks)]
    for i, tokens in enumerate(feeds):
        order = list(sessions) if i % 2 else list(sessions)[::-1]
        for side in order:
            started, cpu = time.perf_counter(), time.process_time()
            sessions[side].run(None, tokens)
            times[side].append(time.perf_counter() - started)
            cpu_s[side].append(time.process_time() - cpu)
            time.sleep(args.gap)
        if (i + 1) % len(barks) == 0:
            print(f"round {(i + 1) // len(barks)}/{args.rounds}, load {os.getloadavg()[0]:.1f}", flush=True)
    peer = times["kokoro-onnx"]
    summary = {side: {"median_ms": 1000 * statistics.median(t),
                      "ratio_to_kokoro_onnx": statistics.median(a / b for a, b in zip(t, peer)),
                      "cpu_ratio_to_kokoro_onnx": statistics.median(
                          a / b for a, b in zip(cpu_s[side], cpu_s["kokoro-onnx"]))}
               for side, t in times.items()}
    native_options = options()
    onnx_ops.register(native_options, settings.models_dir)
    profiles = {"voxhost": profile_ops(assemble_native(timed), native_options, feeds[: len(barks) * 2]),
                "voxhost, onnxruntime's Sin": profile_ops(timed, options(), feeds[: len(barks) * 2])}

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    print(f"\nA bark's model call, engine level, {len(feeds)} calls a side, alternating "
          f"({os.cpu_count()} cores, {model}, onnxruntime {ort.__version__}):\n")
    print("| session | median ms | time / kokoro-onnx | CPU / kokoro-onnx |\n|---|---|---|---|")
    for side, row in summary.items():
        print(f"| {side} | {row['median_ms']:.0f} | {row['ratio_to_kokoro_onnx']:.3f}x | "
              f"{row['cpu_ratio_to_kokoro_onnx']:.3f}x |")
    for side, profile in profiles.items():
        ops = profile["ops"]
        total = sum(o["one_thread_ms"] + o["pool_ms"] for o in ops.values())
        alone = sum(o["one_thread_ms"] for o in ops.values())
        print(f"\n{side}, onnxruntime's profiler ({profile['runs']} bark calls): {total:.0f} ms of kernels "
              f"per call, {alone:.0f} ms ({alone / total:.0%}) in nodes that ran on one thread\n")
        print("| op | ms per call, one thread | ms per call, on the pool | share |\n|---|---|---|---|")
        for op, row in list(ops.items())[:8]:
            print(f"| {op} | {row['one_thread_ms']:.1f} | {row['pool_ms']:.1f} | "
                  f"{(row['one_thread_ms'] + row['pool_ms']) / total:.1%} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "profiles": profiles,
                                    "calls": len(feeds), "times_s": times, "cpu": model, "cores": os.cpu_count(),
                                    "loadavg": os.getloadavg(), "onnxruntime": ort.__version__}, indent=1))


if __name__ == "__main__":
    main()
