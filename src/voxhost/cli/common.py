"""What the commands share: the stderr console and the progress bar."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)  # results go to stdout, everything else here


def require_plotting() -> None:
    """Stop a drawing command before it does any work if matplotlib (an extra) is missing."""
    from voxhost.plotting import PlottingUnavailable, pyplot

    try:
        pyplot()
    except PlottingUnavailable as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(code=2) from None


def progress_bar() -> Progress:
    """The bar long-running commands show: description, bar, n/total, elapsed."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)
