"""What the commands share: the stderr console and the progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)  # results go to stdout, everything else here


def can_plot() -> bool:
    """Whether matplotlib (the `plot` extra) is here. Without it a drawing command still does
    its work and prints its text, and says (now, before the work) how to get the plot too."""
    from voxhost.plotting import PlottingUnavailable, pyplot

    try:
        pyplot()
    except PlottingUnavailable as exc:
        console.print(f"[yellow]no plot this time: {escape(str(exc))}[/yellow]")
        return False
    return True


def progress_bar() -> Progress:
    """The bar long-running commands show: description, bar, n/total, elapsed."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)
