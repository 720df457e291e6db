"""`voxhost` command line; each command lives in its own module here."""

from __future__ import annotations

import typer

from voxhost.cli import cache, keys, migrate, voices
from voxhost.cli.loadtest import loadtest
from voxhost.cli.models import assemble, models, models_manifest
from voxhost.cli.plan import bench, plan
from voxhost.cli.serve import serve
from voxhost.cli.transcribe import transcribe

app = typer.Typer(help="voxhost: self-hosted, OpenAI-compatible speech server.", no_args_is_help=True)
for command in (serve, transcribe, models, loadtest, assemble, plan, bench):
    app.command()(command)
app.command("models-manifest")(models_manifest)
app.add_typer(keys.app, name="keys")
app.add_typer(cache.app, name="cache")
app.add_typer(migrate.app, name="migrate")
app.add_typer(voices.app, name="voices")


if __name__ == "__main__":
    app()
