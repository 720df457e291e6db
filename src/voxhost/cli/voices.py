"""`voxhost voices`: designed voices in VOXHOST_VOICES_DIR, without a server.

Servers sharing the directory pick changes up within a second; the same
checks apply as for POST /v1/audio/voices (the voice catalog does both).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from voxhost.cli.common import console

if TYPE_CHECKING:
    from voxhost.tts.voices import VoiceCatalog

app = typer.Typer(help="Designed voices (a base voice plus pitch, formant, pace and an effect), saved by name.",
                  no_args_is_help=True)


def _catalog() -> VoiceCatalog:
    from voxhost.ops.settings import get_settings
    from voxhost.services import build_services

    services = build_services(get_settings())
    with console.status("Loading TTS engines (to check base voices)..."):
        services.tts_engines.load_all(warm_up=False)
    return services.voices


def _create(catalog: VoiceCatalog, data: dict, replace: bool) -> None:
    from voxhost.tts.designs import VoiceDesign

    design = VoiceDesign.parse(data)
    if replace and catalog.designs.get(design.name) is not None:
        catalog.designs.delete(design.name)
    catalog.create_design(design)
    console.print(f"saved {design.name} in {catalog.designs.dir}")


def _fail(exc) -> None:
    console.print(f"[red]{exc.message}[/red]")
    raise typer.Exit(code=1)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Lower case letters, digits, _ and -."),
    base: str = typer.Option(..., help="A voice id, OpenAI name or Kokoro blend: 'am_onyx(2)+bm_george(1)'."),
    pitch: float = typer.Option(0.0, "--pitch", help="Semitones, -12..12."),
    formant: float = typer.Option(0.0, "--formant", help="Formant shift, -0.3..0.3 (negative: bigger)."),
    speed: float = typer.Option(1.0, help="Pace, 0.5..2."),
    effect: str | None = typer.Option(None, help="radio, helmet, cave, robot, giant, goblin or ghost."),
    description: str = typer.Option("", help="What the voice is for."),
    replace: bool = typer.Option(False, help="Overwrite a voice of that name."),
) -> None:
    """Create (or with --replace, redefine) a designed voice."""
    from voxhost.errors import VoxhostError

    data = {"name": name, "base": base, "pitch_semitones": pitch, "formant_shift": formant, "speed": speed,
            "effect": effect, "description": description}
    try:
        _create(_catalog(), data, replace)
    except VoxhostError as exc:
        _fail(exc)


@app.command("import")
def import_cast(
    cast: Path = typer.Argument(..., exists=True, dir_okay=False, help="YAML: a list of voice designs, or "
                                "a mapping name -> design."),
    replace: bool = typer.Option(True, help="Redefine voices that already exist."),
) -> None:
    """Load a whole game's cast at once."""
    import yaml

    from voxhost.errors import VoxhostError

    loaded = yaml.safe_load(cast.read_text(encoding="utf-8")) or []
    if isinstance(loaded, dict):
        loaded = [{"name": name, **(design or {})} for name, design in loaded.items()]
    if not isinstance(loaded, list) or not all(isinstance(item, dict) for item in loaded):
        raise typer.BadParameter(f"{cast}: expected a list of designs or a mapping name -> design")
    catalog = _catalog()
    failed = 0
    for item in loaded:
        try:
            _create(catalog, item, replace)
        except VoxhostError as exc:
            failed += 1
            console.print(f"[red]{item.get('name', '?')}: {exc.message}[/red]")
    console.print(f"imported {len(loaded) - failed} of {len(loaded)} voices")
    if failed:
        raise typer.Exit(code=1)


@app.command("list")
def list_voices(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The designed voices in VOXHOST_VOICES_DIR."""
    from voxhost.ops.settings import get_settings
    from voxhost.tts.designs import DesignStore

    designs = DesignStore(get_settings().designs_dir).all()
    if as_json:
        typer.echo(json.dumps([d.describe() for d in designs], indent=2))
        return
    table = Table("name", "base", "pitch", "formant", "speed", "effect", "description")
    for d in designs:
        table.add_row(d.name, d.base, f"{d.pitch_semitones:+g}", f"{d.formant_shift:+g}", f"{d.speed:g}",
                      d.effect or "", d.description)
    Console().print(table)


@app.command("delete")
def delete(name: str = typer.Argument(...)) -> None:
    """Remove a designed voice (every server sharing the directory stops offering it)."""
    from voxhost.ops.settings import get_settings
    from voxhost.tts.designs import DesignStore

    if not DesignStore(get_settings().designs_dir).delete(name):
        console.print(f"[red]No designed voice '{name}'.[/red]")
        raise typer.Exit(code=1)
    console.print(f"deleted {name}")
