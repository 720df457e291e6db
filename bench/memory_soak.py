"""Memory soak: does the default server's resident memory stay flat under steady mixed traffic?

Starts the default server (`voxhost serve`, the path `make run` takes) and, for `--minutes`,
keeps a modest mix going: `--live` realtime sessions streaming English eval speech at real
time (voxhost.loadtest's client), one REST transcription of an eval clip every `--rest-every`
seconds, and one TTS request every `--tts-every` seconds rotating over engines and voices,
alternating a repeated line (a phrase-cache hit) with a line never seen before (a miss, which
synthesises). The server's VmRSS and VmHWM are sampled every `--sample-every` seconds.

    PYTHONPATH=src python bench/memory_soak.py                  # 30 minutes
    PYTHONPATH=src python bench/memory_soak.py --minutes 3      # a quick check of the tool

Writes a JSON series and a PNG plot (`--out`, without suffix), and prints a verdict: RSS at
minute `--from-minute` against the end, and the least-squares slope from then on in MB per
10 minutes. The phrase cache goes to a temporary directory, so each run starts cold and the
shared cache is left alone; its memory tier (64 MiB by default) is bounded, so cache misses
may add up to that much by design. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np
from _ready import wait_ready  # bench/ is on sys.path when run as a script
from realtime_latency import free_port

from voxhost.evaluation.dataset import eval_dir, load_manifest
from voxhost.loadtest.realtime_client import TERMINAL, load_pcm, stream

MIB = 1024 * 1024
MB_PER_MIB = MIB / 1e6
GOAL_MB = 800.0  # the goal, in decimal megabytes (762.9 MiB)
FLAT_MB_PER_10_MIN = 5.0  # below this slope (after warm-up) the series is called flat

# (model, voice): every default engine, several voices each (OpenAI names and engine voices).
TTS_VOICES = [("tts-1", "alloy"), ("tts-1", "nova"), ("tts-1-hd", "alloy"), ("tts-1-hd", "echo"),
              ("tts-1-hd", "fable"), ("piper", "alloy")]
FORMATS = ["mp3", "wav", "opus", "pcm"]


def server_memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


@dataclass
class Counts:
    live_finals: int = 0
    live_errors: int = 0
    rest_ok: int = 0
    rest_errors: int = 0
    tts_hits: int = 0
    tts_misses: int = 0
    tts_errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def error(self, kind: str, message: str) -> None:
        setattr(self, f"{kind}_errors", getattr(self, f"{kind}_errors") + 1)
        if len(self.error_samples) < 20:
            self.error_samples.append(f"{kind}: {message[:200]}")


def analyse(series: list[dict], from_minute: float = 5.0, idle: dict | None = None) -> dict:
    """Verdict on a series of {"minute", "rss_mib"} samples: RSS at `from_minute` and at the
    end, and the slope of a least-squares line through the samples from `from_minute` on,
    in MiB and MB per 10 minutes. Flat: the slope is under FLAT_MB_PER_10_MIN. The goal is
    read on the idle server after warm-up (`idle["after_warm_up_mib"]`) when given, as the
    issue states it; else on the last sample."""
    idle = idle or {}
    if not series:
        raise ValueError("no samples")
    later = [s for s in series if s["minute"] >= from_minute] or series[-1:]
    start = min(series, key=lambda s: abs(s["minute"] - from_minute))
    end = series[-1]
    slope = 0.0
    if len(later) >= 2 and later[-1]["minute"] > later[0]["minute"]:
        slope = float(np.polyfit([s["minute"] for s in later], [s["rss_mib"] for s in later], 1)[0]) * 10
    peak = max(s["rss_mib"] for s in series)
    return {
        "from_minute": start["minute"], "rss_from_mib": start["rss_mib"],
        "end_minute": end["minute"], "rss_end_mib": end["rss_mib"],
        "rss_end_mb": end["rss_mib"] * MB_PER_MIB, "peak_rss_mib": peak,
        "hwm_end_mib": end.get("hwm_mib"),
        "slope_mib_per_10min": slope, "slope_mb_per_10min": slope * MB_PER_MIB,
        "flat": abs(slope * MB_PER_MIB) < FLAT_MB_PER_10_MIN,
        "goal_read_on_mib": idle.get("after_warm_up_mib", end["rss_mib"]),
        "within_goal": idle.get("after_warm_up_mib", end["rss_mib"]) * MB_PER_MIB <= GOAL_MB,
        "idle_after_warm_up_mib": idle.get("after_warm_up_mib"),
        "idle_after_soak_mib": idle.get("after_soak_mib"),
    }


def verdict_text(v: dict) -> str:
    return (f"RSS {v['rss_from_mib']:.0f} MiB at minute {v['from_minute']:.1f}, "
            f"{v['rss_end_mib']:.0f} MiB ({v['rss_end_mb']:.0f} MB) at minute {v['end_minute']:.1f}; "
            f"peak {v['peak_rss_mib']:.0f} MiB; slope {v['slope_mib_per_10min']:+.1f} MiB "
            f"({v['slope_mb_per_10min']:+.1f} MB) per 10 minutes: "
            f"{'flat' if v['flat'] else 'NOT flat'} (|slope| < {FLAT_MB_PER_10_MIN:g} MB/10 min), "
            f"idle after warm-up {v['goal_read_on_mib']:.0f} MiB ({v['goal_read_on_mib'] * MB_PER_MIB:.0f} MB): "
            f"{'within' if v['within_goal'] else 'OVER'} the {GOAL_MB:.0f} MB goal"
            + (f"; idle after the soak {v['idle_after_soak_mib']:.0f} MiB" if v["idle_after_soak_mib"] else ""))


def plot(series: list[dict], v: dict, path: Path, title: str) -> None:
    from voxhost.plotting import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=90)
    minutes = [s["minute"] for s in series]
    ax.plot(minutes, [s["rss_mib"] for s in series], marker=".", label="VmRSS")
    ax.plot(minutes, [s["hwm_mib"] for s in series], linestyle="--", label="VmHWM (peak so far)")
    ax.axhline(GOAL_MB / MB_PER_MIB, color="red", linewidth=0.8, label=f"goal {GOAL_MB:.0f} MB")
    for key, marker, label in (("idle_after_warm_up_mib", "o", "idle, before the traffic"),
                               ("idle_after_soak_mib", "s", "idle, after the traffic")):
        if v.get(key):
            ax.plot([minutes[0] if marker == "o" else minutes[-1]], [v[key]], marker=marker, color="black",
                    linestyle="none", label=label)
    ax.set_xlabel("minutes since the server was ready")
    ax.set_ylabel("MiB")
    ax.set_title(title, fontsize=10)
    ax.text(0.01, 0.02, f"slope from minute {v['from_minute']:.0f}: {v['slope_mb_per_10min']:+.1f} MB / 10 min",
            transform=ax.transAxes, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


async def live_player(traffic: Traffic, stop: asyncio.Event, seed: int) -> None:
    """One player: one realtime session per clip, clips back to back at real time."""
    order = random.Random(seed)
    while not stop.is_set():
        await traffic.live(order.choice(traffic.live_pcms))


async def every(seconds: float, stop: asyncio.Event, action) -> None:
    for n in itertools.count():
        started = time.monotonic()
        await action(n)
        try:
            await asyncio.wait_for(stop.wait(), max(0.0, seconds - (time.monotonic() - started)))
            return
        except TimeoutError:
            pass


class Traffic:
    """The soak's requests; each call is one request, counted in `counts`."""

    def __init__(self, base: str, counts: Counts):
        english = [u for u in load_manifest("en") if u.duration <= 12]
        self.live_pcms = [load_pcm(u.audio) for u in english[:12]]
        self.rest_clips = [(u.audio.name, u.audio.read_bytes()) for u in english]
        self.lines = [line.strip() for line in (eval_dir() / "tts_sentences.txt").read_text().splitlines()
                      if line.strip()]
        self.client = httpx.AsyncClient(base_url=base, timeout=300)
        self.ws_url = base.replace("http", "ws", 1) + "/v1/realtime?intent=transcription"
        self.counts = counts

    async def live(self, pcm: bytes) -> None:
        try:
            result = await stream(self.ws_url, pcm, settle_timeout=60)
            self.counts.live_finals += sum(1 for t in result.ordered_turns if t.transcript is not None)
            # A failed turn (e.g. dropped when the server is behind real time) is a live error too.
            for e in [e for _, e in result.events if e["type"] in ("error", TERMINAL[1])]:
                self.counts.error("live", json.dumps(e))
        except Exception as exc:  # noqa: BLE001 - a soak counts failures and keeps going
            self.counts.error("live", repr(exc))
            await asyncio.sleep(1)

    async def rest(self, n: int) -> None:
        name, data = self.rest_clips[n % len(self.rest_clips)]
        try:
            r = await self.client.post("/v1/audio/transcriptions", files={"file": (name, data)},
                                       data={"model": "whisper-1", "response_format": "json"})
            r.raise_for_status()
            self.counts.rest_ok += 1
        except Exception as exc:  # noqa: BLE001
            self.counts.error("rest", repr(exc))

    async def tts(self, n: int) -> None:
        """Even n: one of two lines asked again and again per voice (cache hits after the first
        round). Odd n: a line the cache has never seen (a miss: synthesised, then stored)."""
        model, voice = TTS_VOICES[n % len(TTS_VOICES)]
        lines = self.lines
        if n % 2 == 0:
            text, fmt = lines[(n // len(TTS_VOICES)) % 2], "mp3"
        else:
            text, fmt = f"{lines[(n // 2) % len(lines)]} That makes {n} today.", FORMATS[(n // 2) % len(FORMATS)]
        try:
            async with self.client.stream("POST", "/v1/audio/speech", json={
                    "model": model, "voice": voice, "input": text, "response_format": fmt}) as r:
                r.raise_for_status()
                async for _ in r.aiter_bytes():
                    pass
            if r.headers.get("x-cache") == "hit":
                self.counts.tts_hits += 1
            else:
                self.counts.tts_misses += 1
        except Exception as exc:  # noqa: BLE001
            self.counts.error("tts", repr(exc))

    async def warm_up(self) -> None:
        """Every engine and voice once (Kokoro's British voice builds its G2P), a transcription
        and a live session: what a server has done after its first minutes of use."""
        await asyncio.gather(self.rest(0), self.live(self.live_pcms[0]),
                             *(self.tts(2 * i + 1) for i in range(len(TTS_VOICES))))


def start_traffic(traffic: Traffic, args, stop: asyncio.Event) -> list[asyncio.Task]:
    tasks = [asyncio.create_task(live_player(traffic, stop, seed=i)) for i in range(args.live)]
    tasks.append(asyncio.create_task(every(args.rest_every, stop, traffic.rest)))
    tasks.append(asyncio.create_task(every(args.tts_every, stop, traffic.tts)))
    return tasks


IDLE_WAIT_S = 25  # the server trims its heap within TRIM_INTERVAL_S (10 s) of going idle
AFTER_SOAK_SAMPLES = 6


async def idle_rss(pid: int) -> float:
    await asyncio.sleep(IDLE_WAIT_S)
    return server_memory(pid)[0]


async def soak(base: str, pid: int, args) -> tuple[list[dict], Counts, dict]:
    counts, stop, series = Counts(), asyncio.Event(), []
    traffic = Traffic(base, counts)
    idle = {"ready_mib": server_memory(pid)[0]}
    await traffic.warm_up()
    idle["after_warm_up_mib"] = await idle_rss(pid)
    print(f"after warm-up, idle: RSS {idle['after_warm_up_mib']:.0f} MiB "
          f"({idle['after_warm_up_mib'] * MB_PER_MIB:.0f} MB)", flush=True)
    tasks = start_traffic(traffic, args, stop)
    t0 = time.monotonic()
    end = t0 + args.minutes * 60
    while True:
        rss, hwm = server_memory(pid)
        minute = (time.monotonic() - t0) / 60
        sample = {"minute": round(minute, 2), "rss_mib": round(rss, 1), "hwm_mib": round(hwm, 1),
                  "load_1m": round(os.getloadavg()[0], 2),
                  **{k: v for k, v in asdict(counts).items() if k != "error_samples"}}
        series.append(sample)
        print(f"[{minute:5.1f} min] RSS {rss:.0f} MiB, HWM {hwm:.0f} MiB, load {sample['load_1m']}; "
              f"live finals {counts.live_finals} (errors {counts.live_errors}), REST {counts.rest_ok} "
              f"({counts.rest_errors}), TTS hit/miss {counts.tts_hits}/{counts.tts_misses} ({counts.tts_errors})",
              flush=True)
        if time.monotonic() >= end:
            break
        await asyncio.sleep(min(args.sample_every, max(0.0, end - time.monotonic())))
    stop.set()
    await asyncio.wait(tasks, timeout=120)  # requests in flight finish (a live clip settles)
    for task in tasks:
        task.cancel()
    await traffic.client.aclose()
    # Decodes a client gave up on still finish in their threads: sample until the server has
    # been quiet a while, and keep the last figure.
    idle["after_soak_samples_mib"] = [await idle_rss(pid) for _ in range(AFTER_SOAK_SAMPLES)]
    idle["after_soak_mib"] = idle["after_soak_samples_mib"][-1]
    idle["hwm_mib"] = server_memory(pid)[1]
    print(f"after the soak, idle: RSS {idle['after_soak_mib']:.0f} MiB", flush=True)
    return series, counts, idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--live", type=int, default=2, help="realtime sessions streaming at once")
    parser.add_argument("--rest-every", type=float, default=5.0, help="seconds between REST transcriptions")
    parser.add_argument("--tts-every", type=float, default=5.0, help="seconds between TTS requests")
    parser.add_argument("--sample-every", type=float, default=20.0, help="seconds between memory samples")
    parser.add_argument("--from-minute", type=float, default=5.0, help="the verdict's starting point")
    parser.add_argument("--out", type=Path, default=Path("bench/results/memory_soak"),
                        help="writes OUT.json and OUT.png")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="voxhost-soak-") as tmp:
        env = {**os.environ, "VOXHOST_PORT": str(port), "VOXHOST_TTS_CACHE_PATH": str(Path(tmp) / "tts")}
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            server = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve"], env=env,
                                      stdout=log, stderr=subprocess.STDOUT)
        try:
            started = time.monotonic()
            if not wait_ready(base, timeout=900):
                raise SystemExit(f"server not ready; its log:\n{log_path.read_text()[-3000:]}")
            print(f"server ready after {time.monotonic() - started:.0f} s", flush=True)
            series, counts, idle = asyncio.run(soak(base, server.pid, args))
        finally:
            server.terminate()
            server.wait(120)

    v = analyse(series, args.from_minute, idle)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path, png_path = args.out.with_suffix(".json"), args.out.with_suffix(".png")
    json_path.write_text(json.dumps({
        "command": " ".join(sys.argv), "idle": idle, "verdict": v,
        "errors": counts.error_samples, "series": series}, indent=1))
    title = (f"voxhost serve (defaults), {args.live} live + REST/{args.rest_every:g}s + TTS/{args.tts_every:g}s, "
             f"{args.minutes:g} min")
    plot(series, v, png_path, title)
    print(f"\n{verdict_text(v)}\nerrors: live {counts.live_errors}, REST {counts.rest_errors}, "
          f"TTS {counts.tts_errors}\nwrote {json_path} and {png_path}")
    print("\n| minute | RSS MiB | VmHWM MiB | load |\n|---|---|---|---|")
    for s in series[:: max(1, len(series) // 12)] + ([series[-1]] if len(series) > 12 else []):
        print(f"| {s['minute']:.1f} | {s['rss_mib']:.0f} | {s['hwm_mib']:.0f} | {s['load_1m']} |")


if __name__ == "__main__":
    main()
