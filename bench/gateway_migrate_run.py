"""A shadow run and its `voxhost migrate report`: tiny.en locally, base upstream.

    .venv/bin/python bench/gateway_migrate_run.py [--limit N] [--out DIR]

Starts an upstream `voxhost serve` (whisper-base) and a gateway (whisper-tiny.en,
VOXHOST_ROUTE_SHADOW_SHARE=1), sends the English eval clips through the
gateway with the openai SDK, waits for the shadow comparisons, then writes
the report (migration.md, migration.png) with `voxhost migrate report`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _gateway import SRC, upstream_and_gateway
from openai import OpenAI

from voxhost.evaluation.dataset import load_manifest


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--max-seconds", type=float, default=12.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/migration"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "shadow.jsonl"
    log.unlink(missing_ok=True)
    clips = [u for u in load_manifest(lang="en") if u.duration <= args.max_seconds][: args.limit]
    with upstream_and_gateway(route_local_share="0.1", route_shadow_share="1.0",
                              route_shadow_log=str(log.resolve()),
                              upstream_timeout_s="900") as (_, gateway):  # a shared CPU box is slow
        client = OpenAI(base_url=gateway + "/v1", api_key="unused", max_retries=0, timeout=300)
        for i, clip in enumerate(clips):
            with clip.audio.open("rb") as f:
                # Every request as a player the 10% share keeps local, so each is shadowed.
                client.audio.transcriptions.create(model="whisper-1", file=f, language="en",
                                                   extra_headers={"X-Player-Id": f"local-{_local_player(i)}"})
            print(f"{i + 1}/{len(clips)} {clip.audio.name}", flush=True)
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline and _lines(log) < len(clips):  # the last comparisons finish
            time.sleep(0.5)
    subprocess.run([sys.executable, "-m", "voxhost.cli.main", "migrate", "report", "--shadow-log", str(log),
                    "--out", str(args.out), "--current-share", "0.1", "--min-samples", str(min(50, len(clips)))],
                   env={"PYTHONPATH": str(SRC), "PATH": ""}, check=True)


def _lines(path: Path) -> int:
    return sum(1 for _ in path.open()) if path.exists() else 0


def _local_player(i: int) -> int:
    """The i-th player id whose sticky slot falls in the 10% local share."""
    from voxhost.api.gateway.policy import wants_local

    found, n = -1, 0
    while True:
        if wants_local(f"local-{n}", 0.1):
            found += 1
            if found == i:
                return n
        n += 1


if __name__ == "__main__":
    main()
