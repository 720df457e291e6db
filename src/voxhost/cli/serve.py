"""`voxhost serve`: the HTTP/WebSocket server."""

from __future__ import annotations

import os
from pathlib import Path

import typer


def serve(
    host: str | None = typer.Option(None, help="Bind address (VOXHOST_HOST)."),
    port: int | None = typer.Option(None, help="Port (VOXHOST_PORT)."),
    stt_model: list[str] | None = typer.Option(
        None, "--stt-model", help="STT model(s) to load; first is the default (VOXHOST_STT_MODELS)."
    ),
    log_level: str | None = typer.Option(None, help="Log level (VOXHOST_LOG_LEVEL)."),
    workers: int | None = typer.Option(None, min=1, help="Server processes sharing the port (VOXHOST_WORKERS)."),
    ssl_certfile: Path | None = typer.Option(
        None, help="Serve https and wss with this PEM certificate (chain) (VOXHOST_TLS_CERTFILE)."),
    ssl_keyfile: Path | None = typer.Option(None, help="The certificate's PEM private key (VOXHOST_TLS_KEYFILE)."),
    tls_dev: bool = typer.Option(
        False, "--tls-dev", help="Development TLS: a local CA and a localhost certificate, made once under "
        "the cache directory; prints how to trust it (VOXHOST_TLS_DEV)."),
) -> None:
    """Start the HTTP/WebSocket server."""
    # Before anything loads numpy or CTranslate2: their thread pools read the environment once.
    from voxhost.engines.threads import configure_environment

    configure_environment()
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
    if ssl_certfile:
        os.environ["VOXHOST_TLS_CERTFILE"] = str(ssl_certfile)
    if ssl_keyfile:
        os.environ["VOXHOST_TLS_KEYFILE"] = str(ssl_keyfile)
    if tls_dev:
        os.environ["VOXHOST_TLS_DEV"] = "true"

    from voxhost.ops.logging import configure_logging
    from voxhost.ops.settings import get_settings
    from voxhost.ops.tls import trust_instructions

    get_settings.cache_clear()
    settings = get_settings()
    configure_logging(settings.log_level, retain_content=settings.retain_content)
    tls = _tls(settings)  # made here, once, before any worker starts
    if tls is not None and tls.ca_file is not None:
        typer.echo(trust_instructions(tls, settings.port), err=True)
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


def _tls(settings):
    from voxhost.ops.tls import TlsConfigError, server_tls

    try:
        return server_tls(settings)
    except TlsConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2)


def _run_server(settings, sockets=None) -> None:
    import uvicorn

    from voxhost.api.app import create_app
    from voxhost.api.gateway.config import GatewayConfigError
    from voxhost.api.lifecycle import DrainingServer

    try:
        app_ = create_app(settings)
    except GatewayConfigError as exc:  # bad upstream/routing settings: say which, don't start
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2)
    tls = _tls(settings)
    config = uvicorn.Config(
        app_,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(tls.certfile) if tls else None,
        ssl_keyfile=str(tls.keyfile) if tls else None,
        log_config=None,
        # Our drain already waited for accepted work; this bounds the rest.
        timeout_graceful_shutdown=5,
        ws_ping_interval=20.0,
        timeout_keep_alive=settings.keepalive_timeout_s,
    )
    DrainingServer(config, app_.state.voxhost, settings.drain_timeout_s).run(sockets=sockets)
