"""`voxhost cache`: the TTS phrase cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from voxhost.cli.common import console, progress_bar

if TYPE_CHECKING:
    from voxhost.services import Services

app = typer.Typer(help="The TTS phrase cache (synthesised lines, shared by every server on this disk).",
                        no_args_is_help=True)


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


@app.command("warm")
def warm(
    lines: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV of voice,text rows (a bark list)."),
    model: str = typer.Option("tts-1", help="Model the game will request (tts-1, tts-1-hd, an engine name)."),
    fmt: list[str] = typer.Option(["mp3"], "--format", "-f", help="Response format(s) the game will request."),
    speed: float = typer.Option(1.0, help="Speed the game will request."),
) -> None:
    """Synthesise every line into the phrase cache, so the game's requests are hits."""
    import asyncio

    from voxhost.errors import VoxhostError

    services = _speech_services()
    service, cache = services.speech, services.speech.cache
    if cache is None:
        console.print("[red]The phrase cache is disabled (VOXHOST_TTS_CACHE_ENABLED=false).[/red]")
        raise typer.Exit(code=1)
    rows = _read_lines(lines)
    _load_tts(services)
    counts = {"hit": 0, "miss": 0, "failed": 0}

    async def run(progress, task) -> None:
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

    with progress_bar() as progress:
        task = progress.add_task("Warming", total=len(rows) * len(fmt))
        asyncio.run(run(progress, task))
    services.shutdown()
    if cache.disk is not None:
        cache.disk.enforce()
    console.print(f"synthesised {counts['miss']}, already cached {counts['hit']}, failed {counts['failed']}")
    if counts["failed"]:
        raise typer.Exit(code=1)


@app.command("publish")
def publish(
    lines: Path = typer.Argument(..., exists=True, dir_okay=False, help="CSV of voice,text rows (barks, dialogue)."),
    to: str = typer.Option(..., "--to", help="s3://bucket/prefix: the stack's CDN bucket (output LinesBucketName)."),
    model: str = typer.Option("tts-1", help="Model to render with (tts-1, tts-1-hd, an engine name)."),
    fmt: str = typer.Option("mp3", "--format", "-f", help="Audio format of the published files."),
    speed: float = typer.Option(1.0, help="Speed to render at."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="An S3-compatible endpoint instead of "
                                            "AWS (a local stand-in); AWS credentials come from the usual chain."),
) -> None:
    """Render every line (or take it from the phrase cache) and publish it to S3, content-addressed,
    with a manifest a game looks lines up in (docs/deploy.md "Pre-rendered lines on a CDN")."""
    import asyncio

    from voxhost.cache.publish import Destination, Rendered
    from voxhost.cache.publish import publish as publish_lines

    try:
        destination = Destination.parse(to)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        import boto3
    except ImportError:
        console.print("[red]publishing needs boto3: pip install 'voxhost[aws]'[/red]")
        raise typer.Exit(code=1) from None
    rows = _read_lines(lines)
    services = _speech_services()
    _load_tts(services)
    service = services.speech
    s3 = boto3.client("s3", endpoint_url=endpoint_url)

    async def render(voice: str, text: str) -> Rendered:
        job = service.prepare(model=model, voice=voice, text=text, speed=speed, fmt=fmt)
        audio, outcome = await service.synthesize(job)
        return Rendered(voice, text, audio, job.engine.name, job.engine.model_version, job.voice.fingerprint,
                        job.key, outcome)

    counts = {"hit": 0, "miss": 0, "failed": 0}
    with progress_bar() as progress:
        task = progress.add_task("Publishing", total=len(rows))

        def on_row(line, error) -> None:
            counts["failed" if line is None else line.cache] += 1
            if error:
                progress.console.print(f"[red]{error}[/red]")
            progress.advance(task)

        manifest = asyncio.run(publish_lines(rows, render, s3, destination, model=model, fmt=fmt, speed=speed,
                                             on_row=on_row))
    services.shutdown()
    console.print(f"published {len(manifest['lines'])} lines ({manifest['uploaded']} new files; rendered "
                  f"{counts['miss']}, from the phrase cache {counts['hit']}, failed {counts['failed']}) to "
                  f"s3://{destination.bucket}/{destination.key('manifest.json')}")
    if manifest["failed"]:
        raise typer.Exit(code=1)


def _speech_services() -> Services:
    """The server's own speech path (same engines, voices, scheduler and cache keys), from the
    composition root; nothing loaded yet (`_load_tts`)."""
    from voxhost.ops.settings import get_settings
    from voxhost.services import build_services

    return build_services(get_settings())


def _load_tts(services: Services) -> None:
    with console.status("Loading TTS engines..."):
        services.tts_engines.load_all(warm_up=False)


@app.command("stats")
def stats(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
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


@app.command("clear")
def clear() -> None:
    """Delete every cached line (other servers sharing the directory see misses)."""
    from voxhost.cache.phrases import DiskTier
    from voxhost.ops.settings import get_settings

    settings = get_settings()
    removed = DiskTier(settings.tts_cache_dir, settings.tts_cache_disk_bytes).clear()
    console.print(f"removed {removed} entries from {settings.tts_cache_dir}")
