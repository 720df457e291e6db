"""`voxhost transcribe`: files on disk, no server."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from voxhost.cli.common import console, progress_bar

AUDIO_SUFFIXES = {".flac", ".mp3", ".mp4", ".mpeg", ".mpga", ".m4a", ".ogg", ".oga", ".opus", ".wav", ".webm"}


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
    from voxhost.engines.stt.registry import SttRegistry
    from voxhost.errors import VoxhostError
    from voxhost.ops.settings import get_settings
    from voxhost.stt.service import options_from, resolve_engine

    formats = {"txt": "text", "srt": "srt", "vtt": "vtt", "json": "verbose_json"}
    if fmt not in formats:
        raise typer.BadParameter("format must be txt, srt, vtt or json", param_hint="--format")
    files = _collect(inputs)
    if not files:
        raise typer.BadParameter("no audio files found")
    settings = get_settings()
    registry = SttRegistry(settings)
    try:  # the server's defaults and checks (language tags, English-only models)
        options = options_from(settings, task="translate" if translate else "transcribe", language=language,
                               word_timestamps=fmt == "json")
        with console.status(f"Loading {model or settings.stt_models[0]}..."):
            registry.load(model or settings.stt_models[0], warm_up=False)
        engine = resolve_engine(registry, model or settings.stt_models[0], options)
    except VoxhostError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.param or 'model'}") from None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    failures = 0
    with progress_bar() as progress:
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
