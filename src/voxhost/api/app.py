"""The ASGI app: wires settings, engines, scheduler and routers together."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.formparsers import MultiPartParser

from voxhost import __version__
from voxhost.api.errors import install_error_handlers
from voxhost.api.middleware import BodySizeLimit
from voxhost.api.routers import console, health, models, realtime, transcriptions
from voxhost.api.state import AppState
from voxhost.engines.stt.registry import SttRegistry
from voxhost.ops.settings import Settings, get_settings
from voxhost.realtime.capacity import SessionSlots
from voxhost.scheduler.executor import EngineExecutor
from voxhost.scheduler.stt import SttScheduler

log = logging.getLogger("voxhost")

# Multipart overhead allowed on top of the audio itself.
FORM_OVERHEAD_BYTES = 256 * 1024


def _load_models(state: AppState) -> None:
    try:
        state.stt.load_all()
        state.ready.set()
        log.info("voxhost ready")
    except Exception as exc:  # surfaced on /ready, process stays up for diagnosis
        state.load_error = f"{type(exc).__name__}: {exc}"
        log.exception("model loading failed")


def create_app(settings: Settings | None = None, *, load_models: bool = True) -> FastAPI:
    settings = settings or get_settings()
    # Uploads stay in memory: Starlette would otherwise spool parts over 1 MB
    # to a temp file, and player audio must not touch disk unless configured.
    MultiPartParser.spool_max_size = settings.max_upload_bytes + FORM_OVERHEAD_BYTES
    state = AppState(
        settings=settings,
        stt=SttRegistry(settings),
        stt_scheduler=SttScheduler(
            EngineExecutor("stt", workers=max(1, settings.stt_num_workers), max_queue=64)
        ),
        realtime=SessionSlots(settings.realtime_max_sessions),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if load_models:
            # Load in the background so /health answers at once and /ready
            # reports progress (ECS health checks start before models are warm).
            threading.Thread(target=_load_models, args=(state,), name="model-loader", daemon=True).start()
        yield
        state.stt_scheduler.shutdown()

    app = FastAPI(
        title="voxhost",
        version=__version__,
        description="Self-hosted, OpenAI-compatible speech-to-text and text-to-speech.",
        lifespan=lifespan,
    )
    app.state.voxhost = state
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + FORM_OVERHEAD_BYTES)
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(transcriptions.router)
    app.include_router(realtime.router)
    console.install(app)
    return app
