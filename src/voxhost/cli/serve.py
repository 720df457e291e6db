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
    workers: Optional[int] = typer.Option(None, min=1, help="Server processes sharing the port (VOXHOST_WORKERS)."),
) -> None:
    """Start the HTTP/WebSocket server."""
    # CLI flags override env by becoming env: one settings object reads both
    # (and worker processes inherit it).
    if host:
        os.environ["VOXHOST_HOST"] = host
    if port:
        os.environ["VOXHOST_PORT"] = str(port)
    if stt_model:
        os.environ["VOXHOST_STT_MODELS"] = ",".join(stt_model)
    if log_level:
        os.environ["VOXHOST_LOG_LEVEL"] = log_level
    if workers:
        os.environ["VOXHOST_WORKERS"] = str(workers)

    from voxhost.ops.logging import configure_logging
    from voxhost.ops.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level, retain_content=settings.retain_content)
    if settings.workers == 1:
        _run_server(settings)
        return

    import uvicorn

    from voxhost.api.supervisor import Supervisor

    sock = uvicorn.Config("voxhost.api.app:create_app", host=settings.host, port=settings.port).bind_socket()
    code = Supervisor(settings.workers, _worker, sock, settings.drain_timeout_s).run()
    raise typer.Exit(code=code)


def _worker(sock, index: int) -> None:
    """One worker process of `voxhost serve` with VOXHOST_WORKERS > 1 (api/supervisor.py)."""
    from voxhost.api.supervisor import exit_with_parent
    from voxhost.ops.logging import configure_logging
    from voxhost.ops.settings import get_settings

    exit_with_parent()
    settings = get_settings()
    configure_logging(settings.log_level, retain_content=settings.retain_content)
    try:
        _run_server(settings, sockets=[sock])
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None


def _run_server(settings, sockets=None) -> None:
    import uvicorn

    from voxhost.api.app import create_app
    from voxhost.api.lifecycle import DrainingServer
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
    DrainingServer(config, app_.state.voxhost, settings.drain_timeout_s).run(sockets=sockets)
