"""The fleet table: game traffic through HAProxy while instances are lost.

    .venv/bin/python bench/fleet_drills.py [--out bench/results/fleet.json]

Needs root (network namespaces, veth links) and HAProxy (scripts/system-deps.sh).
Runs the same drills as tests/fleet/test_fleet.py, on the same harness: three
`voxhost serve` instances (whisper-tiny.en, hibari, partials off), each in a
network namespace of its own, behind HAProxy set up like the ALB and balancing
by load; `voxhost loadtest` traffic (3 open-mic players, 2 REST push-to-talk
players, 1 NPC-line player; REST through the openai SDK, default retries)
while one instance is killed, one added, one cut off for 20 s, all restarted
in turn, and one spot-drained. Prints the table (docs/benchmarks.md, "Fleet
behind a load balancer") and writes its figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the harness lives with the test that uses it

from _machine import cpu_model  # noqa: E402
from fleet.drills import designed_voice_visible_s, run_drills, table  # noqa: E402
from fleet.harness import Fleet, missing_capability  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/fleet.json")
    args = parser.parse_args()
    missing = missing_capability()
    if missing:
        raise SystemExit(f"the fleet drills cannot run here: it {missing}")
    started = time.monotonic()
    with Fleet(size=3, spare=4) as fleet:
        print("fleet up; designed voice check ...", flush=True)
        visible_s = designed_voice_visible_s(fleet)
        print("drills (about 2.5 minutes) ...", flush=True)
        rows, raw = run_drills(fleet)
    print(table(rows))
    print(f"designed voice usable through another instance after {visible_s:.2f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python bench/fleet_drills.py", "cpu": cpu_model(), "machine": platform.machine(),
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3], "wall_s": round(time.monotonic() - started, 1),
        "designed_voice_visible_s": round(visible_s, 2), "rows": [asdict(r) for r in rows], **raw}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
