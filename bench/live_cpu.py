"""CPU per live player outside the model, replayed without the clock, before vs after.

Live sessions (realtime/session.py, server_vad, partials every 500 ms, speculative
finals, OpenAI's 24 kHz PCM16 in base64 appends of 100 ms) play real English speech
from the eval set with 1 s of silence between clips, round-robin, as fast as the
CPU allows. The decoder is `simulated-gpu` with a zero decode time, run inline, so
the process CPU time is exactly the per-player work outside the model: VAD, mel
features, resampling, base64, turn logic, and whatever native thread pools burn beside it
(unpinned: run it without taskset to see what production sees; each side sizes its pools as
its own server does at start). Replaying without the clock makes the
cadence of partials and finals the same in every run (each decode finishes before
the next append), so the figure does not depend on the machine's load the way a
latency does; `bench/capacity.py` measures the same work through a real server.

Each side runs in its own interpreter, alternating, `--rounds` times; the baseline
is the source tree at a git ref (`git archive`), so one command compares both:

  python bench/live_cpu.py --baseline 187a2fd --players 8 --seconds 60 --rounds 3

`--profile` adds one more replay per side under py-spy and splits each side's
median by component (bench/capacity.py's classes), side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _machine import cpu_model  # bench/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
# Set by each side's own thread policy, never inherited from this process's shell.
NATIVE_POOL_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")


def count_stft_frames() -> list[int]:
    """Count the STFT frames computed (faster-whisper's extractor and engines/stt/features.py
    both call FeatureExtractor.stft): the mel work done, whatever the machine's load."""
    from faster_whisper.feature_extractor import FeatureExtractor

    frames, stft = [0], FeatureExtractor.stft

    def counting(*args, **kwargs):
        out = stft(*args, **kwargs)
        frames[0] += out.shape[-1]
        return out

    FeatureExtractor.stft = staticmethod(counting)
    return frames


def replay(players: int, seconds: float, frames: bool = False) -> dict:
    from voxhost.audio.decode import decode_audio
    from voxhost.audio.pcm import MonoResampler
    from voxhost.engines.stt.simulated import SimulatedGpuEngine
    from voxhost.evaluation.dataset import load_manifest
    from voxhost.realtime.config import SessionConfig, SessionLimits
    from voxhost.realtime.session import TranscriptionSession

    engine = SimulatedGpuEngine(call_seconds=0.0, item_seconds=0.0)

    class InlineDecoder:  # the decode runs here, so its CPU (outside the sleep) counts
        def engine(self, model):
            return engine

        def busy(self, engine):
            return False

        async def transcribe(self, engine, audio, options):
            return engine.transcribe(audio, options)

    rows = load_manifest(lang="en")
    silence = np.zeros(16_000, dtype=np.float32)
    to_24k = MonoResampler(24_000)

    def stream(offset: int) -> list[str]:
        """One player's appends: base64 of 100 ms of 24 kHz PCM16, as clients send them."""
        audio, total, i = [], 0, offset
        while total < seconds * 16_000:
            clip = decode_audio(rows[i % len(rows)].audio.read_bytes())
            audio += [silence, clip]
            total += silence.size + clip.size
            i += 1
        pcm = np.concatenate(to_24k.pcm16((np.clip(np.concatenate(audio), -1, 1) * 32767).astype("<i2"), 16_000))
        data = pcm.astype("<i2").tobytes()
        step = 4800  # 100 ms at 24 kHz, 2 bytes a sample
        return [base64.b64encode(data[o:o + step]).decode() for o in range(0, len(data), step)]

    streams = [stream(p * 7) for p in range(players)]

    async def emit(event):
        pass

    async def run() -> float:
        sessions = [TranscriptionSession(SessionConfig(), SessionLimits(), InlineDecoder(), emit)
                    for _ in range(players)]
        started = time.process_time()
        for n in range(max(len(s) for s in streams)):
            # Each player's append in its own task, as the server's connections run:
            # live sessions' VAD is scored together per event-loop tick (realtime/vad_batch.py).
            await asyncio.gather(*[session.append(base64.b64decode(appends[n]))
                                   for session, appends in zip(sessions, streams) if n < len(appends)])
            await asyncio.sleep(0)  # partial and final tasks run, as between network reads
        for session in sessions:
            await session.finish()
        cpu = time.process_time() - started
        for session in sessions:
            await session.close()
        return cpu

    counted = count_stft_frames() if frames else None
    cpu = asyncio.run(run())
    audio_minutes = sum(len(s) for s in streams) * 0.1 / 60
    result = {"cpu_s": cpu, "player_minutes": audio_minutes, "cpu_s_per_player_minute": cpu / audio_minutes,
              "percent_of_one_core_per_player": 100 * cpu / (audio_minutes * 60)}
    if counted is not None:
        result["stft_frames_per_player_minute"] = counted[0] / audio_minutes
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="git ref to compare against (its src/ tree)")
    parser.add_argument("--players", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per player")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true",
                        help="also split the CPU by component with py-spy (one more replay per side)")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second (--profile)")
    parser.add_argument("--frames", action="store_true",
                        help="count the STFT frames computed instead (a separate run: counting costs CPU)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "live_cpu.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        try:  # the thread pools as the side's own server sizes them at start, where it has the policy
            from voxhost.engines.threads import limit_blas
        except ImportError:
            pass
        else:
            limit_blas()
        print(json.dumps(replay(args.players, args.seconds, args.frames)))
        return
    sides = {"this tree": str(HERE.parent / "src")}
    tmp = tempfile.TemporaryDirectory()
    if args.baseline:
        archive = subprocess.run(["git", "archive", args.baseline, "src"], cwd=HERE.parent, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp.name], input=archive, check=True)
        sides = {f"baseline {args.baseline}": str(Path(tmp.name) / "src"), **sides}
    # The baseline's tree is extracted outside the checkout, where it cannot find shared/eval itself.
    from voxhost.evaluation.dataset import eval_dir
    os.environ.setdefault("VOXHOST_EVAL_DIR", str(eval_dir()))
    results: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(args.rounds):
        for name, src in sides.items():
            env = {**{k: v for k, v in os.environ.items() if k not in NATIVE_POOL_ENV}, "PYTHONPATH": src}
            out = subprocess.run([sys.executable, __file__, "--child", "--players", str(args.players),
                                  "--seconds", str(args.seconds), *(["--frames"] if args.frames else [])],
                                 env=env, check=True, capture_output=True, text=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]) | {"load_avg": os.getloadavg()[0]})
    if args.frames:
        print("| code | STFT frames / player-min |\n|---|---|")
        for name, runs in results.items():
            print(f"| {name} | {runs[0]['stft_frames_per_player_minute']:.0f} |")
        return
    print("| code | CPU s / player-min (median) | % of one core per player | players' non-model work per core | "
          "load avg |\n|---|---|---|---|---|")
    medians = {}
    for name, runs in results.items():
        medians[name] = float(np.median([r["cpu_s_per_player_minute"] for r in runs]))
        loads = [r["load_avg"] for r in runs]
        print(f"| {name} | {medians[name]:.3f} | {medians[name] / 60 * 100:.2f}% | {60 / medians[name]:.0f} | "
              f"{min(loads):.1f}-{max(loads):.1f} |")
    if len(medians) == 2:
        before, after = medians.values()
        print(f"\nafter / before: {after / before:.2f}x CPU per player")
    print(f"\n{os.cpu_count()} cores ({cpu_model()}), unpinned unless this command ran under taskset")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"players": args.players, "seconds": args.seconds, "rounds": args.rounds,
                                    "cpu": cpu_model(), "cores": os.cpu_count(), "affinity": sorted(os.sched_getaffinity(0)),
                                    "medians_cpu_s_per_player_minute": medians, "runs": results}, indent=1))
    if args.profile:
        print_components(sides, medians, args)


def replay_components(raw: Path) -> dict[str, float]:
    """Share of the replay's py-spy samples per component (bench/capacity.py's classes,
    innermost frame first), counting only the replay itself: samples under
    `asyncio.run`, outside the sessions' construction (the clips' decoding and
    resampling to 24 kHz before it are the benchmark's set-up, not a player's work)."""
    from capacity import COMPONENTS  # bench/ is on sys.path when run as a script

    counts: dict[str, int] = {}
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit() or "Runner.run (asyncio/runners.py" not in stack or \
                "TranscriptionSession.__init__" in stack:
            continue
        frames = stack.split(";")
        name = next((component for frame in reversed(frames) for component, pattern in COMPONENTS
                     if re.search(pattern, frame)), "other")
        counts[name] = counts.get(name, 0) + int(n)
    total = sum(counts.values()) or 1
    return {name: n / total for name, n in counts.items()}


def print_components(sides: dict[str, str], medians: dict[str, float], args) -> None:
    """One replay per side under py-spy; each component's share times that side's median."""
    shares = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, src in sides.items():
            raw = Path(tmp) / f"{len(shares)}.txt"
            spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", str(args.rate), "--format",
                   "raw", "--nonblocking", "-o", str(raw), "--"]
            subprocess.run(spy + [sys.executable, __file__, "--child", "--players", str(args.players),
                                  "--seconds", str(args.seconds)], env={**os.environ, "PYTHONPATH": src},
                           check=True, capture_output=True)
            shares[name] = replay_components(raw)
    components = sorted({c for s in shares.values() for c in s}, key=lambda c: -max(s.get(c, 0)
                                                                                     for s in shares.values()))
    header = " | ".join(f"{name}: share | {name}: CPU s / player-min" for name in shares)
    print(f"\n| component | {header} |\n|---|" + "---|" * (2 * len(shares)))
    for component in components:
        cells = " | ".join(f"{shares[n].get(component, 0):.0%} | {shares[n].get(component, 0) * medians[n]:.3f}"
                           for n in shares)
        print(f"| {component} | {cells} |")


if __name__ == "__main__":
    main()
