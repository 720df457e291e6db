"""CTranslate2 thread layouts for REST short clips, engine level, against raw faster-whisper.

Each layout runs in its own interpreter (OpenMP reads its environment once, when
CTranslate2 loads), alternating layout by layout, `--rounds` times, so the machine's
load hits all alike. Per layout it decodes the first `--clips` English clips under 6 s
one at a time (a lone push-to-talk request) and then `--concurrency` at once from as
many Python threads (the server's executor), and reports audio-seconds per second for
both, as a ratio to `raw`: faster-whisper on its own defaults (one worker, CTranslate2's
default thread count, the 30 s window with timestamp tokens, beam 5), decoded one at a time.

A layout is NAME=WORKERS,THREADS[,ENV=VALUE...] (THREADS 0: CTranslate2's default).
`--window` decodes the layouts (not raw) as the server's REST default does: text-only in
a window of the clip + 5 s, at least 25 s (stt/service.py).

  python bench/stt_threads.py --rounds 3 --clips 8 --concurrency 8 \\
      --layout "2x1=2,1" --layout "2x2=2,2" --layout "2x2 passive=2,2,OMP_WAIT_POLICY=passive"

Writes bench/results/stt_threads.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def child(workers: int, threads: int, clips: int, concurrency: int, window: bool) -> dict:
    from dataclasses import replace

    from voxhost.audio.decode import decode_audio
    from voxhost.engines.stt.bundled import resolve_stt_model
    from voxhost.engines.stt.whisper import WhisperEngine
    from voxhost.evaluation.dataset import load_manifest
    from voxhost.ops.settings import Settings
    from voxhost.stt.service import options_from

    settings = Settings()
    rows = [r for r in load_manifest(lang="en") if r.duration < 6.0][:clips]
    audios = [decode_audio(r.audio.read_bytes()) for r in rows]
    audio_s = sum(r.duration for r in rows)
    engine = WhisperEngine("whisper-base", resolve_stt_model("whisper-base", settings.models_dir), device="cpu",
                           cpu_threads=threads, num_workers=workers)
    base = options_from(settings, language="en")

    def options(audio):
        if not window:
            return base
        # The server's REST policy for a json/text clip on a CPU engine (stt/service.py request_options).
        from voxhost.engines.stt.windows import WHISPER_WINDOW_S, encoder_window
        from voxhost.stt.service import REST_SHORT_WINDOW_LANGUAGES, REST_WINDOW_FLOOR_S, REST_WINDOW_PAD_S

        sized = encoder_window(len(audio) / 16_000, pad_s=REST_WINDOW_PAD_S, floor_s=REST_WINDOW_FLOOR_S)
        return replace(base, without_timestamps=True, chunk_length=sized if sized < WHISPER_WINDOW_S else None,
                       shortcut_languages=REST_SHORT_WINDOW_LANGUAGES)

    engine.transcribe(audios[0], options(audios[0]))  # warm-up
    started, cpu = time.perf_counter(), time.process_time()
    texts = [engine.transcribe(a, options(a)).text for a in audios]
    lone, lone_cpu = time.perf_counter() - started, time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda a: engine.transcribe(a, options(a)), audios))
    together, together_cpu = time.perf_counter() - started, time.process_time() - cpu
    # CPU seconds (all the process's threads) per clip: what bounds throughput once every core is busy.
    return {"lone_audio_s_per_s": audio_s / lone, "concurrent_audio_s_per_s": audio_s / together,
            "lone_cpu_s_per_clip": lone_cpu / len(audios), "concurrent_cpu_s_per_clip": together_cpu / len(audios),
            "texts": texts}


def raw_child(clips: int) -> dict:
    """faster-whisper as its README runs it: defaults, one clip at a time."""
    from faster_whisper import WhisperModel

    from voxhost.audio.decode import decode_audio
    from voxhost.engines.stt.bundled import resolve_stt_model
    from voxhost.evaluation.dataset import load_manifest
    from voxhost.ops.settings import Settings

    rows = [r for r in load_manifest(lang="en") if r.duration < 6.0][:clips]
    audios = [decode_audio(r.audio.read_bytes()) for r in rows]
    model = WhisperModel(resolve_stt_model("whisper-base", Settings().models_dir), device="cpu", compute_type="int8")
    list(model.transcribe(audios[0], beam_size=5, language="en")[0])
    started, cpu = time.perf_counter(), time.process_time()
    texts = ["".join(s.text for s in model.transcribe(a, beam_size=5, language="en")[0]).strip() for a in audios]
    wall, used = time.perf_counter() - started, time.process_time() - cpu
    return {"lone_audio_s_per_s": sum(r.duration for r in rows) / wall, "lone_cpu_s_per_clip": used / len(audios),
            "texts": texts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layout", action="append", default=[], help="NAME=WORKERS,THREADS[,ENV=VALUE...]")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", action="store_true", help="layouts decode as the server's REST default")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "stt_threads.json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child == "raw":
            print(json.dumps(raw_child(args.clips)))
        else:
            workers, threads = (int(x) for x in args.child.split(","))
            print(json.dumps(child(workers, threads, args.clips, args.concurrency, args.window)))
        return
    layouts = {"raw": ("raw", {})}
    for spec in args.layout or ["2x1=2,1", "1x2=1,2", "2x2=2,2"]:
        name, _, rest = spec.partition("=")
        workers, threads, *env = rest.split(",")
        layouts[name] = (f"{workers},{threads}", dict(e.split("=", 1) for e in env))
    runs: dict[str, list[dict]] = {name: [] for name in layouts}
    loads = []
    for r in range(args.rounds):
        names = list(layouts)
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            spec, env = layouts[name]
            out = subprocess.run([sys.executable, __file__, "--child", spec, "--clips", str(args.clips),
                                  "--concurrency", str(args.concurrency), *(["--window"] if args.window else [])],
                                 env={**os.environ, **env}, check=True, capture_output=True, text=True).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
    # Ratios per round (the same moment's load), then the median.
    result = {"clips": args.clips, "concurrency": args.concurrency, "window": args.window, "rounds": args.rounds,
              "loadavg": [min(loads), max(loads)], "cpu": _cpu(), "cores": os.cpu_count(), "layouts": {}}
    print(f"\n{args.clips} English clips < 6 s, whisper-base int8, load avg {min(loads):.1f}-{max(loads):.1f}, "
          f"{_cpu()}\n")
    print(f"| layout | one at a time, audio-s/s | vs raw | {args.concurrency} at once, audio-s/s | vs raw sequential | "
          "CPU s / clip alone | CPU s / clip at once | texts equal raw's |\n|---|---|---|---|---|---|---|---|")
    raw = runs["raw"]
    for name, rs in runs.items():
        lone = float(np.median([x["lone_audio_s_per_s"] for x in rs]))
        lone_ratio = float(np.median([x["lone_audio_s_per_s"] / r["lone_audio_s_per_s"] for x, r in zip(rs, raw)]))
        row = {"lone_audio_s_per_s": lone, "lone_vs_raw": lone_ratio, "env": layouts[name][1], "spec": layouts[name][0],
               "lone_cpu_s_per_clip": float(np.median([x["lone_cpu_s_per_clip"] for x in rs]))}
        conc = ratio = conc_cpu = ""
        if name != "raw":
            row["concurrent_audio_s_per_s"] = float(np.median([x["concurrent_audio_s_per_s"] for x in rs]))
            row["concurrent_vs_raw"] = float(np.median([x["concurrent_audio_s_per_s"] / r["lone_audio_s_per_s"]
                                                        for x, r in zip(rs, raw)]))
            row["concurrent_cpu_s_per_clip"] = float(np.median([x["concurrent_cpu_s_per_clip"] for x in rs]))
            conc, ratio = f"{row['concurrent_audio_s_per_s']:.2f}", f"{row['concurrent_vs_raw']:.2f}x"
            conc_cpu = f"{row['concurrent_cpu_s_per_clip']:.2f}"
        same = sum(a == b for a, b in zip(rs[0]["texts"], raw[0]["texts"]))
        row["texts_equal_raw"] = same
        result["layouts"][name] = row
        print(f"| {name} | {lone:.2f} | {lone_ratio:.2f}x | {conc} | {ratio} | {row['lone_cpu_s_per_clip']:.2f} | "
              f"{conc_cpu} | {same}/{len(raw[0]['texts'])} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
