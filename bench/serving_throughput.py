"""Serving under load: cross-request batching on vs off, and latency under 3x overload.

Two real `voxhost serve` processes with the same model: one batches across
requests, the other decodes one request at a time (the clients run in this
process, so they never share a GIL or event loop with a server). Short
real clips (push-to-talk length) are posted concurrently over HTTP at each
concurrency level, alternating on/off per level so machine noise hits both
alike. Then the batching server, with a small admission bound, is offered
3x its capacity by closed-loop clients: we report the latency of accepted
requests next to the same at 1x, and the share shed with 429.

    PYTHONPATH=src python bench/serving_throughput.py --model whisper-tiny.en

`--compare` instead runs several servers configured differently side by side on the
REST short-clip workload (the first 24 English clips under 6 s, each posted once per
pass, json): audio-seconds per second at each concurrency, as a ratio to the first
server, interleaved per round (the order rotates) and the median over rounds.

    PYTHONPATH=src:bench python bench/serving_throughput.py --model whisper-base --levels 1,4,8 \
        --compare "today=;text=stt_text_only=true;two=stt_num_workers=2,stt_cpu_threads=1"
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from _ready import wait_ready  # bench/ is on sys.path when run as a script
import numpy as np

from voxhost.evaluation.dataset import load_manifest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`voxhost serve` in a subprocess, configured through VOXHOST_* env."""

    def __init__(self, model: str, **env: object):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "VOXHOST_LOG_LEVEL": "warning",
                    **{f"VOXHOST_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                       for k, v in env.items()}}
        self.cmd = [sys.executable, "-m", "voxhost.cli.main", "serve", "--port", str(self.port), "--stt-model", model]

    def __enter__(self):
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if wait_ready(self.url, timeout=120, interval=0.1):
            return self
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(60)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux): robust to other load on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post(url: str, clip: bytes, model: str, retry_after: list | None = None) -> tuple[int, float]:
    start = time.perf_counter()
    r = httpx.post(url + "/v1/audio/transcriptions", files={"file": ("clip.wav", clip)},
                   data={"model": model, "language": "en"}, timeout=600)
    if retry_after is not None:
        retry_after.append(float(r.headers.get("retry-after", 1)))
    return r.status_code, time.perf_counter() - start


def throughput(srv: "Server", clips: list[bytes], model: str, concurrency: int, requests: int,
               durations: list[float] | None = None) -> dict:
    """`durations` (seconds per clip): also audio-seconds answered (200) per second."""
    url = srv.url
    work = [clips[i % len(clips)] for i in range(requests)]
    cpu0 = cpu_seconds(srv.proc.pid)
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda c: post(url, c, model), work))
    wall = time.perf_counter() - start
    cpu = cpu_seconds(srv.proc.pid) - cpu0
    lat = [t for status, t in results if status == 200]
    return {"rps": len(lat) / wall, "not_200": [status for status, _ in results if status != 200], "p50_s": float(np.percentile(lat, 50)), "p95_s": float(np.percentile(lat, 95)),
            "cpu_s_per_request": cpu / requests,
            **({"audio_s_per_s": sum(durations[i % len(clips)] for i, (status, _) in enumerate(results)
                                     if status == 200) / wall} if durations else {})}


def closed_loop(url: str, clips: list[bytes], model: str, clients: int, seconds: float, polite: bool) -> dict:
    """`clients` each send, wait, send again. A rejected one retries after
    Retry-After (polite, as the OpenAI SDK does) or after 250 ms (impatient)."""
    end = time.perf_counter() + seconds
    statuses: list[int] = []
    accepted: list[float] = []
    lock = threading.Lock()

    def client(i: int):
        n = i
        while time.perf_counter() < end:
            hint: list = []
            status, t = post(url, clips[n % len(clips)], model, hint)
            n += clients
            with lock:
                statuses.append(status)
                if status == 200:
                    accepted.append(t)
            if status != 200:
                time.sleep(hint[0] if polite else 0.25)

    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return {
        "clients": clients, "polite": polite, "sent": len(statuses), "ok": statuses.count(200), "rejected_429": statuses.count(429),
        "5xx": sum(s >= 500 for s in statuses), "other": sum(s not in (200, 429) and s < 500 for s in statuses),
        "ok_rps": statuses.count(200) / seconds,
        "p50_s": float(np.percentile(accepted, 50)), "p95_s": float(np.percentile(accepted, 95)),
        "p99_s": float(np.percentile(accepted, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="whisper-tiny.en")
    parser.add_argument("--levels", default="1,4,8,16")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--overload-seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="Repeat each level, alternating on/off; median.")
    parser.add_argument("--out", type=Path, default=Path("bench/results/serving_throughput.json"))
    parser.add_argument("--compare", help="name=setting=value,...;name=... : servers to compare (VOXHOST_* "
                                          "settings without the prefix); the first is the reference")
    parser.add_argument("--clips", type=int, default=24, help="with --compare: the first N English clips < 6 s")
    args = parser.parse_args()
    if args.compare:
        return compare(args)

    clips = [u.audio.read_bytes() for u in load_manifest(lang="en") if 1.0 <= u.duration <= 5.0][:16]
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    rows = []
    if levels:
        throughput_levels(args, clips, levels, rows)
    overload(args, clips, rows)


def throughput_levels(args, clips, levels, rows) -> None:
    with Server(args.model, stt_batching=True, stt_max_batch_size=args.max_batch) as batched, \
            Server(args.model, stt_batching=False) as single:
        post(batched.url, clips[0], args.model)  # warm both paths
        post(single.url, clips[0], args.model)
        for c in levels:
            n = max(8, 2 * c)
            runs = []
            for r in range(args.rounds):  # alternate which goes first: machine noise hits both
                pair = [("b", batched), ("s", single)] if r % 2 == 0 else [("s", single), ("b", batched)]
                runs.append({k: throughput(srv, clips, args.model, c, n) for k, srv in pair})
            b = {k: float(np.median([run["b"][k] for run in runs])) for k in runs[0]["b"] if k != "not_200"}
            s = {k: float(np.median([run["s"][k] for run in runs])) for k in runs[0]["s"] if k != "not_200"}
            b["not_200"] = sum(len(run["b"]["not_200"]) for run in runs)
            s["not_200"] = sum(len(run["s"]["not_200"]) for run in runs)
            rows.append({"concurrency": c, "requests": n, "rounds": args.rounds, "batched": b, "sequential": s,
                         "ratio": b["rps"] / s["rps"],
                         "cpu_ratio": s["cpu_s_per_request"] / b["cpu_s_per_request"]})
            print(f"c={c:2d}  batched {b['rps']:.2f} req/s p50 {b['p50_s']:.2f}s cpu/req {b['cpu_s_per_request']:.3f}s"
                  f"  sequential {s['rps']:.2f} req/s p50 {s['p50_s']:.2f}s cpu/req {s['cpu_s_per_request']:.3f}s"
                  f"  ratio {b['rps'] / s['rps']:.2f}x (cpu {s['cpu_s_per_request'] / b['cpu_s_per_request']:.2f}x)",
                  flush=True)



def parse_configs(spec: str) -> dict[str, dict[str, str]]:
    """"a=;b=stt_text_only=true,stt_beam_size=1" -> {"a": {}, "b": {...}}."""
    configs = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, _, settings = part.partition("=")
        configs[name] = dict(kv.split("=", 1) for kv in settings.split(",") if kv)
    return configs


def compare(args) -> None:
    configs = parse_configs(args.compare)
    rows_ = [u for u in load_manifest(lang="en") if u.duration < 6.0][: args.clips]
    clips = [u.audio.read_bytes() for u in rows_]
    audio_s = sum(u.duration for u in rows_)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    names = list(configs)
    with contextlib.ExitStack() as stack:
        servers = {}
        for name in names:  # one at a time: loading is CPU-bound too
            servers[name] = stack.enter_context(Server(args.model, **configs[name]))
        for srv in servers.values():
            for clip in clips[:2]:
                post(srv.url, clip, args.model)  # warm up
        result = {"model": args.model, "clips": len(clips), "audio_s": audio_s, "configs": configs,
                  "levels": {}, "loadavg": []}
        for c in levels:
            runs: dict[str, list[dict]] = {name: [] for name in names}
            for r in range(args.rounds):
                order = names[r % len(names):] + names[: r % len(names)]  # rotate who goes first
                for name in order:
                    runs[name].append(throughput(servers[name], clips, args.model, c, len(clips),
                                                 [u.duration for u in rows_]))
                result["loadavg"].append(os.getloadavg()[0])
            med = {name: {k: float(np.median([run[k] for run in runs[name]]))
                          for k in ("audio_s_per_s", "p50_s", "p95_s", "cpu_s_per_request")} for name in names}
            # Ratio per round (both measured under the same moment's load), then the median.
            ratio = {name: float(np.median([a["audio_s_per_s"] / b["audio_s_per_s"]
                                            for a, b in zip(runs[name], runs[names[0]])])) for name in names}
            errors = {name: sum(len(run["not_200"]) for run in runs[name]) for name in names}
            result["levels"][c] = {"median": med, "ratio": ratio, "not_200": errors}
            print(f"c={c}  load {os.getloadavg()[0]:.1f}  " + "  ".join(
                f"{name} {med[name]['audio_s_per_s']:.2f} audio-s/s ({ratio[name]:.2f}x, p95 {med[name]['p95_s']:.1f}s"
                f"{', %d not 200' % errors[name] if errors[name] else ''})" for name in names), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))


def overload(args, clips, rows) -> None:
    # Overload: capacity = one batch running + the admission bound queued.
    max_batch, queue = 4, 4
    capacity = max_batch + queue
    with Server(args.model, stt_batching=True, stt_max_batch_size=max_batch, queue_max_per_lane=queue) as srv:
        post(srv.url, clips[0], args.model)
        at_1x = closed_loop(srv.url, clips, args.model, capacity, args.overload_seconds, polite=True)
        at_3x = closed_loop(srv.url, clips, args.model, 3 * capacity, args.overload_seconds, polite=True)
        at_3x_rude = closed_loop(srv.url, clips, args.model, 3 * capacity, args.overload_seconds, polite=False)
        recovered = post(srv.url, clips[0], args.model)[0]
    for name, r in (("1x", at_1x), ("3x polite", at_3x), ("3x impatient", at_3x_rude)):
        print(f"{name}: {r['clients']} clients  ok {r['ok']} ({r['ok_rps']:.2f}/s)  429 {r['rejected_429']}  "
              f"5xx {r['5xx']}  "
              f"accepted p50 {r['p50_s']:.2f}s p95 {r['p95_s']:.2f}s p99 {r['p99_s']:.2f}s", flush=True)
    print(f"after overload: {recovered}")
    if not rows and args.out.exists():  # overload-only run: keep the throughput rows on file
        rows.extend(json.loads(args.out.read_text()).get("throughput", []))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "max_batch": args.max_batch, "throughput": rows,
                                    "overload": {"capacity": capacity, "1x": at_1x, "3x": at_3x, "3x_impatient": at_3x_rude,
                                                 "recovered_status": recovered},
                                    "cpu_count": __import__("os").cpu_count(),
                                    "loadavg": __import__("os").getloadavg()}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
