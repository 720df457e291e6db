"""`voxhost transcribe`: files on disk, no server."""

from __future__ import annotations

from pathlib import Path

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
    out: Path | None = typer.Option(None, "--out", "-o", help="Directory for outputs (default: print)."),
    model: str | None = typer.Option(None, help="STT model (default: first of VOXHOST_STT_MODELS)."),
    language: str | None = typer.Option(None, help="Language code; detected when omitted."),
    translate: bool = typer.Option(False, help="Translate to English."),
) -> None:
    """Transcribe files locally, without a server: through the same STT service as a REST request
    (its defaults, checks, decode policy and lanes)."""
    import asyncio

    from voxhost.api.protocol.transcriptions import render
    from voxhost.errors import VoxhostError
    from voxhost.ops.settings import get_settings
    from voxhost.services import build_services

    formats = {"txt": "text", "srt": "srt", "vtt": "vtt", "json": "verbose_json"}
    if fmt not in formats:
        raise typer.BadParameter("format must be txt, srt, vtt or json", param_hint="--format")
    files = _collect(inputs)
    if not files:
        raise typer.BadParameter("no audio files found")
    settings = get_settings()
    services = build_services(settings)
    service = services.transcription
    name = model or settings.stt_models[0]
    try:  # the server's defaults and checks (language tags, English-only models)
        options = service.options(task="translate" if translate else "transcribe", language=language,
                                  word_timestamps=fmt == "json")
        with console.status(f"Loading {name}..."):
            services.stt_engines.load(name, warm_up=False)
        engine = service.engine(name, options)
    except VoxhostError as exc:
        raise typer.BadParameter(exc.message, param_hint=f"--{exc.param or 'model'}") from None
    if out:
        out.mkdir(parents=True, exist_ok=True)

    async def run(progress, task) -> int:
        failures = 0
        for path in files:
            progress.update(task, description=path.name[:40])
            try:
                audio = await service.decode(path.read_bytes())
                # txt is a json/text response's text: the REST policy may drop timestamps for it.
                transcript = await service.transcribe(engine, audio, options, timestamps_needed=fmt != "txt")
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
        return failures

    with progress_bar() as progress:
        failures = asyncio.run(run(progress, progress.add_task("Transcribing", total=len(files))))
    services.shutdown()
    if failures:
        raise typer.Exit(code=1)
