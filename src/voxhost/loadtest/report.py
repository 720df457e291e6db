"""Load-test figures: per-stage, per-route throughput and latency
percentiles, errors and rejections, and a PNG of latency and queue depth
against offered load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voxhost.errors import CloseCode
from voxhost.loadtest.runner import LoadResult
from voxhost.plotting import pyplot

OK = {200, 1000}
REJECTED = {429, 503, CloseCode.TRY_AGAIN}


def summarize(result: LoadResult) -> list[dict]:
    rows = []
    for stage in result.stages:
        span = max(stage.ended - stage.started, 1e-9)
        for route in sorted({s.route for s in stage.samples}):
            samples = [s for s in stage.samples if s.route == route]
            ok = [s.latency for s in samples if s.status in OK]
            rows.append({
                "players": stage.players,
                "offered_rps": round(stage.offered_rps, 2),
                "route": route,
                "requests": len(samples),
                "ok": len(ok),
                "throughput_rps": round(len(ok) / span, 2),
                "rejected": sum(s.status in REJECTED for s in samples),
                "errors": sum(s.status not in OK | REJECTED for s in samples),
                "retried": sum(s.retries > 0 for s in samples),  # SDK retries (REST), reconnects (live)
                "p50_ms": _pct(ok, 50), "p95_ms": _pct(ok, 95), "p99_ms": _pct(ok, 99),
                "max_queue_depth": max((d for t, d in result.depth if stage.started <= t <= stage.ended), default=0),
            })
    return rows


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def plot(result: LoadResult, rows: list[dict], path: Path, title: str = "voxhost under game traffic") -> None:
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for route in sorted({r["route"] for r in rows}):
        mine = [r for r in rows if r["route"] == route and r["p50_ms"] is not None]
        x = [r["offered_rps"] for r in mine]
        for key, style in (("p50_ms", "-o"), ("p95_ms", "--s"), ("p99_ms", ":^")):
            ax1.plot(x, [r[key] / 1000 for r in mine], style, label=f"{route} {key[:3]}")
    ax1.set_xlabel("offered load (turns/s)")
    ax1.set_ylabel("latency of accepted turns (s)")
    ax1.set_title("Latency vs offered load")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=7)
    if result.depth:
        t, d = zip(*result.depth)
        ax2.plot(t, d, color="tab:red", lw=1)
    for stage in result.stages:
        ax2.axvspan(stage.started, stage.ended, alpha=0.08, color="tab:blue")
        ax2.text(stage.started, 0, f" {stage.offered_rps:.1f}/s", fontsize=7, va="bottom", clip_on=True)
    ax2.set_xlabel("time (s); shaded: stages, labelled with offered load")
    # Never below 0 (an empty queue autoscaled to -0.05..0.05), and a whole job at least.
    ax2.set_ylim(0, max(1.0, max((d for _, d in result.depth), default=0.0)) * 1.1)
    ax2.set_ylabel("queued jobs (all engines, lanes)")
    ax2.set_title("Queue depth over time")
    ax2.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
