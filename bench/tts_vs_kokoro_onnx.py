"""voxhost's Kokoro against kokoro-onnx 0.6.1 (MIT), side by side in one process.

Same model file (Kokoro v1.0 int8 from voxhost's models dir; voxhost runs it with its phoneme
durations exposed as an extra output: engines/tts/kokoro_durations.py), same voice (am_onyx:
voxhost's style table, written as a voices file for kokoro-onnx), same onnxruntime (the
product's: this process loads it first; the script checks). kokoro-onnx runs on its own
defaults (a session as wide as the cores, onnxruntime's arena and spinning, espeak-ng G2P,
one model call per line up to 510 phonemes); voxhost runs as its server does by default:

  voxhost      the real server in this process (uvicorn in a thread; default settings but
               Kokoro alone and no phrase cache): POST /v1/audio/speech, model tts-1-hd,
               voice am_onyx, response_format pcm, streamed; first body byte and last;
  kokoro-onnx  Kokoro.create_stream (its streaming API): first chunk and last.

Per line class (bark: 2-4 words; medium: ~12 words; long: ~30 words), `--lines` lines x
`--rounds` rounds, every line new to both (a name in it changes each time: all cache misses),
the two sides alternating line by line (who goes first alternates too), a short pause between
them so one side's idle threads cannot steal the other's time. RTF = whole time / seconds of
audio delivered; also the whole line's time, voxhost / kokoro-onnx, on the same text (the two
trim and pause differently, so their audio lengths differ), and the process CPU per second of
audio (the other threads of this process idle meanwhile: a loaded machine disturbs it less than
wall time). Reports medians per class and voxhost / kokoro-onnx; `--profile` adds where
voxhost's own time goes (text front end and G2P, model calls, trimming, the rest: streaming,
encoding, HTTP), from timers around those calls in one more pass.

The peer is installed only in this benchmark's own environment, never in the product's
dependencies or lock: `pip install --target bench/.peers/kokoro-onnx-0.6.1`, constrained to the
product's numpy and onnxruntime (which shadow the copies pip puts there). The first run makes it.

Capacity (`--capacity N`, after the rounds above): each side in turn gets N clients at once, each
speaking the next line of one shared list (every class's lines, new names) until it is empty, so
the side is saturated as a busy server is; its time for the whole list, voxhost / kokoro-onnx, is
the capacity ratio (the same texts both sides). kokoro-onnx's N clients call Kokoro.create on
its one session from N threads, as a server wrapping it would; voxhost's are N HTTP streams to
the server, whose scheduler runs tts_concurrency syntheses at once and queues the rest (a
line that runs beside another is spoken without the early first-chunk cut: tts/service.py).

  .venv/bin/python bench/tts_vs_kokoro_onnx.py --lines 2 --rounds 3        # the issue's measurement
  .venv/bin/python bench/tts_vs_kokoro_onnx.py --lines 2 --rounds 3 --capacity 2   # and saturated
  .venv/bin/python bench/tts_vs_kokoro_onnx.py --profile --env VOXHOST_TTS_THREADS=1   # another setting

Writes bench/results/tts_vs_kokoro_onnx.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER = "kokoro-onnx==0.6.1"
PEER_DIR = HERE / ".peers" / "kokoro-onnx-0.6.1"
RATE = 24_000
NAMES = ["Aldric", "Brenna", "Corwin", "Dagny", "Edric", "Fenna", "Garrick", "Hilde", "Ivo", "Jorun",
         "Kael", "Liesel", "Marek", "Nessa", "Osric", "Petra", "Quill", "Rowan", "Sigrid", "Tamsin"]
LINES = {
    "bark (2-4 words)": ["Halt, {}!", "Over here, {}!", "Watch out, {}!", "Run, {}, run!"],
    "medium (~12 words)": ["{}, the market opens at dawn, so bring your coins early.",
                           "Keep your voice down, {}, the guards are listening tonight.",
                           "{} found the key under the third stone by the old well."],
    "long (~30 words)": [
        "The old bridge to the northern village collapsed during last night's storm, so the merchants have "
        "been taking the long road through the forest for {} days now.",
        "You owe the guild two hundred gold coins, and if the debt is not paid by Friday, {} will send the "
        "collectors to your door before the market opens.",
        "When the bells ring at midnight, {} will open the eastern gate, and every soldier in the city must be "
        "ready to march before the moon rises over the hills."],
}


def ensure_peer() -> None:
    """kokoro-onnx in its own directory, appended to sys.path (the product's packages win)."""
    if not (PEER_DIR / "kokoro_onnx").exists():
        print(f"installing {PEER} into {PEER_DIR} (this benchmark's own environment) ...", flush=True)
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as pins:
            from importlib.metadata import version

            pins.write(f"numpy=={version('numpy')}\nonnxruntime=={version('onnxruntime')}\n")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(PEER_DIR), "-c", pins.name,
                        PEER], check=True)
    sys.path.append(str(PEER_DIR))


def start_server(env: dict[str, str]):
    """The voxhost server in this process, as `voxhost serve` runs it, Kokoro only, no phrase cache."""
    import uvicorn
    from _ready import wait_ready

    from voxhost.api.app import create_app
    from voxhost.ops.settings import Settings

    overrides = {k.removeprefix("VOXHOST_").lower(): v for k, v in env.items()}
    settings = Settings(**{"stt_models": [], "tts_engines": ["kokoro"], "tts_cache_enabled": False,
                           "log_level": "warning", **overrides})
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    if not wait_ready(base, timeout=300):
        raise RuntimeError("voxhost did not become ready")
    return server, base, app.state.voxhost


def speech_seconds(audio: np.ndarray) -> float:
    """Seconds from the first to the last sound of a delivered line, by one rule for both sides
    (voxhost's own trim bounds: 1% of full scale, 30 ms kept each side). The two trim differently
    (voxhost at that threshold, kokoro-onnx at 60 dB below the peak), so RTF over the audio each
    delivers counts the silence one side keeps as the other's slowness; over this span it does not."""
    from voxhost.engines.tts.kokoro import _trim_bounds

    lo, hi = _trim_bounds(np.asarray(audio, np.float32))
    return (hi - lo) / RATE


def voxhost_line(client, base: str, text: str) -> dict:
    started = time.perf_counter()
    first, pcm = None, bytearray()
    body = {"model": "tts-1-hd", "voice": "am_onyx", "input": text, "response_format": "pcm"}
    with client.stream("POST", base + "/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - started
            pcm += chunk
    total = time.perf_counter() - started
    samples = np.frombuffer(bytes(pcm[: len(pcm) - len(pcm) % 2]), np.int16)
    audio = samples.size / RATE
    speech = speech_seconds(samples / 32768.0)
    return {"first_s": first, "total_s": total, "audio_s": audio, "rtf": total / audio,
            "speech_s": speech, "speech_rtf": total / speech}


def peer_line(kokoro, text: str) -> dict:
    async def run() -> dict:
        started = time.perf_counter()
        first, parts = None, []
        async for audio, _rate in kokoro.create_stream(text, "am_onyx", lang="en-us"):
            if first is None:
                first = time.perf_counter() - started
            parts.append(np.asarray(audio, np.float32).reshape(-1))
        total = time.perf_counter() - started
        whole = np.concatenate(parts)
        speech = speech_seconds(whole)
        return {"first_s": first, "total_s": total, "audio_s": whole.size / RATE, "rtf": total / (whole.size / RATE),
                "speech_s": speech, "speech_rtf": total / speech}

    return asyncio.run(run())


def peer_whole(kokoro, text: str) -> dict:
    """kokoro-onnx's plain `create` (thread-safe: one onnxruntime session, run from each client)."""
    audio, _rate = kokoro.create(text, "am_onyx", lang="en-us")
    audio = np.asarray(audio, np.float32).reshape(-1)
    return {"audio_s": audio.size / RATE, "speech_s": speech_seconds(audio)}


def voxhost_patient(client, base: str, text: str) -> dict:
    """voxhost_line as a game's client (the openai SDK) does it: a 429 (the server's admission by
    expected wait) is retried after its Retry-After; the refusals are counted."""
    import httpx

    refused = 0
    while True:
        try:
            return voxhost_line(client, base, text) | {"refused": refused}
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 429:
                raise
            refused += 1
            time.sleep(float(exc.response.headers.get("retry-after", "1")))


def saturate(speak, texts: list[str], clients: int) -> dict:
    """Every text spoken by `clients` threads at once, each taking the next: wall time, audio."""
    pending = list(reversed(texts))
    lock = threading.Lock()
    rows: list[dict] = []

    failed: list[BaseException] = []

    def client() -> None:
        try:
            take()
        except BaseException as exc:  # noqa: BLE001 - reported below, by the caller's assert
            failed.append(exc)

    def take() -> None:
        while True:
            with lock:
                if not pending:
                    return
                text = pending.pop()
            row = speak(text)
            with lock:
                rows.append(row)

    started, cpu = time.perf_counter(), time.process_time()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    audio, speech = sum(r["audio_s"] for r in rows), sum(r["speech_s"] for r in rows)
    assert not failed and len(rows) == len(texts), f"a client failed: {failed[:1]}"
    return {"wall_s": wall, "lines": len(rows), "audio_s": audio, "speech_s": speech,
            "rtf": wall / audio, "speech_rtf": wall / speech, "refused": sum(r.get("refused", 0) for r in rows),
            # This process's CPU: the side under test (server or session) and its clients; the other
            # side idles meanwhile. Per second of audio delivered: what the planner prices.
            "cpu_s": cpu, "cpu_per_audio_s": cpu / audio}


def report_capacity(capacity: dict) -> dict:
    rounds = capacity["rounds"]
    ratio = statistics.median(r["time_ratio"] for r in rounds)
    rtf = statistics.median(r["voxhost"]["rtf"] / r["kokoro-onnx"]["rtf"] for r in rounds)
    speech = statistics.median(r["voxhost"]["speech_rtf"] / r["kokoro-onnx"]["speech_rtf"] for r in rounds)
    print(f"\nCapacity, {capacity['clients']} clients at once per side ({len(rounds)} rounds of "
          f"{rounds[0]['voxhost']['lines']} lines, every class):\n")
    print("| round | voxhost s | kokoro-onnx s | same lines, voxhost / kokoro-onnx | RTF (audio delivered) "
          "voxhost / kokoro-onnx | RTF over the speech span | voxhost 429s (retried) |\n|---|---|---|---|---|---|---|")
    for i, r in enumerate(rounds, 1):
        v, k = r["voxhost"], r["kokoro-onnx"]
        print(f"| {i} | {v['wall_s']:.1f} | {k['wall_s']:.1f} | {r['time_ratio']:.2f}x | "
              f"{v['rtf'] / k['rtf']:.2f}x | {v['speech_rtf'] / k['speech_rtf']:.2f}x | {v['refused']} |")
    cpu = {side: statistics.median(r[side]["cpu_per_audio_s"] for r in rounds) for side in ("voxhost", "kokoro-onnx")}
    print(f"\nCPU s per second of audio delivered, saturated (median): voxhost {cpu['voxhost']:.3f}, "
          f"kokoro-onnx {cpu['kokoro-onnx']:.3f} (the planner's Kokoro figure: planner/inputs.py)")
    return {"time_ratio": ratio, "rtf_ratio": rtf, "speech_rtf_ratio": speech,
            "voxhost_cpu_per_audio_s": cpu["voxhost"], "kokoro_onnx_cpu_per_audio_s": cpu["kokoro-onnx"]}


class Timers:
    """Seconds spent in named calls (the profile pass)."""

    def __init__(self):
        self.spent: dict[str, float] = {}

    def wrap(self, name: str, fn):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - started
        return timed


@contextmanager
def profiled(state):
    """Timers around the Kokoro engine's front end, model calls and trimming."""
    from voxhost.engines.tts import kokoro as kokoro_module

    engine = state.services.tts_engines.engines["kokoro"]
    timers = Timers()
    saved = (kokoro_module.shared_g2p, kokoro_module._trim, engine._session)

    class Session:  # InferenceSession's attributes are read-only: a stand-in that times run()
        def __init__(self, session):
            self._session, self.run = session, timers.wrap("model calls (onnxruntime)", session.run)

        def __getattr__(self, name):
            return getattr(self._session, name)

    g2p = saved[0]
    kokoro_module.shared_g2p = lambda british: timers.wrap("G2P (text to phonemes)", g2p(british))
    kokoro_module._trim = timers.wrap("trimming", saved[1])
    engine._session = Session(saved[2])
    try:
        yield timers
    finally:
        kokoro_module.shared_g2p, kokoro_module._trim, engine._session = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=2, help="lines per class")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--env", action="append", default=[], help="a voxhost setting NAME=VALUE")
    parser.add_argument("--profile", action="store_true", help="also: where voxhost's time goes")
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between the two sides")
    parser.add_argument("--capacity", type=int, default=0, metavar="N",
                        help="also: N clients at once per side, every class's lines (0: off)")
    parser.add_argument("--capacity-rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "tts_vs_kokoro_onnx.json")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    ensure_peer()
    import httpx
    import onnxruntime

    from voxhost.engines.tts.kokoro import MODEL_FILE

    env = dict(e.split("=", 1) for e in args.env)
    server, base, state = start_server(env)
    import kokoro_onnx

    assert Path(onnxruntime.__file__).is_relative_to(Path(np.__file__).parents[1]), "two onnxruntimes loaded"
    engine = state.services.tts_engines.engines["kokoro"]
    with tempfile.TemporaryDirectory() as tmp:
        voices = Path(tmp) / "voices.npz"
        np.savez(voices, am_onyx=engine._styles["am_onyx"].reshape(-1, 1, 256))
        peer = kokoro_onnx.Kokoro(str(state.settings.models_dir / "kokoro" / MODEL_FILE), str(voices))
    client = httpx.Client(timeout=300)
    voxhost_line(client, base, "Warm up, traveler.")
    peer_line(peer, "Warm up, traveler.")
    options = engine._session.get_session_options()
    sides = {"voxhost": lambda text: voxhost_line(client, base, text), "kokoro-onnx": lambda text: peer_line(peer, text)}
    results: dict[str, dict[str, list[dict]]] = {cls: {side: [] for side in sides} for cls in LINES}
    loads, n = [os.getloadavg()[0]], 0
    for r in range(args.rounds):
        for cls, lines in LINES.items():
            for template in lines[: args.lines]:
                text = template.format(NAMES[n % len(NAMES)])
                n += 1
                order = list(sides) if n % 2 else list(sides)[::-1]
                for side in order:
                    cpu = time.process_time()
                    row = sides[side](text)
                    time.sleep(args.gap)  # what its threads do right after the line is its own CPU
                    row["cpu_s"] = time.process_time() - cpu
                    results[cls][side].append(row | {"text": text, "cpu_rtf": row["cpu_s"] / row["audio_s"]})
        loads.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.rounds} done, load {loads[-1]:.1f}", flush=True)
    capacity = None
    if args.capacity:
        capacity = {"clients": args.capacity, "rounds": []}
        peer_sides = {"voxhost": lambda text: voxhost_patient(client, base, text),
                      "kokoro-onnx": lambda text: peer_whole(peer, text)}
        for r in range(args.capacity_rounds):
            texts = []
            for lines in LINES.values():
                for template in lines:
                    texts.append(template.format(NAMES[n % len(NAMES)]))
                    n += 1
            order = list(peer_sides) if r % 2 == 0 else list(peer_sides)[::-1]
            row = {side: saturate(peer_sides[side], texts, args.capacity) for side in order}
            time.sleep(args.gap)
            row["time_ratio"] = row["voxhost"]["wall_s"] / row["kokoro-onnx"]["wall_s"]
            capacity["rounds"].append(row)
            print(f"capacity round {r + 1}/{args.capacity_rounds}: {len(texts)} lines, {args.capacity} clients, "
                  f"voxhost {row['voxhost']['wall_s']:.1f} s, kokoro-onnx {row['kokoro-onnx']['wall_s']:.1f} s "
                  f"({row['time_ratio']:.2f}x), load {os.getloadavg()[0]:.1f}", flush=True)
        loads.append(os.getloadavg()[0])
    profile = None
    if args.profile:
        with profiled(state) as timers:
            spent = {"whole requests": 0.0}
            for lines in LINES.values():
                for template in lines[: args.lines]:
                    text = template.format(NAMES[n % len(NAMES)])
                    n += 1
                    spent["whole requests"] += voxhost_line(client, base, text)["total_s"]
        profile = {**spent, **timers.spent}
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "unknown")
    summary = report(results, loads, cpu, options, state, profile)
    if capacity:
        capacity["summary"] = report_capacity(capacity)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "runs": results, "capacity": capacity,
                                    "profile": profile, "env": env,
                                    "loadavg": loads, "cpu": cpu, "cores": os.cpu_count(),
                                    "onnxruntime": onnxruntime.__version__, "peer": PEER}, indent=1))
    client.close()
    server.should_exit = True


def report(results, loads, cpu, options, state, profile) -> dict:
    import onnxruntime

    s = state.settings
    print(f"\nKokoro v1.0 int8, am_onyx, onnxruntime {onnxruntime.__version__}, {os.cpu_count()} cores ({cpu}), "
          f"load avg {min(loads):.1f}-{max(loads):.1f}")
    print(f"voxhost: intra-op threads {options.intra_op_num_threads}, arena "
          f"{'on' if options.enable_cpu_mem_arena else 'off'}, spinning "
          f"{options.get_session_config_entry('session.intra_op.allow_spinning')}, tts_concurrency "
          f"{s.tts_concurrency}, first chunk {s.tts_first_chunk_words} words\n")
    print("| line class | voxhost RTF | kokoro-onnx RTF | RTF voxhost / kokoro-onnx | RTF over the speech span, "
          "voxhost / kokoro-onnx | whole line, voxhost / kokoro-onnx | "
          "CPU per audio s, voxhost / kokoro-onnx | voxhost first byte ms | kokoro-onnx first byte ms | "
          "first byte voxhost / kokoro-onnx |\n|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for cls, sides in results.items():
        v, k = sides["voxhost"], sides["kokoro-onnx"]
        med = lambda rows, key: statistics.median(x[key] for x in rows)  # noqa: E731
        # Ratios line by line (the same moment's load on both), then the median.
        rtf_ratio = statistics.median(a["rtf"] / b["rtf"] for a, b in zip(v, k))
        speech_ratio = statistics.median(a["speech_rtf"] / b["speech_rtf"] for a, b in zip(v, k))
        first_ratio = statistics.median(a["first_s"] / b["first_s"] for a, b in zip(v, k))
        line_ratio = statistics.median(a["total_s"] / b["total_s"] for a, b in zip(v, k))
        cpu_ratio = statistics.median(a["cpu_rtf"] / b["cpu_rtf"] for a, b in zip(v, k))
        summary[cls] = {"voxhost_rtf": med(v, "rtf"), "kokoro_onnx_rtf": med(k, "rtf"), "rtf_ratio": rtf_ratio,
                        "speech_rtf_ratio": speech_ratio, "voxhost_speech_s": med(v, "speech_s"),
                        "kokoro_onnx_speech_s": med(k, "speech_s"),
                        "line_time_ratio": line_ratio, "cpu_rtf_ratio": cpu_ratio,
                        "voxhost_cpu_rtf": med(v, "cpu_rtf"), "kokoro_onnx_cpu_rtf": med(k, "cpu_rtf"),
                        "voxhost_audio_s": med(v, "audio_s"), "kokoro_onnx_audio_s": med(k, "audio_s"),
                        "voxhost_first_ms": 1000 * med(v, "first_s"), "kokoro_onnx_first_ms": 1000 * med(k, "first_s"),
                        "first_ratio": first_ratio, "lines": len(v)}
        row = summary[cls]
        print(f"| {cls} | {row['voxhost_rtf']:.3f} | {row['kokoro_onnx_rtf']:.3f} | {rtf_ratio:.2f}x | "
              f"{speech_ratio:.2f}x | {line_ratio:.2f}x | {cpu_ratio:.2f}x | "
              f"{row['voxhost_first_ms']:.0f} | {row['kokoro_onnx_first_ms']:.0f} | {first_ratio:.2f}x |")
    if profile:
        whole = profile.pop("whole requests")
        print(f"\nWhere voxhost's time goes (one more pass, {whole:.2f} s of whole requests):\n")
        print("| part | s | share |\n|---|---|---|")
        for name, spent in profile.items():
            print(f"| {name} | {spent:.3f} | {spent / whole:.0%} |")
        rest = whole - sum(profile.values())
        print(f"| the rest (front end's normalise and split, streaming, encoding, HTTP) | {rest:.3f} | "
              f"{rest / whole:.0%} |")
        profile["whole requests"] = whole
    return summary


if __name__ == "__main__":
    main()
