from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from voxhost.api.state import AppState, get_state
from voxhost.api.supervisor import all_workers_started

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
    if state.draining.is_set():
        return JSONResponse({"status": "draining"}, status_code=503)
    if not state.ready.is_set() or not all_workers_started(state.settings.workers):
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse({
        "status": "ready",
        "stt_models": list(state.stt.engines),
        "tts_engines": list(state.tts.engines),
        "stt_pending": state.stt_scheduler.pending,
    })
