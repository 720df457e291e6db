"""Capacity of one server: live players, REST push-to-talk, NPC TTS, as production runs it.

The server runs as its own process, **unpinned, on all of the machine's cores** (as ECS runs
it; `--pin CORES` pins it with `taskset` instead, and every row then says so), with
`VOXHOST_STT_MODELS=simulated-gpu` (real VAD and mel features, a sleep for the GPU decode:
docs/benchmarks.md) so what is measured is the CPU work a GPU host's CPU carries. Clients run
in this process, never under the server's GIL (unpinned, they share the cores with it). Each
stage starts a fresh server, under `py-spy record` unless `--no-profile` (py-spy launches it:
attaching to a running process failed in this container with "Failed to find python version"),
so every stage has its own profile.

Per stage it reports the server's CPU seconds (/proc/<pid>/stat, after start-up),
CPU per unit (s per player-minute and % of one core per player, ms per REST request, s per
TTS stream-minute), p95 latency, whether it holds the goal (p95 < 1.5 s; TTS: first audio
< 1.5 s and synthesis faster than playback), the busiest threads of the server (per-thread
CPU from /proc/<pid>/task: an idle native pool that spins shows up as a thread doing no
Python work) and the CPU by component from py-spy's samples (the innermost frame that names
a component decides; idle threads are not sampled, so a sleeping "GPU" counts nothing).
Then the largest passing load per core.

`--baseline REV` runs every stage also on the source tree at a git ref (`git archive`), the
two sides alternating stage by stage, and prints after/before per stage: one command gives
before and after under the same machine load.

  python bench/capacity.py --live 16,64 --rest "" --tts "" --seconds 30 --baseline 3164650 --no-profile
  python bench/capacity.py --pin 0 --live 2,4,8 --rest 1,2,4 --tts 1,2 --mix 4:1:1 --seconds 20   # pinned

Results: bench/results/capacity.json (appended; `--json` elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from _machine import cpu_model  # bench/ is on sys.path when run as a script
from _ready import wait_ready  # bench/ is on sys.path when run as a script
from openai import AsyncOpenAI
from realtime_latency import LEAD, TAIL, free_port, playlist, run_session

from voxhost.evaluation.dataset import eval_dir, load_manifest

GOAL_S = 1.5
TTS_RATE = 24_000  # response_format=pcm: 24 kHz PCM16

# Innermost matching frame wins. Patterns match py-spy's "function (file:line)" frames.
COMPONENTS = [
    ("mel features", r"feature_extractor|pad_or_trim|engines/stt/features\.py"),
    ("VAD", r"/vad(_batch)?\.py|silero"),
    ("base64", r"base64"),
    ("resampling", r"realtime/audio\.py|resampl"),
    ("audio decoding (REST)", r"audio/decode\.py|/av/"),
    ("tokenizer and text", r"tokeniz|engines/tts/text\.py|phonem|misaki|g2p"),
    ("TTS", r"engines/tts/|tts/service\.py"),
    ("encoding", r"audio/encode|encode_"),
    ("WebSocket and JSON", r"websockets|wsproto|json|realtime/events|realtime/protocol"),
    ("HTTP and multipart", r"h11|httptools|multipart|starlette|fastapi|uvicorn/protocols/http"),
    ("event loop", r"asyncio|uvloop"),
]
NATIVE = "native threads (no Python frames)"  # e.g. onnxruntime's own thread pools
STARTUP = re.compile(r"create_app|_load_models|load_all|_find_and_load|warm_up|lifespan|import_module|<module>")
# The simulated GPU call is a sleep: no CPU, but py-spy's idle detection does not
# always see it, so its samples are dropped rather than counted as work.
GPU_SLEEP = re.compile(r"_decode \(voxhost/engines/stt/simulated\.py:\d+\)$")


def component(stack: str) -> str | None:
    """None for start-up frames (before the stage's clock starts) and the GPU sleep."""
    if STARTUP.search(stack) or GPU_SLEEP.search(stack):
        return None
    for frame in reversed(stack.split(";")):
        for name, pattern in COMPONENTS:
            if re.search(pattern, frame):
                return name
    return "other"


def breakdown(raw: Path) -> Counter:
    """Samples per component from py-spy's raw (collapsed) output."""
    counts: Counter = Counter()
    if not raw.exists():
        return counts
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        if not stack.strip():
            counts[NATIVE] += int(n)
        elif name := component(stack):
            counts[name] += int(n)
    return counts


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of `pid` (/proc/<pid>/task/<tid>/stat)."""
    out = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        out[int(task.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def busiest_threads(pid: int, before: dict[int, float], after: dict[int, float], top: int = 4) -> list[dict]:
    """The stage's busiest threads; the main thread (tid == pid) runs the event loop."""
    spent = sorted(((cpu - before.get(tid, 0.0), tid) for tid, cpu in after.items()), reverse=True)[:top]
    return [{"tid": tid, "main": tid == pid, "cpu_s": round(cpu, 2)} for cpu, tid in spent]


def cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its live descendants (VOXHOST_WORKERS > 1: the supervisor's workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children(pid))


def children(pid: int) -> list[int]:
    try:
        return [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                for c in (task / "children").read_text().split()]
    except OSError:  # exited meanwhile
        return []


# Set by the server itself at start (engines/threads.py); never inherited from this process's shell.
NATIVE_POOL_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS", "GOMP_SPINCOUNT")


@dataclass
class Server:
    cores: str | None  # None: unpinned, on every core (as production runs it)
    profile: Path | None  # None: no py-spy
    rate: int
    env: dict = field(default_factory=dict)
    workers: int = 1
    src: str | None = None  # a source tree's src/ (the baseline); None: this one

    def __enter__(self) -> Server:
        port = free_port()
        inherited = {k: v for k, v in os.environ.items() if k not in NATIVE_POOL_ENV}
        env = {**inherited, "VOXHOST_PORT": str(port), "VOXHOST_STT_MODELS": "simulated-gpu",
               "VOXHOST_TTS_ENGINES": "hibari", "VOXHOST_TTS_CACHE_ENABLED": "false",
               "VOXHOST_MAX_LIVE_SESSIONS": "1024", "VOXHOST_LOG_LEVEL": "warning",
               # Measure the work, not admission's refusals (settings a tree without them ignores).
               "VOXHOST_STT_WAIT_BUDGET_S": "0", "VOXHOST_TTS_WAIT_BUDGET_S": "0",
               "VOXHOST_WORKERS": str(self.workers), **self.env}
        if self.src:
            env["PYTHONPATH"] = self.src
        command = [sys.executable, "-m", "voxhost.cli.main", "serve"]
        if self.cores is not None:
            command = ["taskset", "-c", self.cores, *command]
        if self.profile is not None:
            command = [str(Path(sys.executable).parent / "py-spy"), "record", "--rate", str(self.rate), "--format",
                       "raw", "--nonblocking", "--subprocesses", "-o", str(self.profile), "--", *command]
        self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{port}"
        if not wait_ready(self.base, timeout=180):
            self.__exit__()
            raise RuntimeError("server did not become ready")
        self.pid = self._server_pid()
        return self

    def _server_pid(self) -> int:
        if self.profile is None:  # taskset execs the interpreter: the process is the server
            return self.proc.pid
        # py-spy's child (taskset execs the interpreter, so the child is the server).
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])

    def __exit__(self, *exc) -> None:
        try:
            os.kill(self._server_pid(), signal.SIGTERM)
        except (IndexError, OSError, AttributeError):
            self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def live(base: str, rows, players: int, seconds: float) -> dict:
    lists = [playlist(rows, seconds, i * 7) for i in range(players)]
    # A session the server drops (e.g. its keepalive ping timed out on an overloaded
    # host) is that stage's error, not the end of the whole run.
    results = await asyncio.gather(*(run_session(base, files) for files in lists), return_exceptions=True)
    sessions = [s for s in results if not isinstance(s, BaseException)]
    return {"latencies": [x for s in sessions for x in s["latencies"]],
            "errors": sum(s["errors"] for s in sessions) + len(results) - len(sessions),
            "turns": sum(s["turns"] for s in sessions),
            "audio_s": sum(r.duration + LEAD + TAIL for files in lists for r in files)}


async def rest(client: AsyncOpenAI, clips: list, rps: float, seconds: float) -> dict:
    """Push-to-talk: short clips at a fixed rate (open loop), whatever the answers' speed."""
    latencies, errors, audio_s = [], 0, 0.0

    async def one(clip) -> None:
        nonlocal errors, audio_s
        started = time.monotonic()
        audio_s += clip.duration
        try:
            await client.audio.transcriptions.create(
                model="whisper-1", file=(clip.audio.name, clip.audio.read_bytes()), response_format="json",
                language="en")
            latencies.append(time.monotonic() - started)
        except Exception:
            errors += 1

    tasks, start, n = [], time.monotonic(), 0
    while (due := start + n / rps) < start + seconds:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        tasks.append(asyncio.ensure_future(one(clips[n % len(clips)])))
        n += 1
    await asyncio.gather(*tasks)
    return {"latencies": latencies, "errors": errors, "requests": n, "audio_s": audio_s}


async def tts(client: AsyncOpenAI, sentences: list[str], streams: int, seconds: float) -> dict:
    """NPC lines: each stream asks for its next line when the last one has played."""
    first_audio, slow_lines, lines, errors = [], 0, 0, 0
    deadline = time.monotonic() + seconds

    async def stream(offset: int) -> None:
        nonlocal slow_lines, lines, errors
        n = offset
        while time.monotonic() < deadline:
            started, first, size = time.monotonic(), None, 0
            try:
                async with client.audio.speech.with_streaming_response.create(
                        model="tts-1", voice="alloy", input=sentences[n % len(sentences)],
                        response_format="pcm") as response:
                    async for chunk in response.iter_bytes():
                        first = first or time.monotonic()
                        size += len(chunk)
            except Exception:
                errors += 1
                await asyncio.sleep(0.5)
                continue
            played = size / 2 / TTS_RATE
            took = time.monotonic() - started
            first_audio.append((first or time.monotonic()) - started)
            slow_lines += took > played
            lines += 1
            n += 1
            await asyncio.sleep(max(0.0, played - took))

    await asyncio.gather(*(stream(i * 5) for i in range(streams)))
    return {"latencies": first_audio, "errors": errors, "lines": lines, "slow_lines": slow_lines}


def p95(values) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


async def run_stage(base: str, load: tuple[int, float, int], seconds: float, rows, clips, sentences):
    players, rps, streams = load
    client = AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0, timeout=120)
    jobs = {}
    if players:
        jobs["live"] = live(base, rows, players, seconds)
    if rps:
        jobs["rest"] = rest(client, clips, rps, seconds)
    if streams:
        jobs["tts"] = tts(client, sentences, streams, seconds)
    parts = dict(zip(jobs, await asyncio.gather(*jobs.values())))
    await client.close()
    return parts


def stage(args, kind: str, load: tuple[int, float, int], rows, clips, sentences, out_dir: Path,
          workers: int = 1, side: str = "this tree", src: str | None = None) -> dict:
    players, rps, streams = load
    profile = None if args.no_profile else \
        out_dir / f"{kind}-{players}-{rps:g}-{streams}-w{workers}-{side.replace(' ', '_')}.txt"
    with Server(args.pin, profile, args.rate, dict(e.split("=", 1) for e in args.env), workers, src) as server:
        # Not recorded: the first decodes of each window shape and the first TTS line.
        asyncio.run(run_stage(server.base, (min(players, 1), 0, min(streams, 1)), 4, rows, clips, sentences))
        threads0, cpu0, wall0 = thread_cpu(server.pid), cpu_seconds(server.pid), time.monotonic()
        load0 = os.getloadavg()[0]
        parts = asyncio.run(run_stage(server.base, load, args.seconds, rows, clips, sentences))
        wall, cpu = time.monotonic() - wall0, cpu_seconds(server.pid) - cpu0
        threads = busiest_threads(server.pid, threads0, thread_cpu(server.pid))
    samples = breakdown(profile) if profile else Counter()
    total = sum(samples.values()) or 1
    n_cores = len(parse_cores(args.pin)) if args.pin is not None else os.cpu_count()
    row = {"side": side, "kind": kind, "players": players, "workers": workers, "env": args.env, "rps": rps,
           "tts_streams": streams, "pinned": args.pin, "cores": args.pin if args.pin is not None else "all (unpinned)",
           "n_cores": n_cores, "wall_s": wall, "server_cpu_s": cpu,
           "cpu_percent_of_one_core": 100 * cpu / wall, "load_avg": os.getloadavg()[0], "load_avg_start": load0,
           "cpu_model": cpu_model(), "busiest_threads": threads,
           "breakdown": {k: v / total for k, v in samples.most_common()}}
    passed = True
    if "live" in parts:
        lat = parts["live"]["latencies"]
        row |= {"live_p95_s": p95(lat), "live_turns": len(lat), "live_errors": parts["live"]["errors"],
                "cpu_s_per_player_minute": cpu / (parts["live"]["audio_s"] / 60),
                "percent_of_one_core_per_player": 100 * cpu / parts["live"]["audio_s"]}
        passed &= bool(lat) and p95(lat) < GOAL_S and not parts["live"]["errors"]
    if "rest" in parts:
        lat = parts["rest"]["latencies"]
        row |= {"rest_p95_s": p95(lat), "rest_requests": parts["rest"]["requests"],
                "rest_errors": parts["rest"]["errors"], "cpu_ms_per_request": 1000 * cpu / parts["rest"]["requests"],
                "rest_audio_s_per_request": parts["rest"]["audio_s"] / parts["rest"]["requests"]}
        passed &= bool(lat) and p95(lat) < GOAL_S and not parts["rest"]["errors"]
    if "tts" in parts:
        t = parts["tts"]
        row |= {"tts_first_audio_p95_s": p95(t["latencies"]), "tts_lines": t["lines"],
                "tts_slow_lines": t["slow_lines"], "tts_errors": t["errors"],
                "cpu_s_per_stream_minute": cpu / (streams * wall / 60)}
        passed &= bool(t["lines"]) and p95(t["latencies"]) < GOAL_S and not t["errors"] \
            and t["slow_lines"] <= 0.05 * t["lines"]
    row["holds_goal"] = bool(passed)
    return row


def baseline_src(rev: str, into: str) -> str:
    """The src/ tree of git ref `rev`, extracted under `into`."""
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=Path(__file__).resolve().parent.parent, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", into], input=archive, check=True)
    return str(Path(into) / "src")


def parse_cores(spec: str) -> list[int]:
    cores = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        cores += list(range(int(a), int(b or a) + 1))
    return cores


def numbers(spec: str, kind=int) -> list:
    return [kind(x) for x in spec.split(",") if x]


def report(rows: list[dict]) -> None:
    where = {str(r["cores"]) for r in rows}
    print(f"\nServer cores: {', '.join(sorted(where))} ({rows[0]['cpu_model']}, {os.cpu_count()} cores)")
    print("\n| side | stage | workers | players | REST rps | TTS streams | server CPU (% of one core) | live p95 s | "
          "REST p95 s | TTS first audio p95 s | CPU s / player-min | % of a core per player | CPU ms / request | "
          "busiest threads, CPU s (main first if busiest) | holds | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda r, k, f: (f.format(r[k]) if k in r else "")  # noqa: E731
    for r in rows:
        threads = ", ".join(f"{t['cpu_s']:.1f}{' (main)' if t['main'] else ''}" for t in r.get("busiest_threads", [])[:3])
        print(f"| {r.get('side', '')} | {r['kind']} | {r.get('workers', 1)} | {r['players']} | {r['rps']:g} | "
              f"{r['tts_streams']} | {r['cpu_percent_of_one_core']:.0f}% | {fmt(r, 'live_p95_s', '{:.2f}')} | "
              f"{fmt(r, 'rest_p95_s', '{:.2f}')} | {fmt(r, 'tts_first_audio_p95_s', '{:.2f}')} | "
              f"{fmt(r, 'cpu_s_per_player_minute', '{:.2f}')} | {fmt(r, 'percent_of_one_core_per_player', '{:.2f}%')} | "
              f"{fmt(r, 'cpu_ms_per_request', '{:.0f}')} | {threads} | "
              f"{'yes' if r['holds_goal'] else 'no'} | {r['load_avg']:.1f} |")
    ratios(rows)
    if not any(r["breakdown"] for r in rows):
        return
    print("\nCPU by component (share of py-spy samples in the server, stage by stage):\n")
    names = [name for name, _ in COMPONENTS] + [NATIVE, "other"]
    print("| stage | " + " | ".join(names) + " |\n|---|" + "---|" * len(names))
    for r in rows:
        label = f"{r.get('side', '')} {r['kind']} {r['players']}/{r['rps']:g}/{r['tts_streams']} w{r.get('workers', 1)}"
        print(f"| {label} | " + " | ".join(f"{100 * r['breakdown'].get(n, 0):.0f}%" for n in names) + " |")
    for side, workers in sorted({(r.get("side", ""), r.get("workers", 1)) for r in rows}):
        for kind, unit, key in [("live", "players", "players"), ("rest", "REST rps", "rps"),
                                ("tts", "TTS streams", "tts_streams")]:
            ran = [r for r in rows if r["kind"] == kind and r.get("workers", 1) == workers and r.get("side", "") == side]
            held = [r for r in ran if r["holds_goal"]]
            if held:
                best = max(held, key=lambda r: r[key])
                print(f"\n{side}, {workers} worker(s): largest {unit} holding the goal on {best['n_cores']} core(s) "
                      f"({best['cores']}): {best[key]:g} ({best[key] / best['n_cores']:g} per core)")
            elif ran:
                print(f"\n{side}, {workers} worker(s), {unit}: no stage held the goal")


def ratios(rows: list[dict]) -> None:
    """after / before per stage, when a baseline ran beside this tree."""
    sides = list(dict.fromkeys(r.get("side", "") for r in rows))
    if len(sides) != 2:
        return
    before, after = sides
    print(f"\n| stage | CPU per unit, {after} / {before} |\n|---|---|")
    key = lambda r: (r["kind"], r["players"], r["rps"], r["tts_streams"], r.get("workers", 1))  # noqa: E731
    by = {(r.get("side", ""), key(r)): r for r in rows}
    for k in dict.fromkeys(key(r) for r in rows):
        a, b = by.get((after, k)), by.get((before, k))
        if not a or not b:
            continue
        unit = next((u for u in ("cpu_s_per_player_minute", "cpu_ms_per_request", "cpu_s_per_stream_minute")
                     if u in a and u in b), None)
        if unit:
            print(f"| {k[0]} {k[1]}/{k[2]:g}/{k[3]} w{k[4]} | {a[unit] / b[unit]:.2f}x ({unit}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pin", default=None, metavar="CORES",
                        help="pin the server with taskset to these cores (e.g. 0 or 0-3); default: unpinned, on all "
                             "cores, as production runs it")
    parser.add_argument("--cores", dest="pin", help=argparse.SUPPRESS)  # the old name of --pin
    parser.add_argument("--baseline", metavar="REV", help="also run every stage on this git ref's src/, alternating")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy (no CPU by component)")
    parser.add_argument("--live", default="2,4,8", help="live player counts, one stage each")
    parser.add_argument("--rest", default="1,2,4", help="REST push-to-talk requests per second")
    parser.add_argument("--tts", default="1,2", help="concurrent NPC TTS streams")
    parser.add_argument("--mix", default="", help="players:rps:streams together, e.g. 4:1:1 (several: comma)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each stage")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--profiles", type=Path, default=Path(tempfile.gettempdir()) / "voxhost-capacity",
                        help="py-spy's raw stacks, one file per stage")
    parser.add_argument("--env", action="append", default=[],
                        help="server setting NAME=VALUE, e.g. VOXHOST_STT_SIMULATED_CALL_MS=5 (the GPU decode time)")
    parser.add_argument("--workers", default="1",
                        help="VOXHOST_WORKERS values; each stage runs once per value, side by side (e.g. 1,2)")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent / "results" / "capacity.json",
                        help="append results here")
    args = parser.parse_args()

    rows = load_manifest(lang="en")
    clips = [r for r in rows if r.duration < 6][:24]  # push-to-talk: short clips
    sentences = [s.strip() for s in (eval_dir() / "tts_sentences.txt").read_text().splitlines()
                 if s.strip() and not s.startswith("#")]
    args.profiles.mkdir(parents=True, exist_ok=True)
    plan = ([("live", (n, 0.0, 0)) for n in numbers(args.live)]
            + [("rest", (0, r, 0)) for r in numbers(args.rest, float)]
            + [("tts", (0, 0.0, s)) for s in numbers(args.tts)]
            + [("mix", (int(p), float(r), int(s))) for p, r, s in (m.split(":") for m in numbers(args.mix, str))])
    tmp = tempfile.TemporaryDirectory()
    sides: list[tuple[str, str | None]] = [("this tree", None)]
    if args.baseline:
        sides = [(f"baseline {args.baseline}", baseline_src(args.baseline, tmp.name)), *sides]
    results = []
    for n, (kind, load) in enumerate(plan):
        for workers in numbers(args.workers):  # interleaved: both settings see the same machine load
            for side, src in (sides if n % 2 == 0 else sides[::-1]):  # and both trees, the order alternating
                results.append(stage(args, kind, load, rows, clips, sentences, args.profiles, workers, side, src))
                print(json.dumps({k: v for k, v in results[-1].items() if k != "breakdown"}), flush=True)
    report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(args.json.read_text()) if args.json.exists() else []
        args.json.write_text(json.dumps(previous + results, indent=1))


if __name__ == "__main__":
    main()
