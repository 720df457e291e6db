"""GET /metrics: Prometheus text format (auth is the Gatekeeper's: its own key if configured)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from voxhost.api.state import AppState, get_state
from voxhost.ops.metrics import CONTENT_TYPE

router = APIRouter(tags=["ops"])


@router.get("/metrics", include_in_schema=False)
async def metrics(state: AppState = Depends(get_state)) -> Response:
    return Response(state.metrics.expose(), media_type=CONTENT_TYPE)
