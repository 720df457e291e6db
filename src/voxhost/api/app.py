"""The ASGI app: the services (voxhost/services.py) behind routers and middleware."""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.formparsers import MultiPartParser

from voxhost import __version__
from voxhost.api.admission import SessionGate
from voxhost.api.errors import ERROR_RESPONSES, install_error_handlers, truthful_responses
from voxhost.api.forms import body_limit
from voxhost.api.gateway.proxy import build_gateway
from voxhost.api.lifecycle import start_target_drain_watch, start_task_protection
from voxhost.api.middleware import PROBE_PATHS, BodySizeLimit, Gatekeeper, RequestAccounting
from voxhost.api.origins import install_cors
from voxhost.api.routers import console, health, metrics, models, realtime, speech, transcriptions
from voxhost.api.state import AppState
from voxhost.api.supervisor import mark_worker_ready
from voxhost.engines.threads import limit_blas, usable_cores
from voxhost.ops.auth import KeyStore, load_keys_file, parse_keys
from voxhost.ops.capacity import default_live_sessions
from voxhost.ops.emf import EmfEmitter, task_id
from voxhost.ops.memory import configure_allocator, start_serving, trim_when_idle
from voxhost.ops.settings import Settings, get_settings
from voxhost.services import build_services

log = logging.getLogger("voxhost")

TRIM_INTERVAL_S = 10.0  # how soon after load stops memory is handed back


def _load_models(state: AppState) -> None:
    try:
        if state.settings.models_manifest is not None:  # a versioned release: every file as released
            from voxhost.ops.model_manifest import verify_manifest

            manifest = verify_manifest(state.settings.models_manifest)
            log.info("models version %s verified (%d files)", manifest.get("version"), len(manifest["files"]))
        state.services.load()
        start_serving()  # the loads are done: model calls reuse their buffers (ops/memory.py)
        stt_engines = state.services.stt_engines
        if stt_engines.engines:  # where the default engine really decodes
            state.sessions.max_sessions = live_session_capacity(state.settings, stt_engines.get(None).device)
            state.metrics.set_session_capacity(state.sessions.max_sessions)
        state.ready.set()
        mark_worker_ready()  # several workers: /ready waits for all (api/supervisor.py)
        log.info("voxhost ready")
    except Exception as exc:  # surfaced on /ready, process stays up for diagnosis
        state.load_error = f"{type(exc).__name__}: {exc}"
        log.exception("model loading failed")


def live_session_capacity(settings: Settings, device: str) -> int:
    """VOXHOST_MAX_LIVE_SESSIONS, or when unset what this host's cores take (ops/capacity.py)."""
    if settings.max_live_sessions is not None:
        return settings.max_live_sessions
    return default_live_sessions(device, usable_cores(), settings.workers)


def _planned_stt_device(settings: Settings) -> str:
    """Where the default STT engine will decode, before it loads (refined once it has)."""
    if not settings.stt_models:
        return "cpu"
    if settings.stt_models[0] == "simulated-gpu":
        return "cuda"
    from voxhost.engines.stt.whisper import resolve_device

    return resolve_device(settings.stt_device)


def build_state(settings: Settings) -> AppState:
    keys = parse_keys(settings.api_keys)
    if settings.api_keys_file:
        keys += load_keys_file(settings.api_keys_file)
    services = build_services(settings)
    state = AppState(
        services=services,
        sessions=SessionGate(max_sessions=live_session_capacity(settings, _planned_stt_device(settings)),
                             max_per_key=settings.max_sessions_per_key,
                             on_change=services.metrics.session_opened_or_closed),
        keys=KeyStore(keys, metrics_sha256=settings.metrics_api_key_sha256),
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
    limit_blas()  # every other pool is sized where it is made (engines/threads.py)
    # Uploads stay in memory: Starlette would otherwise spool parts over 1 MB
    # to a temp file, and player audio must not touch disk unless configured.
    MultiPartParser.spool_max_size = body_limit(settings)
    state = build_state(settings)
    if state.keys.open:
        log.warning("no API keys configured: every route is open (fine for local use; "
                    "set VOXHOST_API_KEYS or VOXHOST_API_KEYS_FILE before exposing this server)")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure_allocator()  # the loading policy until the models are in (ops/memory.py)
        if load_models:
            # Load in the background so /health answers at once and /ready
            # reports progress (ECS health checks start before models are warm).
            threading.Thread(target=_load_models, args=(state,), name="model-loader", daemon=True).start()
        else:
            start_serving()
        emf_task = None
        # What this process admits, as the gate enforces it (capacity owns how the default is derived).
        # Set again once the default STT engine has loaded and its device is known (_load_models).
        state.metrics.set_session_capacity(state.sessions.max_sessions)
        # After a burst, RSS must come back down (docs/benchmarks.md, "Hostile probe").
        trimmer = asyncio.create_task(trim_when_idle(lambda: state.http_in_flight == 0, TRIM_INTERVAL_S))
        if settings.emf_enabled:
            emitter = EmfEmitter(
                namespace=settings.emf_namespace, service_name=settings.emf_service_name,
                task=await asyncio.to_thread(task_id),
                gauges=lambda: {"QueueDepth": state.metrics.total_queue_depth(),
                                "InFlight": state.metrics.total_in_flight(),
                                "LiveSessions": state.sessions.active,
                                # The task's, not this worker's: the service's Maximum is one task's capacity.
                                "LiveSessionCapacity": state.sessions.max_sessions * settings.workers,
                                "SttInFlight": state.metrics.work("stt", queued=False),
                                "SttQueued": state.metrics.work("stt", queued=True),
                                "TtsInFlight": state.metrics.work("tts", queued=False),
                                "TtsQueued": state.metrics.work("tts", queued=True)},
                counters=lambda: {"LiveSessionsRefused": state.metrics.sessions_refused()},
            )
            state.metrics.attach_emf(emitter)
            emf_task = asyncio.create_task(emitter.run(settings.emf_interval_s))
        target_watch = start_target_drain_watch(state)
        agent = None
        if settings.lb_agent_port:
            from voxhost.api.lb_agent import serve_agent

            agent = await serve_agent(state, settings.host, settings.lb_agent_port)
        protection = start_task_protection(state)
        yield
        if agent is not None:
            agent.close()
        if protection is not None:
            protection.cancel()
        trimmer.cancel()
        if emf_task is not None:
            emf_task.cancel()
        if target_watch is not None:
            target_watch.cancel()
        state.services.shutdown()
        if state.gateway is not None:
            await state.gateway.aclose()

    app = FastAPI(
        title="voxhost",
        version=__version__,
        description="Self-hosted, OpenAI-compatible speech-to-text and text-to-speech.",
        lifespan=lifespan,
        responses=ERROR_RESPONSES,
    )
    app.openapi = _truthful_openapi(app)  # type: ignore[method-assign]  # FastAPI's documented override
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
