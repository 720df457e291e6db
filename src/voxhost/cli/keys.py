"""`voxhost keys`: API keys."""

from __future__ import annotations

import json

import typer

from voxhost.cli.common import console

app = typer.Typer(help="API keys (stored as sha256 digests only).", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="A name for the key (shown in logs and metrics)."),
    rpm: int | None = typer.Option(None, help="Requests per minute allowed."),
    audio_minutes_per_day: float | None = typer.Option(None, help="Audio minutes per UTC day allowed."),
) -> None:
    """Print a new key once, and the hashed entry to add to VOXHOST_API_KEYS_FILE."""
    from voxhost.ops.auth import new_entry

    key, entry = new_entry(name, rpm=rpm, audio_minutes_per_day=audio_minutes_per_day)
    console.print("[bold]API key (shown once; store it in your client's secret store):[/bold]")
    typer.echo(key)
    console.print("[bold]Entry for VOXHOST_API_KEYS_FILE (JSON list) or VOXHOST_API_KEYS (name:sha256):[/bold]")
    typer.echo(json.dumps(entry))
    typer.echo(f"{entry['name']}:{entry['sha256']}")
