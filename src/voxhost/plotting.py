"""matplotlib, for the commands that draw (`voxhost plan`, `voxhost loadtest`).

It is an optional extra (`voxhost[plot]`): the server never plots, so its
image need not carry matplotlib. Commands ask here first and, without it,
say which extra to install instead of failing on an ImportError.
"""

from __future__ import annotations

INSTALL_HINT = "pip install 'voxhost[plot]'"


class PlottingUnavailable(RuntimeError):
    pass


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    try:
        import matplotlib
    except ImportError as exc:
        raise PlottingUnavailable(f"Drawing the plot needs matplotlib, which is not installed: "
                                  f"{INSTALL_HINT} (or `make install EXTRAS=plot`).") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
