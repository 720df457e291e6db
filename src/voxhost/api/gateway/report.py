"""`voxhost migrate report`: the evidence to move a migration phase.

Reads the shadow log (JSON lines of ShadowRecord: figures only), and writes
a markdown report and a PNG of agreement, latency and cost over time. It
recommends the next phase (local share 10% -> 50% -> 100%) only when every
criterion holds on enough samples: agreement (1 - pooled WER of local
against upstream transcripts) >= min, local p95 latency <= max, local error
rate <= max.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

PHASES = (0.1, 0.5, 1.0)  # the design document's local shares


@dataclass(frozen=True)
class Criteria:
    min_agreement: float = 0.90
    max_p95_s: float = 2.0
    max_error_rate: float = 0.01
    min_samples: int = 50


@dataclass
class Summary:
    samples: int = 0  # sampled requests (compared or failed locally)
    compared: int = 0
    words: int = 0
    errors: int = 0
    local_failures: int = 0
    upstream_failures: int = 0
    local_s: list[float] = field(default_factory=list)
    upstream_s: list[float] = field(default_factory=list)
    local_usd: float = 0.0
    upstream_usd: float = 0.0

    @property
    def agreement(self) -> float | None:
        return 1.0 - self.errors / self.words if self.words else None

    @property
    def error_rate(self) -> float:
        return self.local_failures / self.samples if self.samples else 0.0

    def p95(self, side: str) -> float | None:
        values = self.local_s if side == "local" else self.upstream_s
        return float(np.percentile(values, 95)) if values else None

    def add(self, r: dict) -> None:
        self.samples += 1
        if not r.get("local_ok", True):
            self.local_failures += 1
            return
        self.local_s.append(r["local_s"])
        self.local_usd += r.get("local_usd", 0.0)
        if not r.get("ok"):
            self.upstream_failures += 1
            return
        self.compared += 1
        self.upstream_s.append(r["upstream_s"])
        self.upstream_usd += r.get("upstream_usd", 0.0)
        if r.get("words"):
            self.words += r["words"]
            self.errors += r["errors"]


def load(path: Path) -> list[dict]:
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{path}:{n}: not a JSON line") from None
    return sorted(records, key=lambda r: r["ts"])


def summarise(records: list[dict], key: Callable[[dict], Hashable] = lambda r: "all") -> dict[Any, Summary]:
    out: dict[Any, Summary] = {}
    for r in records:
        out.setdefault(key(r), Summary()).add(r)
    return out


def recommend(stt: Summary, current_share: float, c: Criteria) -> tuple[str, list[str]]:
    """(recommendation, failed criteria). STT decides: agreement only exists there."""
    failed = []
    if stt.samples < c.min_samples:
        failed.append(f"only {stt.samples} samples (need {c.min_samples})")
    if stt.agreement is None or stt.agreement < c.min_agreement:
        failed.append(f"agreement {_pct(stt.agreement)} < {c.min_agreement:.0%}")
    p95 = stt.p95("local")
    if p95 is None or p95 > c.max_p95_s:
        failed.append(f"local p95 latency {_s(p95)} > {c.max_p95_s:g} s")
    if stt.error_rate > c.max_error_rate:
        failed.append(f"local error rate {stt.error_rate:.2%} > {c.max_error_rate:.2%}")
    nxt = next((p for p in PHASES if p > current_share + 1e-9), None)
    if failed:
        return f"stay at local share {current_share:.0%}", failed
    if nxt is None:
        return "already at 100% local: keep the upstream as a backup (fallback on)", []
    return f"move to local share {nxt:.0%} (VOXHOST_ROUTE_LOCAL_SHARE={nxt:g})", []


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def _s(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f} s"


def render(records: list[dict], current_share: float, criteria: Criteria, plot_name: str | None) -> str:
    stt_records = [r for r in records if r["route"] != "speech"]
    stt = summarise(stt_records)["all"] if stt_records else Summary()
    advice, failed = recommend(stt, current_share, criteria)
    lines = ["# voxhost migration report", ""]
    if records:
        lines += [f"{len(records)} shadow samples, {_when(records[0]['ts'])} to {_when(records[-1]['ts'])}.", ""]
    lines += [f"**Recommendation: {advice}.**", ""]
    if failed:
        lines += ["Not yet, because: " + "; ".join(failed) + ".", ""]
    lines += [f"Criteria: agreement >= {criteria.min_agreement:.0%}, local p95 latency <= {criteria.max_p95_s:g} s, local error rate <= {criteria.max_error_rate:.1%}, "
              f"at least {criteria.min_samples} samples (`voxhost migrate report --help`).", ""]
    lines += ["## Agreement (speech to text)", "",
              "1 - WER of the local transcript against the upstream's, pooled over words.", "",
              "| model | language | samples | words | agreement |", "|---|---|---:|---:|---:|"]
    for (model, lang), s in sorted(summarise(stt_records, lambda r: (r["model"], r["language"])).items()):
        lines.append(f"| {model} | {lang} | {s.samples} | {s.words} | {_pct(s.agreement)} |")
    lines += ["", "## Latency, errors and cost per route", "",
              "| route | samples | local p50 | local p95 | upstream p50 | upstream p95 | local errors | "
              "upstream errors | local $/1k req | upstream $/1k req |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for route, s in sorted(summarise(records, lambda r: r["route"]).items()):
        p50l = float(np.percentile(s.local_s, 50)) if s.local_s else None
        p50u = float(np.percentile(s.upstream_s, 50)) if s.upstream_s else None
        lines.append(f"| {route} | {s.samples} | {_s(p50l)} | {_s(s.p95('local'))} | {_s(p50u)} | "
                     f"{_s(s.p95('upstream'))} | {s.error_rate:.1%} | {s.upstream_failures} | "
                     f"{1000 * s.local_usd / max(1, len(s.local_s)):.4f} | "
                     f"{1000 * s.upstream_usd / max(1, s.compared):.4f} |")
    lines += ["", "Local cost is instance time (ops/cost.py, VOXHOST_INSTANCE_TYPE); upstream cost is the cloud "
              "API's list price for the same requests. The shadow log holds figures only: no audio, no text.", ""]
    if plot_name:
        lines += [f"![agreement, latency and cost over time]({plot_name})", ""]
    return "\n".join(lines)


def _when(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def render_plot(records: list[dict], path: Path, bins: int = 20) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ts = np.array([r["ts"] for r in records]) if records else np.array([0.0])
    edges = np.linspace(ts.min(), ts.max() + 1e-6, bins + 1)
    groups = [[r for r in records if lo <= r["ts"] < hi] for lo, hi in zip(edges, edges[1:])]
    minutes = (edges[:-1] - edges[0]) / 60
    sums = [summarise(g)["all"] if g else Summary() for g in groups]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), dpi=110, sharex=True)
    axes[0].plot(minutes, [s.agreement if s.agreement is not None else np.nan for s in sums], "o-")
    axes[0].set_ylabel("agreement (1 - WER)")
    for side, color in (("local", "tab:blue"), ("upstream", "tab:red")):
        axes[1].plot(minutes, [s.p95(side) or np.nan for s in sums], "o-", color=color, label=f"{side} p95")
        usd = [np.nan if not (s.local_s if side == "local" else s.compared) else  # empty bin: a gap, not 0
               (s.local_usd / len(s.local_s)) if side == "local" else (s.upstream_usd / s.compared) for s in sums]
        axes[2].plot(minutes, np.array(usd) * 1000, "o-", color=color, label=side)
    axes[1].set_ylabel("latency (s)")
    axes[1].legend(fontsize=8)
    axes[2].set_ylabel("USD per 1k requests")
    axes[2].legend(fontsize=8)
    axes[2].set_xlabel("minutes since first sample")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.suptitle("voxhost shadow comparison: local against upstream")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
