"""The ASGI app: wires settings, engines, scheduler and routers together."""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.formparsers import MultiPartParser

from voxhost import __version__
from fastapi.openapi.utils import get_openapi

from voxhost.api.errors import ERROR_RESPONSES, install_error_handlers, truthful_responses
from voxhost.api.lifecycle import start_target_drain_watch
from voxhost.api.forms import body_limit
from voxhost.api.middleware import PROBE_PATHS, BodySizeLimit, Gatekeeper, RequestAccounting
from voxhost.api.origins import install_cors
from voxhost.api.supervisor import mark_worker_ready
from voxhost.api.routers import console, health, metrics, models, realtime, speech, transcriptions
from voxhost.api.state import AppState
from voxhost.cache.phrases import PhraseCache
from voxhost.engines.stt.registry import SttRegistry
from voxhost.engines.tts.registry import TtsRegistry
from voxhost.gateway.proxy import build_gateway
from voxhost.ops.auth import KeyStore, load_keys_file, parse_keys
from voxhost.ops.cost import ComputeCost, resolve_instance_type
from voxhost.ops.emf import EmfEmitter, task_id
from voxhost.ops.memory import configure_allocator, trim_when_idle
from voxhost.ops.metrics import Metrics
from voxhost.ops.settings import Settings, get_settings
from voxhost.realtime.silero_batch import batched_session
from voxhost.scheduler.sessions import SessionGate
from voxhost.scheduler.stt import SttScheduler
from voxhost.scheduler.tts import TtsScheduler
from voxhost.tts.service import SpeechService

log = logging.getLogger("voxhost")

TRIM_INTERVAL_S = 10.0  # how soon after load stops memory is handed back


def _load_models(state: AppState) -> None:
    try:
        state.stt.load_all()
        if state.stt.engines:  # live sessions' VAD: the Silero graph rewritten for batching (~0.1 s)
            batched_session()
        state.tts.load_all()
        for engine in state.stt.engines.values():  # schedulers (and their metric series) exist before traffic
            state.stt_scheduler.executor_for(engine)
        state.ready.set()
        mark_worker_ready()  # several workers: /ready waits for all (api/supervisor.py)
        log.info("voxhost ready")
    except Exception as exc:  # surfaced on /ready, process stays up for diagnosis
        state.load_error = f"{type(exc).__name__}: {exc}"
        log.exception("model loading failed")


def build_state(settings: Settings) -> AppState:
    keys = parse_keys(settings.api_keys)
    if settings.api_keys_file:
        keys += load_keys_file(settings.api_keys_file)
    metrics = Metrics()
    cost = ComputeCost(resolve_instance_type(settings.instance_type), settings.instance_price_per_hour)
    try:
        cost.hourly  # noqa: B018 - fail at start-up, not on the first request
    except KeyError:
        raise ValueError(f"VOXHOST_INSTANCE_TYPE={settings.instance_type!r} has no price in ops/cost.py; "
                         "set VOXHOST_INSTANCE_PRICE_PER_HOUR") from None
    state = AppState(
        settings=settings,
        stt=SttRegistry(settings),
        stt_scheduler=None,  # type: ignore[arg-type]  # needs the state's factory, set below
        tts=TtsRegistry(settings),
        tts_scheduler=None,  # type: ignore[arg-type]
        speech=None,  # type: ignore[arg-type]
        metrics=metrics,
        keys=KeyStore(keys, metrics_sha256=settings.metrics_api_key_sha256),
        cost=cost,
    )
    def stt_executor(engine):
        batching = settings.stt_batching
        if batching is None:
            batching = getattr(engine, "device", "cpu") == "cuda"
        return state.make_executor(
            # As many at once as the engine decodes in parallel: the setting, or when it is
            # auto (0) the engine's resolved count (Whisper: engines/stt/whisper.py).
            f"stt:{engine.name}", workers=max(1, settings.stt_num_workers or getattr(engine, "num_workers", 1)),
            max_batch=settings.stt_max_batch_size if batching else 1,
            max_wait_s=settings.stt_max_batch_wait_ms / 1000.0,
        )

    state.stt_scheduler = SttScheduler(stt_executor, batching=settings.stt_batching is not False)
    state.tts_scheduler = TtsScheduler(state.make_executor(
        "tts", workers=max(1, settings.tts_concurrency), max_queue=max(0, settings.tts_max_queue)))
    state.speech = SpeechService(state.tts, state.tts_scheduler, PhraseCache.from_settings(settings),
                                 max_input_chars=settings.max_text_chars,
                                 first_chunk_words=settings.tts_first_chunk_words)
    state.sessions = SessionGate(
        max_sessions=settings.max_live_sessions, max_per_key=settings.max_sessions_per_key,
        on_change=metrics.session_opened_or_closed,
    )
    state.gateway = build_gateway(state)  # migration gateway: None unless an upstream is configured
    return state


def _truthful_openapi(app: FastAPI):
    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = truthful_responses(get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes),
                PROBE_PATHS)
        return app.openapi_schema
    return openapi


class _GatewayMiddleware:
    def __init__(self, app, *, gateway):
        self.call = gateway.middleware(app)

    async def __call__(self, scope, receive, send):
        await self.call(scope, receive, send)


def create_app(settings: Settings | None = None, *, load_models: bool = True) -> FastAPI:
    settings = settings or get_settings()
    # Uploads stay in memory: Starlette would otherwise spool parts over 1 MB
    # to a temp file, and player audio must not touch disk unless configured.
    MultiPartParser.spool_max_size = body_limit(settings)
    state = build_state(settings)
    if state.keys.open:
        log.warning("no API keys configured: every route is open (fine for local use; "
                    "set VOXHOST_API_KEYS or VOXHOST_API_KEYS_FILE before exposing this server)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if load_models:
            # Load in the background so /health answers at once and /ready
            # reports progress (ECS health checks start before models are warm).
            threading.Thread(target=_load_models, args=(state,), name="model-loader", daemon=True).start()
        emf_task = None
        configure_allocator()
        # After a burst, RSS must come back down (hostile probe: it stayed 2.7x up).
        trimmer = asyncio.create_task(trim_when_idle(lambda: state.http_in_flight == 0, TRIM_INTERVAL_S))
        if settings.emf_enabled:
            emitter = EmfEmitter(
                namespace=settings.emf_namespace, service_name=settings.emf_service_name,
                task=await asyncio.to_thread(task_id),
                gauges=lambda: {"QueueDepth": state.metrics.total_queue_depth(),
                                "InFlight": state.metrics.total_in_flight(),
                                "LiveSessions": state.sessions.active if state.sessions else 0},
            )
            state.metrics.attach_emf(emitter)
            emf_task = asyncio.create_task(emitter.run(settings.emf_interval_s))
        target_watch = start_target_drain_watch(state)
        yield
        trimmer.cancel()
        if emf_task is not None:
            emf_task.cancel()
        if target_watch is not None:
            target_watch.cancel()
        state.stt_scheduler.shutdown()
        state.tts_scheduler.shutdown()
        if state.gateway is not None:
            await state.gateway.aclose()

    app = FastAPI(
        title="voxhost",
        version=__version__,
        description="Self-hosted, OpenAI-compatible speech-to-text and text-to-speech.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.openapi = _truthful_openapi(app)
    app.state.voxhost = state
    install_error_handlers(app)
    # Added innermost first: accounting wraps everything, then keys/drain, then
    # body size, then the migration gateway (local or upstream, per request).
    if state.gateway is not None:
        app.add_middleware(_GatewayMiddleware, gateway=state.gateway)
    app.add_middleware(BodySizeLimit, max_bytes=body_limit(settings))
    app.add_middleware(Gatekeeper, state=state)
    app.add_middleware(RequestAccounting, state=state)
    install_cors(app, settings.cors_origins)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(models.router)
    app.include_router(transcriptions.router)
    app.include_router(speech.router)
    app.include_router(realtime.router)
    console.install(app)
    return app
