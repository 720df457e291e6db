"""`voxhost serve`: the HTTP/WebSocket server."""

from __future__ import annotations

import os
from typing import Optional

import typer


def serve(
    host: Optional[str] = typer.Option(None, help="Bind address (VOXHOST_HOST)."),
    port: Optional[int] = typer.Option(None, help="Port (VOXHOST_PORT)."),
    stt_model: Optional[list[str]] = typer.Option(
        None, "--stt-model", help="STT model(s) to load; first is the default (VOXHOST_STT_MODELS)."
    ),
    log_level: Optional[str] = typer.Option(None, help="Log level (VOXHOST_LOG_LEVEL)."),
) -> None:
    """Start the HTTP/WebSocket server."""
    import uvicorn

    # CLI flags override env by becoming env: one settings object reads both.
    if host:
        os.environ["VOXHOST_HOST"] = host
    if port:
        os.environ["VOXHOST_PORT"] = str(port)
    if stt_model:
        os.environ["VOXHOST_STT_MODELS"] = ",".join(stt_model)
    if log_level:
        os.environ["VOXHOST_LOG_LEVEL"] = log_level

    from voxhost.api.app import create_app
    from voxhost.ops.logging import configure_logging
    from voxhost.ops.settings import get_settings

    from voxhost.api.lifecycle import DrainingServer

    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level, retain_content=settings.retain_content)
    from voxhost.gateway.config import GatewayConfigError

    try:
        app_ = create_app(settings)
    except GatewayConfigError as exc:  # bad upstream/routing settings: say which, don't start
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2)
    config = uvicorn.Config(
        app_,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # Our drain already waited for accepted work; this bounds the rest.
        timeout_graceful_shutdown=5,
        ws_ping_interval=20.0,
        timeout_keep_alive=settings.keepalive_timeout_s,
    )
    DrainingServer(config, app_.state.voxhost, settings.drain_timeout_s).run()
