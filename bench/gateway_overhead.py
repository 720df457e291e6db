"""What the migration gateway costs a player, side by side in one run.

    .venv/bin/python bench/gateway_overhead.py [--rounds N] [--shadow-rounds N]

Starts an upstream `voxhost serve` (whisper-base, hibari) and a gateway
(whisper-tiny.en) in front of it, as separate processes; the gateway's shares
come from a shares file this script rewrites (the live-reload path).

1. Proxy first byte: POST /v1/audio/speech of one line (a phrase-cache hit
   upstream, so the upstream answers at once and the difference is the
   proxy's), straight to the upstream and through the gateway (speech share
   0), alternated request by request. Goal: <= 5 ms added at p50.
2. Shadow on the response path: a local transcription (tiny.en) with the
   shadow share at 0 and at 1, alternated in blocks. Each shadow comparison
   is let finish before the next request, so CPU the upstream spends on this
   one machine doesn't count against the local side (in production the
   upstream is someone else's). Goal: ratio ~1.0.
Writes bench/results/gateway_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _gateway import upstream_and_gateway

from voxhost.evaluation.dataset import eval_dir

ROOT = Path(__file__).resolve().parents[1]
CLIP = eval_dir() / "audio" / "lj_LJ001-0002.wav"
LINE = {"model": "tts-1", "voice": "alloy", "input": "Halt! Who goes there?", "response_format": "pcm"}


def first_byte_s(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    with client.stream("POST", url, json=LINE) as response:
        chunks = response.iter_raw()
        next(chunks)
        elapsed = time.perf_counter() - started
        for _ in chunks:  # the rest, so the connection is reused
            pass
    assert response.status_code == 200, response.status_code
    return elapsed


def set_shares(path: Path, **shares) -> None:
    path.write_text(json.dumps(shares))
    time.sleep(1.3)  # the gateway re-reads the file at most once a second


def shadows_done(client: httpx.Client, gateway: str) -> float:
    text = client.get(gateway + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("voxhost_shadow_requests_total"))


def transcribe_s(client: httpx.Client, gateway: str) -> float:
    started = time.perf_counter()
    with CLIP.open("rb") as f:
        response = client.post(gateway + "/v1/audio/transcriptions", data={"model": "whisper-1"},
                               files={"file": (CLIP.name, f, "audio/wav")})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200 and response.headers["x-voxhost-route"] == "local", response.text
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--shadow-rounds", type=int, default=12)
    args = parser.parse_args()
    shares = Path(tempfile.mkdtemp()) / "shares.json"
    shares.write_text(json.dumps({"local_shares": {"speech": 0.0}, "shadow_share": 0.0}))
    load_before = os.getloadavg()
    with upstream_and_gateway(route_shares_file=str(shares)) as (upstream, gateway), \
            httpx.Client(timeout=300) as client:
        direct, proxied = [], []
        for url in (upstream, gateway):  # warm: the phrase cache, both connection pools
            first_byte_s(client, url + "/v1/audio/speech")
        for i in range(args.rounds):
            pair = [(direct, upstream), (proxied, gateway)]
            for out, base in (pair if i % 2 == 0 else pair[::-1]):
                out.append(first_byte_s(client, base + "/v1/audio/speech"))
        off, on = [], []
        transcribe_s(client, gateway)  # warm
        for block in range(args.shadow_rounds // 3):
            for share, out in ((0.0, off), (1.0, on)) if block % 2 == 0 else ((1.0, on), (0.0, off)):
                set_shares(shares, local_shares={"speech": 0.0}, shadow_share=share)
                for _ in range(3):
                    done = shadows_done(client, gateway)
                    out.append(transcribe_s(client, gateway))
                    deadline = time.monotonic() + 300
                    while share and shadows_done(client, gateway) <= done and time.monotonic() < deadline:
                        time.sleep(0.1)
    result = {
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "first_byte_direct_p50_ms": 1000 * statistics.median(direct),
        "first_byte_gateway_p50_ms": 1000 * statistics.median(proxied),
        "rounds": args.rounds,
        "local_stt_shadow_off_p50_s": statistics.median(off), "local_stt_shadow_on_p50_s": statistics.median(on),
        "shadow_requests_each": len(on),
    }
    result["first_byte_added_p50_ms"] = result["first_byte_gateway_p50_ms"] - result["first_byte_direct_p50_ms"]
    result["shadow_on_over_off"] = result["local_stt_shadow_on_p50_s"] / result["local_stt_shadow_off_p50_s"]
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / "gateway_overhead.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
