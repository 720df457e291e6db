"""Live speech-to-text latency: N players talking at once, paced at real time.

Serves the app in-process (uvicorn in a thread), then for each N streams English files from shared/eval into
N concurrent sessions (server VAD, OpenAI defaults: 500 ms silence) and
measures, per turn:
  - end of speech -> `completed` (whole latency, includes the 500 ms silence
    wait and the client's 100 ms chunking), and the server's own part
    (whole latency minus silence_duration_ms);
  - partial cadence (interval between deltas of one turn, turns with partials);
  - server CPU (utime+stime of the server process / wall time);
  - WER of the streamed finals against the references.

  python bench/realtime_latency.py --model whisper-base --sessions 1,2,4,8 --seconds 60
  python bench/realtime_latency.py --model whisper-base --sessions 4 --full   # streamed WER, full English set
  python bench/realtime_latency.py --study --model whisper-base               # final-decode options
  python bench/realtime_latency.py --plot bench/results/realtime_latency.json docs/realtime_latency.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
from _ready import wait_ready  # bench/ is on sys.path when run as a script

from voxhost.evaluation.dataset import load_manifest
from voxhost.loadtest.realtime_client import load_pcm, session_update, stream
from voxhost.stt.wer import wer

RATE = 24_000
SILENCE_MS = 500
LEAD, TAIL = 0.5, 1.5  # seconds of silence around each file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model: str, env_extra: dict):
    """The app under uvicorn in a thread of this process (clients share the GIL,
    which makes the figures conservative). A `voxhost serve` subprocess measured
    3-40x slower per decode on this VM, REST included (see docs/benchmarks.md)."""
    import threading

    import uvicorn

    from voxhost.api.app import create_app
    from voxhost.ops.settings import Settings

    overrides = {k.removeprefix("VOXHOST_").lower(): v for k, v in env_extra.items()}
    settings = Settings(stt_models=[model], max_live_sessions=64, **overrides)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", ws_ping_interval=20))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    if wait_ready(base):
        return server, base
    raise RuntimeError("server did not become ready")


def cpu_seconds() -> float:
    return time.process_time()  # this process: server and clients


def playlist(rows, seconds: float | None, offset: int):
    """Files for one session, rotated so sessions don't speak in lockstep."""
    rows = rows[offset % len(rows):] + rows[: offset % len(rows)]
    chosen, total = [], 0.0
    for row in rows:
        if seconds is not None and total >= seconds:
            break
        chosen.append(row)
        total += row.duration + LEAD + TAIL
    return chosen


async def run_session(base: str, rows) -> dict:
    pieces, spans, position = [], [], 0.0
    for row in rows:
        pcm = load_pcm(row.audio, RATE, lead_silence=LEAD, tail_silence=TAIL)
        pieces.append(pcm)
        length = len(pcm) / (RATE * 2) * 1000
        spans.append((position, position + length))
        position += length
    url = base.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    result = await stream(url, b"".join(pieces), rate=RATE, update=session_update(rate=RATE))
    latencies, cadences, turns_with_partials, hyps = [], [], 0, [[] for _ in rows]
    for turn in result.ordered_turns:
        stopped, done = turn.first("input_audio_buffer.speech_stopped"), turn.first(
            "conversation.item.input_audio_transcription.completed")
        started = turn.first("input_audio_buffer.speech_started")
        if not (stopped and done and started):
            continue
        end_of_speech = result.t0 + (stopped[1]["audio_end_ms"] - SILENCE_MS) / 1000
        latencies.append(done[0] - end_of_speech)
        deltas = [t for t, _ in turn.deltas]
        turns_with_partials += bool(deltas)
        cadences += list(np.diff(deltas))
        middle = (started[1]["audio_start_ms"] + stopped[1]["audio_end_ms"]) / 2
        index = next((i for i, (a, b) in enumerate(spans) if a <= middle < b), len(rows) - 1)
        hyps[index].append(done[1]["transcript"])
    return {"latencies": latencies, "cadences": cadences, "turns": len(result.ordered_turns),
            "turns_with_partials": turns_with_partials, "errors": len(result.errors),
            "refs": [r.text for r in rows], "hyps": [" ".join(h) for h in hyps], "ids": [r.id for r in rows]}


async def run_level(base: str, rows, n: int, seconds: float | None) -> list[dict]:
    if seconds is None:  # the full set, split across the sessions
        lists = [rows[i::n] for i in range(n)]
    else:
        lists = [playlist(rows, seconds, i * 7) for i in range(n)]
    return await asyncio.gather(*(run_session(base, files) for files in lists))


def summarise(model: str, n: int, sessions: list[dict], wall: float, cpu: float) -> dict:
    lat = np.array([x for s in sessions for x in s["latencies"]] or [float("nan")])  # nan: no turn finished
    cad = np.array([x for s in sessions for x in s["cadences"]])
    turns = sum(s["turns"] for s in sessions)
    refs = [r for s in sessions for r in s["refs"]]
    hyps = [h for s in sessions for h in s["hyps"]]
    return {
        "model": model, "sessions": n, "turns": turns,
        "p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)),
        "own_p50": float(np.percentile(lat, 50)) - SILENCE_MS / 1000,
        "own_p95": float(np.percentile(lat, 95)) - SILENCE_MS / 1000,
        "cadence_p50": float(np.median(cad)) if cad.size else None,
        "partial_turns": sum(s["turns_with_partials"] for s in sessions) / max(turns, 1),
        "cpu_percent": 100 * cpu / wall, "errors": sum(s["errors"] for s in sessions),
        "wer": wer(refs, hyps), "files": len(refs), "load": os.getloadavg()[0],
    }


def row_md(r: dict) -> str:
    cadence = f"{r['cadence_p50']:.2f} s" if r["cadence_p50"] else "n/a"
    return (f"| {r['model']} | {r['sessions']} | {r['turns']} | {r['p50']:.2f} | {r['p95']:.2f} | "
            f"{r['own_p50']:.2f} | {r['own_p95']:.2f} | {cadence} | {r['partial_turns']:.0%} | "
            f"{r['cpu_percent']:.0f}% | {r['wer']:.3f} | {r['load']:.1f} |")


HEADER = ("| model | sessions | turns | p50 s | p95 s | own p50 s | own p95 s | delta interval p50 | "
          "turns with partials | process CPU | WER | load avg |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def study(model: str, limit: int) -> None:
    """Final-decode options on short turns, interleaved per clip so machine load hits all alike."""
    from voxhost.audio.decode import decode_audio
    from voxhost.engines.stt.base import TranscriptionOptions
    from voxhost.ops.settings import Settings
    from voxhost.realtime.decoding import window_seconds
    from voxhost.services import build_services

    engine = build_services(Settings(stt_models=[model])).stt_engines.load(model)
    rows = [r for r in load_manifest(lang="en") if r.duration <= 12][:limit]
    configs = {
        "30 s window, timestamps, beam 5 (REST default)": lambda d: TranscriptionOptions(language="en"),
        "30 s window, no timestamps, beam 5": lambda d: TranscriptionOptions(language="en", without_timestamps=True),
        "short window, no timestamps, beam 5": lambda d: TranscriptionOptions(
            language="en", without_timestamps=True, chunk_length=window_seconds(d)),
        "short window, no timestamps, beam 1": lambda d: TranscriptionOptions(
            language="en", beam_size=1, without_timestamps=True, chunk_length=window_seconds(d)),
    }
    times = {k: [] for k in configs}
    hyps = {k: [] for k in configs}
    for row in rows:
        audio = decode_audio(row.audio.read_bytes())
        for label, make in configs.items():
            started = time.perf_counter()
            hyps[label].append(engine.transcribe(audio, make(row.duration)).text)
            times[label].append(time.perf_counter() - started)
    base = np.median(times[next(iter(configs))])
    print(f"\n{model}, {len(rows)} clips <= 12 s, load avg {os.getloadavg()[0]:.1f}\n")
    print("| final decode | WER | median decode s | vs REST default |\n|---|---|---|---|")
    for label in configs:
        med = float(np.median(times[label]))
        print(f"| {label} | {wer([r.text for r in rows], hyps[label]):.3f} | {med:.2f} | {med / base:.2f}x |")


def plot(results_path: Path, out: Path) -> None:
    """Latency against concurrent sessions, one line per model (p50 solid, p95 dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads(results_path.read_text())
    fig, ax = plt.subplots(figsize=(7, 4))
    for model in dict.fromkeys(r["model"] for r in results):
        rows = sorted((r for r in results if r["model"] == model), key=lambda r: r["sessions"])
        n = [r["sessions"] for r in rows]
        line, = ax.plot(n, [r["p50"] for r in rows], marker="o", label=f"{model} p50")
        ax.plot(n, [r["p95"] for r in rows], marker="o", linestyle="--", color=line.get_color(),
                label=f"{model} p95")
    ax.axhline(1.5, color="grey", linewidth=0.8, linestyle=":", label="goal: p95 < 1.5 s")
    ax.axhline(SILENCE_MS / 1000, color="grey", linewidth=0.8, linestyle="-.", label="silence wait (500 ms)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("concurrent sessions, paced at real time")
    ax.set_ylabel("end of speech -> final transcript (s)")
    ax.set_title("Live speech-to-text latency (2 shared vCPUs)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="whisper-base")
    parser.add_argument("--sessions", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per session per level")
    parser.add_argument("--full", action="store_true", help="stream the full English set (split across sessions)")
    parser.add_argument("--study", action="store_true", help="compare final-decode options instead")
    parser.add_argument("--study-clips", type=int, default=40)
    parser.add_argument("--env", action="append", default=[], help="extra server setting, NAME=VALUE")
    parser.add_argument("--json", type=Path, help="append results here")
    parser.add_argument("--plot", nargs=2, type=Path, metavar=("RESULTS_JSON", "PNG"),
                        help="draw latency vs sessions from saved results, then exit")
    args = parser.parse_args()
    if args.plot:
        return plot(*args.plot)
    if args.study:
        return study(args.model, args.study_clips)

    rows = load_manifest(lang="en")
    server, base = start_server(args.model, dict(e.split("=", 1) for e in args.env))
    results = []
    try:
        # Warm-up pass, not recorded: the first decodes of a fresh process (each
        # new window shape) run far slower than steady state on this VM.
        asyncio.run(run_level(base, rows, 2, 15.0))
        print(HEADER, flush=True)
        for n in [int(x) for x in args.sessions.split(",")]:
            cpu0, wall0 = cpu_seconds(), time.monotonic()
            sessions = asyncio.run(run_level(base, rows, n, None if args.full else args.seconds))
            summary = summarise(args.model, n, sessions, time.monotonic() - wall0, cpu_seconds() - cpu0)
            summary["env"] = args.env
            results.append(summary)
            print(row_md(summary), flush=True)
    finally:
        server.should_exit = True
    if args.json:
        previous = json.loads(args.json.read_text()) if args.json.exists() else []
        args.json.write_text(json.dumps(previous + results, indent=1))


if __name__ == "__main__":
    main()
