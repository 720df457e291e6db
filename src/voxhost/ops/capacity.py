"""How many live sessions one server process admits when VOXHOST_MAX_LIVE_SESSIONS is unset.

A live player costs CPU for the whole session, and past the CPU the server has, every
player's latency goes at once (docs/benchmarks.md "Players per core at the p95 limit"). So
the default admits what the measured CPU per player fits in this host's cores at the
planner's target utilisation, and refuses the rest with 1013, which a fleet reads as "full" (the LiveSessionCapacity gauge is this number).

- Decoded on a GPU: what a player costs the CPU outside the model (VAD, mel features,
  WebSocket and JSON), measured unpinned on all cores with bench/capacity.py. Nearly all of
  it runs under one process's GIL, on its event loop, so one process never gets more than
  about one core of it, however many the host has: more players need more processes
  (VOXHOST_WORKERS) or tasks.
- Decoded on the CPU (Whisper on the host's cores, the CPU image): the player's partials and
  finals are the cost, and the decodes run beside the event loop on every core.

The figures are inputs, like the prices in ops/cost.py; where they come from and how to
measure them again: docs/benchmarks.md "Live CPU per player, unpinned". The planner prices
live sessions with the same figure (planner/inputs.py).
"""

from __future__ import annotations

import math

# Cores one live player keeps busy, by where Whisper decodes (whisper-base for the CPU figure;
# a larger model on the CPU costs more and needs VOXHOST_MAX_LIVE_SESSIONS set).
LIVE_CORES_PER_PLAYER = {"cuda": 0.0079, "cpu": 0.45}
# Share of the budget live sessions may fill: the planner's target CPU utilisation, the headroom
# that keeps p95 latency inside the goal (and leaves REST and TTS some room).
TARGET_UTILISATION = 0.7
GIL_CORES = 1.0  # what one process's Python side can use, at most


def default_live_sessions(device: str, cores: int, workers: int = 1) -> int:
    """Live sessions per server process for a host with `cores` usable cores and `workers`
    processes sharing them; `device` is where the default STT engine decodes ('cuda' or 'cpu')."""
    per_process = cores / max(1, workers)
    if device == "cuda":
        budget = min(per_process, GIL_CORES) * TARGET_UTILISATION
    else:
        budget = per_process * TARGET_UTILISATION
    per_player = LIVE_CORES_PER_PLAYER["cuda" if device == "cuda" else "cpu"]
    return max(1, math.floor(budget / per_player))
