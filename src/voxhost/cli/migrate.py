"""`voxhost migrate report`: should this game move to the next migration phase?"""

from __future__ import annotations

from pathlib import Path

import typer

from voxhost.cli.common import console

app = typer.Typer(help="Migration from a cloud speech API: evidence from shadow comparisons.",
                  no_args_is_help=True)


@app.callback()
def migrate() -> None:
    """Migration from a cloud speech API: evidence from shadow comparisons."""


@app.command()
def report(
    shadow_log: Path | None = typer.Option(None, "--shadow-log", "-l",
                                              help="Shadow log (JSON lines; default VOXHOST_ROUTE_SHADOW_LOG)."),
    out: Path = typer.Option(Path("migration"), "--out", "-o", help="Directory for migration.md and .png."),
    current_share: float | None = typer.Option(None, min=0.0, max=1.0,
                                                  help="Local share now (default VOXHOST_ROUTE_LOCAL_SHARE)."),
    min_agreement: float = typer.Option(0.90, min=0.0, max=1.0, help="Least agreement (1 - WER) to move on."),
    max_p95_s: float = typer.Option(2.0, min=0.0, help="Most local p95 latency (s) to move on."),
    max_error_rate: float = typer.Option(0.01, min=0.0, max=1.0, help="Most local error rate to move on."),
    min_samples: int = typer.Option(50, min=1, help="Fewest shadow samples for a recommendation."),
) -> None:
    """Markdown and PNG: agreement, latency, cost; and the next phase, if earned."""
    from voxhost.api.gateway.report import Criteria, load, render, render_plot
    from voxhost.ops.settings import get_settings

    settings = get_settings()
    path = shadow_log or settings.route_shadow_log
    if path is None:
        console.print("[red]no shadow log: pass --shadow-log or set VOXHOST_ROUTE_SHADOW_LOG[/red]")
        raise typer.Exit(code=2)
    try:
        records = load(path)
    except (OSError, ValueError, KeyError) as exc:
        console.print(f"[red]cannot read the shadow log: {exc}[/red]")
        raise typer.Exit(code=2)
    share = settings.route_local_share if current_share is None else current_share
    criteria = Criteria(min_agreement, max_p95_s, max_error_rate, min_samples)
    out.mkdir(parents=True, exist_ok=True)
    render_plot(records, out / "migration.png")
    text = render(records, share, criteria, plot_name="migration.png")
    (out / "migration.md").write_text(text)
    typer.echo(text)
    console.print(f"wrote {out / 'migration.md'} and {out / 'migration.png'}")
