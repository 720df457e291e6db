"""`voxhost plan` and `voxhost bench`: capacity and cost for N players."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from voxhost.cli.common import can_plot, console, progress_bar


def plan(
    inputs: list[Path] | None = typer.Option(
        None, "--inputs", "-i", help="Plan YAML file(s), merged in order (e.g. deploy/plan.example.yaml, bench.yaml)."
    ),
    out: Path = typer.Option(Path("plan"), "--out", "-o", help="Directory for plan.md and plan.png."),
    burst: bool = typer.Option(False, "--burst", help="Also plan burst-to-cloud fleets (burst.md): sized below "
                               "the peak, the overflow sent to the cloud API by the gateway."),
    daily_curve: str | None = typer.Option(None, help="With --burst: the load over a day, comma-separated "
                                              "(e.g. 24 hourly figures); default: smooth, peak_to_average."),
) -> None:
    """Cost and capacity plan: cloud API against self-hosted, GPUs at the peak."""
    from pydantic import ValidationError

    from voxhost.planner.inputs import load_inputs
    from voxhost.planner.model import plan as make_plan
    from voxhost.planner.plot import render_plot
    from voxhost.planner.report import max_tasks_warnings, render_report, summary_rows

    plotting = can_plot()
    try:
        plan_inputs = load_inputs(inputs or [])
        tiers = make_plan(plan_inputs)
    except (ValidationError, ValueError, OSError) as exc:
        console.print(f"[red]invalid plan input: {exc}[/red]")
        raise typer.Exit(code=2)
    out.mkdir(parents=True, exist_ok=True)
    if plotting:
        render_plot(plan_inputs, out / "plan.png")
    (out / "plan.md").write_text(render_report(plan_inputs, plot_name="plan.png" if plotting else None))
    table = Table("", *[f"{t.players:,} players" for t in tiers])
    for row in summary_rows(tiers):
        table.add_row(*row)
    Console().print(table)
    for warning in max_tasks_warnings(plan_inputs, tiers):
        console.print(f"[yellow]warning: {warning}[/yellow]")
    console.print(f"wrote {out / 'plan.md'}" + (f" and {out / 'plan.png'}" if plotting else ""))
    if burst:
        _burst(plan_inputs, daily_curve, out)


def _burst(plan_inputs, daily_curve: str | None, out: Path) -> None:
    from voxhost.planner.burst import burst_table, render_markdown

    try:
        curve = [float(x) for x in daily_curve.split(",")] if daily_curve else None
        rows = burst_table(plan_inputs, curve)
    except ValueError as exc:
        console.print(f"[red]invalid --daily-curve: {exc}[/red]")
        raise typer.Exit(code=2)
    note = (f"daily curve of {len(curve)} slots" if curve else
            f"smooth daily curve, peak {plan_inputs.usage.peak_to_average:g}x the mean")
    text = render_markdown(rows, note)
    (out / "burst.md").write_text(text)
    table = Table("players", "GPUs at peak", "peak /mo", "burst GPUs", "burst fleet /mo", "cloud overflow /mo",
                  "burst total /mo", "cloud share", "saving", title="burst to cloud")
    for r in rows:
        table.add_row(f"{r.players:,}", str(r.peak_gpus), f"${r.peak_monthly:,.0f}", str(r.burst_gpus),
                      f"${r.burst_fleet_monthly:,.0f}", f"${r.burst_cloud_monthly:,.0f}", f"${r.burst_monthly:,.0f}",
                      f"{r.cloud_share:.1%}", f"${r.saving:,.0f} ({r.saving_pct:.0f}%)")
    Console().print(table)
    console.print(f"wrote {out / 'burst.md'}")


def bench(
    out: Path = typer.Option(Path("bench.yaml"), "--out", "-o", help="Planner-input YAML to write."),
    stt_model: list[str] | None = typer.Option(
        None, "--stt-model", help="STT model(s) to measure (default: VOXHOST_STT_MODELS)."
    ),
    clips: int = typer.Option(3, min=1, help="Eval clips (English, <= 15 s) per measurement."),
    concurrency: str = typer.Option("1,2", help="Comma-separated concurrencies for the streams figure."),
    tts_engine: list[str] | None = typer.Option(
        None, "--tts-engine", help="TTS engine to measure, by name: hibari, kokoro, piper or a plugin's "
                                   "(optional, repeatable)."
    ),
    tts_sentences: int = typer.Option(3, min=1, help="TTS sentences per engine."),
    gpu: str | None = typer.Option(None, help="Device label for the planner (default: detected GPU or cpu)."),
    capacity: Path | None = typer.Option(
        None, exists=True, dir_okay=False,
        help="bench/capacity.py --json results: add the server's CPU per live session and per REST request "
             "(the planner's cpu: section)."),
) -> None:
    """Measure STT (and TTS) throughput on this machine, as planner input."""
    # Thread pools as the server sizes them (engines/threads.py), before numpy and CTranslate2 load.
    from voxhost.engines.threads import configure_environment, limit_blas

    configure_environment()
    limit_blas()
    from voxhost.ops.settings import get_settings
    from voxhost.planner.bench import run_bench

    try:
        levels = sorted({int(c) for c in concurrency.split(",") if c.strip()})
    except ValueError:
        raise typer.BadParameter("comma-separated integers", param_hint="--concurrency")
    if not levels or min(levels) < 1:
        raise typer.BadParameter("concurrencies must be >= 1", param_hint="--concurrency")

    class _Bar:
        def __init__(self, total: int):
            self.progress = progress_bar()
            self.task = self.progress.add_task("Loading", total=total)

        def __enter__(self):
            self.progress.__enter__()
            return lambda description, steps: self.progress.update(self.task, description=description,
                                                                     advance=steps)

        def __exit__(self, *exc):
            return self.progress.__exit__(*exc)

    text = run_bench(out, stt_model or get_settings().stt_models, clips, levels, tts_engine or [],
                     tts_sentences, gpu=gpu, progress_factory=_Bar, capacity=capacity)
    typer.echo(text.rstrip("\n"))
    console.print(f"wrote {out}")
