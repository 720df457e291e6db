"""The gateway when its upstream dies mid-load: without the circuit breaker and with it.

    .venv/bin/python bench/gateway_upstream_kill.py [--players 8] [--before 8] [--after 20]

One upstream `voxhost serve` (the cloud API's stand-in) and two gateways in front
of it, side by side in one run, both at VOXHOST_ROUTE_LOCAL_SHARE=0.5: one with
VOXHOST_UPSTREAM_BREAKER_FAILURES=0 (no breaker, no failover: what the gateway
did before), one with the defaults. Each gateway gets the same closed-loop REST
players (push-to-talk clips, plain httpx: no client retries, so every failure
is counted); after `--before` seconds the upstream is killed (SIGKILL), and the
load goes on for `--after` seconds; every answer that came after the kill counts. Then new live sessions for players whose
share says upstream. Prints the table and writes bench/results/gateway_upstream_kill.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from _gateway import SRC, free_port
from _machine import cpu_model
from _ready import wait_ready

from voxhost.api.gateway.policy import wants_local
from voxhost.evaluation.dataset import load_manifest

ROOT = Path(__file__).resolve().parents[1]


def start(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    full = {**os.environ, "PYTHONPATH": str(SRC), "VOXHOST_PORT": str(port), "VOXHOST_LOG_LEVEL": "error",
            "VOXHOST_STT_MODELS": "whisper-tiny.en", "VOXHOST_TTS_ENGINES": "hibari", **env}
    proc = subprocess.Popen([sys.executable, "-m", "voxhost.cli.main", "serve"], env=full,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


async def players(base: str, ids: list[str], clip: bytes, stop: asyncio.Event, out: list) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        async def one(player: str) -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    r = await client.post("/v1/audio/transcriptions", headers={"X-Player-Id": player},
                                          files={"file": ("clip.wav", clip, "audio/wav")},
                                          data={"model": "whisper-1", "language": "en"})
                    status, route = r.status_code, r.headers.get("x-voxhost-route", "")
                except httpx.HTTPError:
                    status, route = 0, ""
                out.append((started, time.monotonic() - started, player, status, route))
                await asyncio.sleep(0.05)
        await asyncio.gather(*(one(p) for p in ids))


async def new_sessions(base: str, ids: list[str]) -> list[tuple[str, int | None]]:
    """(X-Voxhost-Route, close code if the session was refused) per new live session."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    results = []
    for player in ids:
        url = base.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
        async with connect(url, additional_headers={"X-Player-Id": player}, open_timeout=30) as ws:
            route = ws.response.headers.get("x-voxhost-route", "")
            first = json.loads(await asyncio.wait_for(ws.recv(), 30))
            code = None
            if first["type"] == "error":
                try:
                    await asyncio.wait_for(ws.recv(), 10)
                except ConnectionClosed:
                    code = ws.close_code
        results.append((route, code))
    return results


async def run(args, gateways: dict[str, str], upstream: subprocess.Popen, clip: bytes) -> dict:
    upstream_ids = [p for p in (f"player-{i}" for i in range(1000)) if not wants_local(p, 0.5)]
    local_ids = [p for p in (f"player-{i}" for i in range(1000)) if wants_local(p, 0.5)]
    ids = [x for pair in zip(upstream_ids, local_ids) for x in pair][:args.players]
    stop = asyncio.Event()
    samples = {name: [] for name in gateways}
    load = [asyncio.create_task(players(url, ids, clip, stop, samples[name])) for name, url in gateways.items()]
    await asyncio.sleep(args.before)
    killed = time.monotonic()
    upstream.send_signal(signal.SIGKILL)
    await asyncio.sleep(args.after)
    stop.set()
    await asyncio.gather(*load)
    sessions = {name: await new_sessions(url, upstream_ids[100:104]) for name, url in gateways.items()}
    out = {}
    for name, rows in samples.items():
        after = [r for r in rows if r[0] + r[1] >= killed]  # answered after the kill
        up_after = [r for r in after if r[2] in upstream_ids]
        local_after = [r for r in after if r[2] in local_ids and r[3] == 200]
        out[name] = {
            "answers_after_kill": len(after),
            "upstream_share_answers_after_kill": len(up_after),
            "upstream_share_200": sum(r[3] == 200 for r in up_after),
            "upstream_share_5xx": sum(r[3] >= 500 for r in up_after),
            "upstream_share_502": sum(r[3] == 502 for r in up_after),
            "upstream_share_no_answer": sum(r[3] == 0 for r in up_after),
            "upstream_share_served_here": sum(r[4] == "failover" for r in up_after),
            "local_share_p50_ms": round(float(np.percentile([r[1] for r in local_after], 50)) * 1000)
            if local_after else None,
            "new_sessions_for_upstream_players": [{"route": r, "close_code": c} for r, c in sessions[name]],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--players", type=int, default=8, help="per gateway; half of them upstream-share")
    parser.add_argument("--before", type=float, default=8.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=30.0, help="seconds of load after it")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/gateway_upstream_kill.json")
    args = parser.parse_args()
    clip = next(u for u in load_manifest(lang="en") if u.audio.name == "lj_LJ001-0002.wav").audio.read_bytes()
    upstream, upstream_url = start({})
    procs = [upstream]
    try:
        if not wait_ready(upstream_url):
            raise SystemExit("upstream did not become ready")
        gateways = {}
        for name, failures in (("breaker off (before)", "0"), ("breaker on (after)", "3")):
            proc, url = start({"VOXHOST_UPSTREAM_URL": upstream_url + "/v1", "VOXHOST_ROUTE_LOCAL_SHARE": "0.5",
                               "VOXHOST_UPSTREAM_BREAKER_FAILURES": failures, "VOXHOST_UPSTREAM_TIMEOUT_S": "30"})
            procs.append(proc)
            if not wait_ready(url):
                raise SystemExit(f"gateway {name} did not become ready")
            gateways[name] = url
        results = asyncio.run(run(args, gateways, upstream, clip))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
    print("| gateway | upstream-share answers after the kill | 200 | 502 | other 5xx / no answer | "
          "served here (failover) | local players' p50 ms | new live sessions for upstream players |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        other = r["upstream_share_5xx"] - r["upstream_share_502"] + r["upstream_share_no_answer"]
        sessions = ", ".join(f"{s['route'] or '-'}{'/' + str(s['close_code']) if s['close_code'] else ''}"
                             for s in r["new_sessions_for_upstream_players"])
        print(f"| {name} | {r['upstream_share_answers_after_kill']} | {r['upstream_share_200']} | "
              f"{r['upstream_share_502']} | {other} | {r['upstream_share_served_here']} | "
              f"{r['local_share_p50_ms']} | {sessions} |")
    settings = {k: v for k, v in vars(args).items() if k != "out"}  # out is this file: no machine path in it
    args.out.write_text(json.dumps({"command": "python bench/gateway_upstream_kill.py", "args": settings, "cpu": cpu_model(),
                                    "loadavg": Path("/proc/loadavg").read_text().split()[:3], "results": results},
                                   indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
