"""PNG: monthly cost against players, cloud API against self-hosted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxhost.planner.inputs import PlanInputs
from voxhost.planner.model import tier
from voxhost.plotting import pyplot


def break_even_players(inputs: PlanInputs, self_cost: str = "on_demand", lo: int = 1, hi: int = 100_000) -> int | None:
    """Fewest players at which self-hosting costs less per month than the cloud API."""
    def cheaper(n: int) -> bool:
        t = tier(inputs, n, one_time=0.0)  # monthly figures only
        return getattr(t.self_hosted, self_cost) < t.cloud

    if not cheaper(hi):
        return None
    # Not strictly monotone (GPU steps), so scan coarsely then refine.
    grid = np.unique(np.geomspace(lo, hi, 400).astype(int))
    first = next(int(n) for n in grid if cheaper(int(n)))
    prev = int(grid[max(0, int(np.searchsorted(grid, first)) - 1)])
    return next(n for n in range(prev, first + 1) if cheaper(n))


def render_plot(inputs: PlanInputs, path: Path) -> Path:
    plt = pyplot()

    top = max(10_000, max(inputs.players) * 2)
    players = np.unique(np.geomspace(10, top, 300).astype(int))
    tiers = [tier(inputs, int(n), one_time=0.0) for n in players]
    cloud = [t.cloud for t in tiers]
    on_demand = [t.self_hosted.on_demand for t in tiers]
    spot = [t.self_hosted.spot_mix for t in tiers]

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    ax.plot(players, cloud, label=f"cloud API ({inputs.cloud.stt_model} + {inputs.cloud.tts_model})",
            color="tab:red", lw=2)
    ax.step(players, on_demand, where="post", label=f"self-hosted, on demand ({inputs.fleet.instance_type})",
            color="tab:blue", lw=2)
    ax.step(players, spot, where="post", label=f"self-hosted, spot mix ({inputs.fleet.on_demand_base} on demand + "
            f"{inputs.fleet.on_demand_percent_above_base:g}% of the rest)",
            color="tab:green", lw=1.5, ls="--")
    for i, (kind, color) in enumerate((("on_demand", "tab:blue"), ("spot_mix", "tab:green"))):
        n = break_even_players(inputs, kind)
        if n is not None:
            ax.axvline(n, color=color, ls=":", lw=1)
            ax.text(n, 0.03, f" break-even: {n:,} players", transform=ax.get_xaxis_transform(),
                    rotation=90, va="bottom", ha="right" if i == 0 else "left", fontsize=8, color=color)
    for n in inputs.players:
        t = tier(inputs, n, one_time=0.0)  # monthly figures only
        ax.plot([n], [t.cloud], "o", color="tab:red", ms=4)
        ax.plot([n], [t.self_hosted.on_demand], "o", color="tab:blue", ms=4)
        ax.annotate(f"{t.capacity.gpus_peak} GPU{'s' if t.capacity.gpus_peak > 1 else ''} "
                    f"({t.capacity.limited_by} binds)",
                    (n, t.self_hosted.on_demand), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("players")
    ax.set_ylabel("monthly cost (USD)")
    ax.set_title("voxhost: monthly cost against players (instances sized for the peak by GPU, CPU or memory)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
