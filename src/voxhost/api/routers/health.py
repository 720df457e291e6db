from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from voxhost.api.errors import error_headers
from voxhost.api.state import AppState, get_state
from voxhost.api.supervisor import all_workers_started
from voxhost.errors import Draining, NotReady

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health() -> dict:
    """Liveness: the process answers. Never depends on models."""
    return {"status": "ok"}


@router.get("/ready")
async def ready(state: AppState = Depends(get_state)) -> JSONResponse:
    """Readiness: models loaded and warm, not draining (ALB/ECS target health)."""
    if state.load_error:
        return JSONResponse({"status": "failed", "error": state.load_error}, status_code=503)
    # Retry-After as on every other 503 (errors.py's figures): a probe or client knows when to look again.
    # Leaving (the HAProxy agent's drain) reads as draining to the load balancer too.
    if state.draining.is_set() or state.leaving.is_set():
        return JSONResponse({"status": "draining"}, status_code=503, headers=error_headers(Draining("draining")))
    if not state.ready.is_set() or not all_workers_started(state.settings.workers):
        return JSONResponse({"status": "loading"}, status_code=503, headers=error_headers(NotReady("loading")))
    return JSONResponse({
        "status": "ready",
        "stt_models": list(state.services.stt_engines.engines),
        "tts_engines": list(state.services.tts_engines.engines),
        "stt_pending": state.services.stt_scheduler.pending,
    })
