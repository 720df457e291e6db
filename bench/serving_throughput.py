"""Serving under load: cross-request batching on vs off, and latency under 3x overload.

Two real voxhost apps on real uvicorn servers share one loaded Whisper model;
one batches across requests, the other decodes one request at a time. Short
real clips (push-to-talk length) are posted concurrently over HTTP at each
concurrency level, alternating on/off per level so machine noise hits both
alike. Then the batching server, with a small admission bound, is offered
3x its capacity by closed-loop clients: we report the latency of accepted
requests next to the same at 1x, and the share shed with 429.

    PYTHONPATH=src python bench/serving_throughput.py --model whisper-tiny.en
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from voxhost.api.app import create_app
from voxhost.engines.stt.registry import SttRegistry
from voxhost.evaluation.dataset import load_manifest
from voxhost.ops.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, settings: Settings, registry: SttRegistry):
        app = create_app(settings, load_models=False)
        app.state.voxhost.stt = registry
        app.state.voxhost.ready.set()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        for _ in range(200):
            try:
                if httpx.get(self.url + "/ready").status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def post(url: str, clip: bytes, model: str) -> tuple[int, float]:
    start = time.perf_counter()
    r = httpx.post(url + "/v1/audio/transcriptions", files={"file": ("clip.wav", clip)},
                   data={"model": model, "language": "en"}, timeout=600)
    return r.status_code, time.perf_counter() - start


def throughput(url: str, clips: list[bytes], model: str, concurrency: int, requests: int) -> dict:
    work = [clips[i % len(clips)] for i in range(requests)]
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda c: post(url, c, model), work))
    wall = time.perf_counter() - start
    assert all(status == 200 for status, _ in results), results
    lat = [t for _, t in results]
    return {"rps": requests / wall, "p50_s": float(np.percentile(lat, 50)), "p95_s": float(np.percentile(lat, 95))}


def closed_loop(url: str, clips: list[bytes], model: str, clients: int, seconds: float) -> dict:
    """`clients` each send, wait, send again (a rejected one retries after 100 ms)."""
    end = time.perf_counter() + seconds
    statuses: list[int] = []
    accepted: list[float] = []
    lock = threading.Lock()

    def client(i: int):
        n = i
        while time.perf_counter() < end:
            status, t = post(url, clips[n % len(clips)], model)
            n += clients
            with lock:
                statuses.append(status)
                if status == 200:
                    accepted.append(t)
            if status != 200:
                time.sleep(0.1)

    with cf.ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return {
        "clients": clients, "sent": len(statuses), "ok": statuses.count(200), "rejected_429": statuses.count(429),
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
    parser.add_argument("--overload-seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/serving_throughput.json"))
    args = parser.parse_args()

    clips = [u.audio.read_bytes() for u in load_manifest(lang="en") if 1.0 <= u.duration <= 5.0][:16]
    base = Settings(stt_models=[args.model])
    registry = SttRegistry(base)
    registry.load(args.model)
    levels = [int(x) for x in args.levels.split(",")]
    rows = []
    on = base.model_copy(update={"stt_batching": True, "stt_max_batch_size": args.max_batch})
    off = base.model_copy(update={"stt_batching": False})
    with Server(on, registry) as batched, Server(off, registry) as single:
        post(batched.url, clips[0], args.model)  # warm both paths
        post(single.url, clips[0], args.model)
        for c in levels:
            n = max(8, 2 * c)
            b = throughput(batched.url, clips, args.model, c, n)
            s = throughput(single.url, clips, args.model, c, n)
            rows.append({"concurrency": c, "requests": n, "batched": b, "sequential": s, "ratio": b["rps"] / s["rps"]})
            print(f"c={c:2d}  batched {b['rps']:.2f} req/s  sequential {s['rps']:.2f} req/s  "
                  f"ratio {b['rps'] / s['rps']:.2f}x", flush=True)

    # Overload: capacity = one batch running + the admission bound queued.
    max_batch, queue = 4, 4
    capacity = max_batch + queue
    tight = base.model_copy(update={"stt_max_batch_size": max_batch, "queue_max_per_lane": queue})
    with Server(tight, registry) as srv:
        post(srv.url, clips[0], args.model)
        at_1x = closed_loop(srv.url, clips, args.model, capacity, args.overload_seconds)
        at_3x = closed_loop(srv.url, clips, args.model, 3 * capacity, args.overload_seconds)
        recovered = post(srv.url, clips[0], args.model)[0]
    for name, r in (("1x", at_1x), ("3x", at_3x)):
        print(f"{name}: {r['clients']} clients  ok {r['ok']}  429 {r['rejected_429']}  5xx {r['5xx']}  "
              f"accepted p50 {r['p50_s']:.2f}s p95 {r['p95_s']:.2f}s p99 {r['p99_s']:.2f}s", flush=True)
    print(f"after overload: {recovered}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "max_batch": args.max_batch, "throughput": rows,
                                    "overload": {"capacity": capacity, "1x": at_1x, "3x": at_3x,
                                                 "recovered_status": recovered},
                                    "cpu_count": __import__("os").cpu_count(),
                                    "loadavg": __import__("os").getloadavg()}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
