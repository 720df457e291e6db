from __future__ import annotations

from fastapi import APIRouter, Depends

from voxhost.api.state import AppState, get_state
from voxhost.errors import ModelNotFound, echo

router = APIRouter(prefix="/v1", tags=["models"])

CREATED = 1_700_000_000  # fixed: OpenAI's shape needs an int; ours carries no meaning


class ModelNotListed(ModelNotFound):
    status_code = 404  # as OpenAI answers GET /v1/models/{id} for a model it does not have


def _model_rows(state: AppState) -> list[dict]:
    """What a client can name now: a bundled model that is not loaded would answer 400, so it is
    left out (`voxhost models` lists what could be configured)."""
    rows = [
        {"id": row["id"], "object": "model", "created": CREATED, "owned_by": row["owned_by"],
         "task": "transcription", "loaded": row["loaded"]}
        for row in state.services.stt_engines.describe() if row["loaded"]
    ]
    rows += [
        {"id": row["id"], "object": "model", "created": CREATED, "owned_by": "voxhost", "task": "speech",
         "loaded": row["loaded"]}
        for row in state.services.voices.describe_models()
    ]
    return rows


@router.get("/models")
async def list_models(state: AppState = Depends(get_state)) -> dict:
    return {"object": "list", "data": _model_rows(state)}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, state: AppState = Depends(get_state)) -> dict:
    for row in _model_rows(state):
        if row["id"] == model_id:
            return row
    raise ModelNotListed(f"The model '{echo(model_id)}' does not exist or is not loaded.", param="model")
