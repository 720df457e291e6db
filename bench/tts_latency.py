"""TTS latency: time to first audio byte over HTTP vs the raw engine's first chunk.

One run, per engine, side by side:
  raw   first PCM chunk from engine.stream() in this process (same text chunks)
  http  first body byte of POST /v1/audio/speech from a real server process
        (cache miss: each trial's line is new to the cache)
  hit   the same request again: first byte and whole body from the phrase cache
  RTF   synthesis seconds / audio seconds for an NPC paragraph (raw engine)
and the server's peak memory (VmHWM) with every engine loaded.

    PYTHONPATH=src python bench/tts_latency.py [--trials 10] [--formats mp3,pcm]

Goals: HTTP adds under 10 ms to the first byte; a cache hit starts in under 5 ms.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _ready import wait_ready  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from voxhost.engines.tts import text as frontend  # noqa: E402
from voxhost.ops.settings import Settings  # noqa: E402
from voxhost.services import build_services  # noqa: E402

NAMES = ["Aldric", "Brenna", "Corwin", "Dagny", "Edric", "Fenna", "Garrick", "Hilde", "Ivo", "Jorun",
         "Kael", "Liesel", "Marek", "Nessa", "Osric", "Petra", "Quill", "Rowan", "Sigrid", "Tamsin"]
PARAGRAPH = (
    "Welcome back, traveler. The old bridge to the northern village collapsed during last night's storm. "
    "You owe the guild 250 gold coins, and the debt is due by Friday. Meet me at the tavern at 9 o'clock, "
    "and bring the map. Three goblins were seen near the mill, two hours ago."
)


def bark(i: int) -> str:
    return f"Halt, {NAMES[i % len(NAMES)]}! Nobody passes the gate after sunset."


def rss_mb(pid: int | str = "self", field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(cache_dir: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    """A `voxhost serve` process; `settings` are extra VOXHOST_* variables (tts_engines="kokoro")."""
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(ROOT / "src"), "VOXHOST_TTS_CACHE_PATH": str(cache_dir),
                        "VOXHOST_LOG_LEVEL": "warning"} | {f"VOXHOST_{k.upper()}": v for k, v in settings.items()}
    proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    if wait_ready(url):
        return proc, url
    proc.kill()
    raise RuntimeError("server did not become ready")


def server_timing(header: str) -> dict[str, float]:
    """Server-Timing 'queue;dur=0.1, engine;dur=12.3, ...' -> seconds by name."""
    out = {}
    for part in filter(None, (p.strip() for p in header.split(","))):
        name, _, dur = part.partition(";dur=")
        out[name] = float(dur) / 1000
    return out


def http_first_byte(client: httpx.Client, url: str, body: dict) -> tuple[float, float, str, dict]:
    """(seconds to first body byte, seconds to last, X-Cache, server timing of the first chunk)."""
    start = time.perf_counter()
    with client.stream("POST", url + "/v1/audio/speech", json=body) as response:
        response.raise_for_status()
        first = None
        for chunk in response.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - start
        return (first, time.perf_counter() - start, response.headers["x-cache"],
                server_timing(response.headers.get("server-timing", "")))


def raw_first_chunk(engine, voice, text: str) -> float:
    chunks = frontend.split(frontend.prepare(text))
    start = time.perf_counter()
    stream = engine.stream(chunks, voice, 1.0)
    next(stream)
    elapsed = time.perf_counter() - start
    stream.close()
    return elapsed


def rtf(engine, voice) -> tuple[float, float]:
    chunks = frontend.split(frontend.prepare(PARAGRAPH))
    start = time.perf_counter()
    samples = sum(pcm.size for pcm in engine.stream(chunks, voice, 1.0))
    elapsed = time.perf_counter() - start
    audio = samples / engine.sample_rate
    return elapsed / audio, audio


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--formats", default="mp3,pcm")
    parser.add_argument("--engines", default="hibari,kokoro,piper")
    args = parser.parse_args()
    engines = args.engines.split(",")
    formats = args.formats.split(",")

    load_before = f"{os.getloadavg()[0]:.1f}"
    settings = Settings(tts_engines=engines)
    before = rss_mb()
    registry = build_services(settings).tts_engines
    registry.load_all()
    tts_mb = rss_mb() - before

    with tempfile.TemporaryDirectory() as cache_dir:
        proc, url = start_server(Path(cache_dir))
        try:
            rows = []
            with httpx.Client(timeout=120) as client:
                http_first_byte(client, url, {"model": "tts-1", "voice": "alloy", "input": "Warm up."})
                offset = 0
                for name in engines:
                    engine = registry.engines[name]
                    voice = engine.resolve_voice(engine.default_voice)
                    for fmt in formats:
                        raw, http, same, hit_first, hit_all = [], [], [], [], []
                        for i in range(args.trials):
                            # Alternate so both sides see the same machine load; fresh line per trial.
                            text = bark(offset + i)
                            raw.append(raw_first_chunk(engine, voice, text))
                            body = {"model": name, "voice": engine.default_voice, "input": text,
                                    "response_format": fmt}
                            first, _, cache, timing = http_first_byte(client, url, body)
                            assert cache == "miss", "bench lines must be new to the cache"
                            http.append(first)
                            same.append(first - timing["engine"])  # all but the engine, same request
                            first, total, cache, _ = http_first_byte(client, url, body)
                            assert cache == "hit"
                            hit_first.append(first)
                            hit_all.append(total)
                        offset += args.trials
                        rows.append((name, fmt, statistics.median(raw), statistics.median(http),
                                     statistics.median(same), min(same), statistics.median(hit_first),
                                     min(hit_first), statistics.median(hit_all)))
            server_peak = rss_mb(proc.pid, "VmHWM")
        finally:
            proc.terminate()
            proc.wait(30)

    print(f"\nTTS latency, median (and best) of {args.trials} lines per row ({os.cpu_count()} CPUs, "
          f"tts_threads={settings.tts_threads}, load average {load_before} before, {os.getloadavg()[0]:.1f} after)\n")
    print("| engine | format | raw engine first chunk ms | HTTP first byte ms | HTTP/raw | "
          "HTTP adds ms (same request) | best | cache hit first byte ms | best | cache hit full body ms | hit/miss |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, fmt, raw, http, same, same_best, hit_first, hit_best, hit_all in rows:
        print(f"| {name} | {fmt} | {ms(raw)} | {ms(http)} | {http / raw:.2f} | {ms(same)} | {ms(same_best)} | "
              f"{ms(hit_first)} | {ms(hit_best)} | {ms(hit_all)} | {hit_first / http:.3f} |")
    print("\nHTTP adds (same request) = client's first byte minus the engine's first-chunk time that the")
    print("server reports for that very request (Server-Timing): queueing, text handling, stitching,")
    print("encoding, HTTP and the network stack, with the load both sides saw.")
    print("\n| engine | real-time factor (synthesis s / audio s) | paragraph audio s |")
    print("|---|---|---|")
    for name in engines:
        engine = registry.engines[name]
        factor, audio = rtf(engine, engine.resolve_voice(engine.default_voice))
        print(f"| {name} | {factor:.3f} ({1 / factor:.1f}x real time) | {audio:.1f} |")
    print(f"\nPeak memory: server with every engine loaded (Whisper base + tiny.en + {', '.join(engines)}): "
          f"{server_peak:.0f} MB VmHWM; the TTS engines alone add {tts_mb:.0f} MB RSS.")


if __name__ == "__main__":
    main()
