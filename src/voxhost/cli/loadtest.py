"""`voxhost loadtest`: game traffic against a running server."""

from __future__ import annotations

import io
import json
from pathlib import Path

import typer
from rich import box
from rich.table import Table

from voxhost.cli.common import can_plot, console


def loadtest(
    url: str = typer.Option("http://127.0.0.1:8000", help="A running voxhost on this machine."),
    players: str = typer.Option("2,4,8,16", help="Players per stage (comma-separated): the offered load steps."),
    stage_seconds: float = typer.Option(20.0, help="Length of each stage."),
    think_s: float = typer.Option(3.0, help="Mean pause between a player's turns (seconds)."),
    live_weight: float = typer.Option(1.0, help="Share of push-to-talk turns over the live WebSocket protocol."),
    rest_weight: float = typer.Option(1.0, help="Share of push-to-talk turns over REST transcriptions."),
    tts_weight: float = typer.Option(0.5, help="Share of NPC lines through TTS (skipped if the route is absent)."),
    tts_cache_hit: float = typer.Option(0.6, help="Share of NPC lines that repeat stock lines (cache hits)."),
    open_mic_weight: float = typer.Option(0.0, help="Share of open-mic sessions: server VAD, several utterances "
                                          "in real time, each accounted for (lost, heard twice)."),
    sdk_retries: int = typer.Option(2, help="REST retries, by the openai SDK's own policy (2: its default)."),
    max_requests: int = typer.Option(2000, help="Hard cap on turns sent."),
    max_clip_s: float = typer.Option(8.0, help="Longest utterance used (push-to-talk is short)."),
    model: str = typer.Option("whisper-1", help="STT model to ask for."),
    api_key: str | None = typer.Option(None, envvar="VOXHOST_LOADTEST_API_KEY", help="Key, if the server needs one."),
    plot: Path = typer.Option(Path("loadtest.png"), help="PNG: latency and queue depth vs offered load."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the per-stage figures as JSON."),
    allow_remote: bool = typer.Option(False, help="Target a remote server (your own deployment, e.g. its ALB)."),
) -> None:
    """Game traffic against a local server: players' push-to-talk and NPC lines."""
    import asyncio

    from rich.live import Live

    from voxhost.evaluation.dataset import load_manifest, tts_sentences
    from voxhost.loadtest.report import OK, REJECTED, summarize
    from voxhost.loadtest.report import plot as draw
    from voxhost.loadtest.runner import check_local, run_load
    from voxhost.loadtest.scenarios import LiveConversation, LiveTranscription, NpcSpeech, RestTranscription, load_clips

    try:
        check_local(url, allow_remote)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url") from None
    plotting = can_plot()  # said before minutes of load, not after
    steps = [int(p) for p in players.split(",") if p.strip()]
    utterances = [u for u in load_manifest(lang="en") if u.duration <= max_clip_s]
    clips = load_clips(utterances)
    url = url.rstrip("/")
    open_mic = LiveConversation("open mic", "/v1/realtime (open mic)", clips=clips, base_url=url, api_key=api_key)
    scenarios = [
        (LiveTranscription("live", "/v1/realtime", clips=clips, base_url=url, api_key=api_key), live_weight),
        (RestTranscription("rest", "/v1/audio/transcriptions", clips=clips, model=model, max_retries=sdk_retries),
         rest_weight),
        (NpcSpeech("tts", "/v1/audio/speech", lines=tts_sentences(), cache_hit_share=tts_cache_hit,
                   max_retries=sdk_retries), tts_weight),
        (open_mic, open_mic_weight),
    ]
    scenarios = [(s, w) for s, w in scenarios if w > 0]
    counts = {"sent": 0, "ok": 0, "rejected": 0, "errors": 0}

    def on_sample(sample):
        counts["sent"] += 1
        key = "ok" if sample.status in OK else "rejected" if sample.status in REJECTED else "errors"
        counts[key] += 1
        live.update(progress())

    def progress() -> str:
        return "[bold]load test[/bold] " + " · ".join(f"{name} {n}" for name, n in counts.items())

    # Transient, then printed once on a line of its own: a Live's last frame on a pipe or a
    # captured stream has no line end, and the table would continue that line.
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        result = asyncio.run(run_load(url, scenarios, players=steps, stage_seconds=stage_seconds, think_s=think_s,
                                      max_requests=max_requests, api_key=api_key, on_sample=on_sample,
                                      allow_remote=allow_remote))
    console.print(progress())
    rows = summarize(result)
    typer.echo(text_table(rows, {s.route: s.name for s in result.scenarios}))
    for scenario in result.scenarios:
        if scenario.skipped_reason:
            console.print(f"[yellow]{scenario.name} ({scenario.route}) skipped: {scenario.skipped_reason}[/yellow]")
    if open_mic.turns:
        console.print(f"open mic: {len(open_mic.turns)} utterances, {sum(t.lost for t in open_mic.turns)} lost, "
                      f"{sum(t.duplicated for t in open_mic.turns)} heard twice, {len(open_mic.outages)} reconnects")
    if plotting:
        draw(result, rows, plot)
        console.print(f"plot: {plot}")
    if json_out:
        json_out.write_text(json.dumps({"stages": rows, "queue_depth": result.depth,
                                        "skipped": {s.name: s.skipped_reason for s in result.scenarios
                                                    if s.skipped_reason}}, indent=2))


def text_table(rows: list[dict], names: dict[str, str] | None = None, width: int = 80) -> str:
    """The per-stage figures as a table that fits `width` columns (a terminal's 80, as `voxhost plan`);
    `names`: route -> the scenario's short name (live, rest, tts)."""
    from rich.console import Console
    from rich.table import Column

    names = names or {}
    headers = ("players", "offered/s", "route", "ok", "ok/s", "rej", "err", "retry", "p50/p95/p99 ms", "max q")
    table = Table(*(Column(h, justify="left" if h == "route" else "right", no_wrap=True) for h in headers),
                  box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    ms = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
    for r in rows:
        table.add_row(str(r["players"]), f"{r['offered_rps']:.2f}", names.get(r["route"], r["route"].rsplit("/", 1)[-1]),
                      str(r["ok"]), f"{r['throughput_rps']:.2f}", str(r["rejected"]), str(r["errors"]),
                      str(r.get("retried", 0)), "/".join(ms(r[k]) for k in ("p50_ms", "p95_ms", "p99_ms")), f"{r['max_queue_depth']:g}")
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return "\n".join(line.rstrip() for line in console.export_text().splitlines()).strip("\n")
