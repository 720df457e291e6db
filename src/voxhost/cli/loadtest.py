"""`voxhost loadtest`: game traffic against a running server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from voxhost.cli.common import console, require_plotting


def loadtest(
    url: str = typer.Option("http://127.0.0.1:8000", help="A running voxhost on this machine."),
    players: str = typer.Option("2,4,8,16", help="Players per stage (comma-separated): the offered load steps."),
    stage_seconds: float = typer.Option(20.0, help="Length of each stage."),
    think_s: float = typer.Option(3.0, help="Mean pause between a player's turns (seconds)."),
    live_weight: float = typer.Option(1.0, help="Share of push-to-talk turns over the live WebSocket protocol."),
    rest_weight: float = typer.Option(1.0, help="Share of push-to-talk turns over REST transcriptions."),
    tts_weight: float = typer.Option(0.5, help="Share of NPC lines through TTS (skipped if the route is absent)."),
    tts_cache_hit: float = typer.Option(0.6, help="Share of NPC lines that repeat stock lines (cache hits)."),
    max_requests: int = typer.Option(2000, help="Hard cap on turns sent."),
    max_clip_s: float = typer.Option(8.0, help="Longest utterance used (push-to-talk is short)."),
    model: str = typer.Option("whisper-1", help="STT model to ask for."),
    api_key: Optional[str] = typer.Option(None, envvar="VOXHOST_LOADTEST_API_KEY", help="Key, if the server needs one."),
    plot: Path = typer.Option(Path("loadtest.png"), help="PNG: latency and queue depth vs offered load."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the per-stage figures as JSON."),
    allow_remote: bool = typer.Option(False, help="Target a remote server (your own deployment, e.g. its ALB)."),
) -> None:
    """Game traffic against a local server: players' push-to-talk and NPC lines."""
    import asyncio

    from rich.live import Live

    from voxhost.evaluation.dataset import load_manifest, tts_sentences
    from voxhost.loadtest.report import OK, REJECTED, plot as draw, summarize
    from voxhost.loadtest.runner import check_local, run_load
    from voxhost.loadtest.scenarios import LiveTranscription, NpcSpeech, RestTranscription, load_clips

    try:
        check_local(url, allow_remote)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url") from None
    require_plotting()  # before minutes of load, not after
    steps = [int(p) for p in players.split(",") if p.strip()]
    utterances = [u for u in load_manifest(lang="en") if u.duration <= max_clip_s]
    clips = load_clips(utterances)
    url = url.rstrip("/")
    scenarios = [
        (LiveTranscription("live", "/v1/realtime", clips=clips, base_url=url, api_key=api_key), live_weight),
        (RestTranscription("rest", "/v1/audio/transcriptions", clips=clips, model=model), rest_weight),
        (NpcSpeech("tts", "/v1/audio/speech", lines=tts_sentences(), cache_hit_share=tts_cache_hit), tts_weight),
    ]
    scenarios = [(s, w) for s, w in scenarios if w > 0]
    counts = {"sent": 0, "ok": 0, "rejected": 0, "errors": 0}

    def on_sample(sample):
        counts["sent"] += 1
        key = "ok" if sample.status in OK else "rejected" if sample.status in REJECTED else "errors"
        counts[key] += 1
        live.update(f"[bold]load test[/bold] {counts}")

    with Live(console=console, refresh_per_second=4) as live:
        result = asyncio.run(run_load(url, scenarios, players=steps, stage_seconds=stage_seconds, think_s=think_s,
                                      max_requests=max_requests, api_key=api_key, on_sample=on_sample,
                                      allow_remote=allow_remote))
    rows = summarize(result)
    table = Table("players", "offered/s", "route", "ok", "ok/s", "rejected", "errors", "p50 ms", "p95 ms",
                  "p99 ms", "max queue")
    for r in rows:
        table.add_row(*(str(r[k]) for k in ("players", "offered_rps", "route", "ok", "throughput_rps", "rejected",
                                            "errors", "p50_ms", "p95_ms", "p99_ms", "max_queue_depth")))
    Console(width=160).print(table)
    for scenario in result.scenarios:
        if scenario.skipped_reason:
            console.print(f"[yellow]{scenario.name} ({scenario.route}) skipped: {scenario.skipped_reason}[/yellow]")
    draw(result, rows, plot)
    console.print(f"plot: {plot}")
    if json_out:
        json_out.write_text(json.dumps({"stages": rows, "queue_depth": result.depth,
                                        "skipped": {s.name: s.skipped_reason for s in result.scenarios
                                                    if s.skipped_reason}}, indent=2))
