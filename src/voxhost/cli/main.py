"""`voxhost` command line: serve, transcribe, models."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="voxhost: self-hosted, OpenAI-compatible speech server.", no_args_is_help=True)
console = Console(stderr=True)

AUDIO_SUFFIXES = {".flac", ".mp3", ".mp4", ".mpeg", ".mpga", ".m4a", ".ogg", ".oga", ".opus", ".wav", ".webm"}


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Bind address (VOXHOST_HOST)."),
    port: Optional[int] = typer.Option(None, help="Port (VOXHOST_PORT)."),
    stt_model: Optional[list[str]] = typer.Option(
        None, "--stt-model", help="STT model(s) to load; first is the default (VOXHOST_STT_MODELS)."
    ),
    log_level: Optional[str] = typer.Option(None, help="Log level (VOXHOST_LOG_LEVEL)."),
) -> None:
    """Start the HTTP/WebSocket server."""
    import uvicorn

    # CLI flags override env by becoming env: one settings object reads both.
    if host:
        os.environ["VOXHOST_HOST"] = host
    if port:
        os.environ["VOXHOST_PORT"] = str(port)
    if stt_model:
        os.environ["VOXHOST_STT_MODELS"] = ",".join(stt_model)
    if log_level:
        os.environ["VOXHOST_LOG_LEVEL"] = log_level

    from voxhost.api.app import create_app
    from voxhost.ops.logging import configure_logging
    from voxhost.ops.settings import get_settings

    from voxhost.api.lifecycle import DrainingServer

    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level, retain_content=settings.retain_content)
    app_ = create_app(settings)
    config = uvicorn.Config(
        app_,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # Our drain already waited for accepted work; this bounds the rest.
        timeout_graceful_shutdown=5,
        ws_ping_interval=20.0,
    )
    DrainingServer(config, app_.state.voxhost, settings.drain_timeout_s).run()


def _collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist")
    return files


@app.command()
def transcribe(
    inputs: list[Path] = typer.Argument(..., help="Audio files or directories."),
    fmt: str = typer.Option("txt", "--format", "-f", help="txt, srt, vtt or json."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Directory for outputs (default: print)."),
    model: Optional[str] = typer.Option(None, help="STT model (default: first of VOXHOST_STT_MODELS)."),
    language: Optional[str] = typer.Option(None, help="Language code; detected when omitted."),
    translate: bool = typer.Option(False, help="Translate to English."),
) -> None:
    """Transcribe files locally, without a server."""
    from voxhost.api.protocol.transcriptions import render
    from voxhost.audio.decode import decode_audio
    from voxhost.engines.stt.base import TranscriptionOptions
    from voxhost.engines.stt.registry import SttRegistry
    from voxhost.errors import VoxhostError
    from voxhost.ops.settings import get_settings

    formats = {"txt": "text", "srt": "srt", "vtt": "vtt", "json": "verbose_json"}
    if fmt not in formats:
        raise typer.BadParameter("format must be txt, srt, vtt or json", param_hint="--format")
    files = _collect(inputs)
    if not files:
        raise typer.BadParameter("no audio files found")
    settings = get_settings()
    registry = SttRegistry(settings)
    with console.status(f"Loading {model or settings.stt_models[0]}..."):
        engine = registry.load(model or settings.stt_models[0], warm_up=False)
    options = TranscriptionOptions(
        task="translate" if translate else "transcribe", language=language,
        beam_size=settings.stt_beam_size, vad_filter=settings.stt_vad_filter,
        word_timestamps=fmt == "json",
    )
    if out:
        out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Transcribing", total=len(files))
        for path in files:
            progress.update(task, description=path.name[:40])
            try:
                audio = decode_audio(path.read_bytes(), max_seconds=settings.max_audio_seconds)
                transcript = engine.transcribe(audio, options)
                text = render(transcript, formats[fmt], task=options.task,
                              granularities={"word", "segment"} if fmt == "json" else set())
                if out:
                    (out / f"{path.stem}.{fmt}").write_text(text)
                else:
                    progress.console.print(f"[dim]{path}[/dim]")
                    typer.echo(text.rstrip("\n"))
            except VoxhostError as exc:
                failures += 1
                progress.console.print(f"[red]{path}: {exc.message}[/red]")
            progress.advance(task)
    if failures:
        raise typer.Exit(code=1)


@app.command()
def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List configured and bundled models."""
    from voxhost.engines.stt.bundled import BUNDLED_STT
    from voxhost.ops.settings import get_settings

    settings = get_settings()
    rows = [
        {"id": name, "task": "stt", "configured": name in settings.stt_models,
         "default": name == settings.stt_models[0], "source": BUNDLED_STT.get(name, "faster-whisper id or path")}
        for name in dict.fromkeys([*settings.stt_models, *BUNDLED_STT])
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("model", "task", "configured", "default", "source")
    for row in rows:
        table.add_row(row["id"], row["task"], "yes" if row["configured"] else "", "yes" if row["default"] else "",
                      row["source"])
    Console().print(table)


keys_app = typer.Typer(help="API keys (stored as sha256 digests only).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="A name for the key (shown in logs and metrics)."),
    rpm: Optional[int] = typer.Option(None, help="Requests per minute allowed."),
    audio_minutes_per_day: Optional[float] = typer.Option(None, help="Audio minutes per UTC day allowed."),
) -> None:
    """Print a new key once, and the hashed entry to add to VOXHOST_API_KEYS_FILE."""
    from voxhost.ops.auth import new_entry

    key, entry = new_entry(name, rpm=rpm, audio_minutes_per_day=audio_minutes_per_day)
    console.print("[bold]API key (shown once; store it in your client's secret store):[/bold]")
    typer.echo(key)
    console.print("[bold]Entry for VOXHOST_API_KEYS_FILE (JSON list) or VOXHOST_API_KEYS (name:sha256):[/bold]")
    typer.echo(json.dumps(entry))
    typer.echo(f"{entry['name']}:{entry['sha256']}")


@app.command()
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
) -> None:
    """Game traffic against a local server: players' push-to-talk and NPC lines."""
    import asyncio

    from rich.live import Live

    from voxhost.evaluation.dataset import load_manifest, tts_sentences
    from voxhost.loadtest.report import plot as draw, summarize
    from voxhost.loadtest.runner import check_local, run_load
    from voxhost.loadtest.scenarios import LiveTranscription, NpcSpeech, RestTranscription, load_clips

    try:
        check_local(url)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--url") from None
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
        key = "ok" if sample.status in (200, 1000) else "rejected" if sample.status in (429, 503, 1013) else "errors"
        counts[key] += 1
        live.update(f"[bold]load test[/bold] {counts}")

    with Live(console=console, refresh_per_second=4) as live:
        result = asyncio.run(run_load(url, scenarios, players=steps, stage_seconds=stage_seconds, think_s=think_s,
                                      max_requests=max_requests, api_key=api_key, on_sample=on_sample))
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


@app.command()
def assemble() -> None:
    """Assemble the bundled split models into the cache dir (done at start anyway)."""
    from voxhost.engines.stt.bundled import assemble_whisper_base
    from voxhost.ops.settings import get_settings

    with console.status("Assembling whisper-base..."):
        path = assemble_whisper_base(get_settings().models_dir)
    console.print(f"whisper-base: {path}")


if __name__ == "__main__":
    app()
