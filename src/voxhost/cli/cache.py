"""`voxhost cache`: the TTS phrase cache."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from voxhost.cli.common import console, progress_bar

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
    service = SpeechService(registry, scheduler, cache, max_input_chars=settings.max_text_chars,
                            first_chunk_words=settings.tts_first_chunk_words)
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
    scheduler.shutdown()
    if cache.disk is not None:
        cache.disk.enforce()
    console.print(f"synthesised {counts['miss']}, already cached {counts['hit']}, failed {counts['failed']}")
    if counts["failed"]:
        raise typer.Exit(code=1)


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
