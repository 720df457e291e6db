"""Multipart forms: read within the size limit, then validated by the pydantic
wire model of the route (api/protocol/), with OpenAI-shaped errors."""

from __future__ import annotations

from typing import TypeVar, get_origin

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from voxhost.errors import InvalidRequest, PayloadTooLarge, invalid_request
from voxhost.ops.settings import Settings

# Multipart overhead allowed on top of the audio itself.
FORM_OVERHEAD_BYTES = 256 * 1024


def body_limit(settings: Settings) -> int:
    """The most a request body may hold (BodySizeLimit answers 413 beyond it)."""
    return settings.max_upload_bytes + FORM_OVERHEAD_BYTES


async def read_form(request: Request, settings: Settings, field: str = "file") -> FormData:
    """The multipart body. Too large surfaces as PayloadTooLarge from BodySizeLimit
    (raised from receive()); Starlette's own part limit is set to the body limit so
    that its exception (one type for every problem) can only mean malformed."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest(
            f"Expected a multipart/form-data body with an audio '{field}' field.", param=field
        )
    try:
        return await request.form(max_part_size=body_limit(settings))
    except InvalidRequest:  # PayloadTooLarge among them
        raise
    except Exception as exc:  # malformed multipart
        raise InvalidRequest(f"Malformed multipart body: {str(exc)[:200]}", param=field) from exc


def text_field(form: FormData, name: str, default: str | None = None, max_chars: int | None = None) -> str | None:
    value = form.get(name)
    if value is None:
        return default
    if isinstance(value, UploadFile):
        raise InvalidRequest(f"'{name}' must be a text field, not a file.", param=name)
    if max_chars is not None and len(value) > max_chars:
        raise InvalidRequest(f"'{name}' is longer than {max_chars} characters.", param=name, code="invalid_value")
    value = value.strip()
    return value if value else default


def list_field(form: FormData, name: str) -> list[str]:
    """OpenAI's SDK sends arrays as repeated `name[]` fields."""
    values = [*form.getlist(f"{name}[]"), *form.getlist(name)]
    out: list[str] = []
    for value in values:
        if isinstance(value, UploadFile):
            raise InvalidRequest(f"'{name}' must be text.", param=name)
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


async def file_field(form: FormData, name: str, max_bytes: int) -> tuple[bytes, str]:
    if len(form.getlist(name)) > 1:  # which one to decode would be a guess
        raise InvalidRequest(f"Send exactly one '{name}' part; got {len(form.getlist(name))}.", param=name)
    upload = form.get(name)
    if upload is None:
        raise InvalidRequest(
            f"Missing required multipart field '{name}' (the audio file to transcribe).", param=name
        )
    if not isinstance(upload, UploadFile):
        raise InvalidRequest(f"'{name}' must be a file upload, not a text field.", param=name)
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"The file is larger than the limit of {max_bytes} bytes.", param=name
        )
    return data, upload.filename or "audio"


Model = TypeVar("Model", bound=BaseModel)


def parse(form: FormData, model: type[Model], **uploads: bytes) -> Model:
    """The form's text fields validated by `model`, with `uploads` (files already
    read by `file_field`). Blank fields count as absent; a bad value is a 400
    naming the field."""
    data: dict = dict(uploads)
    for name, field in model.model_fields.items():
        if name in uploads:
            continue
        if get_origin(field.annotation) is list:
            if values := list_field(form, name):
                data[name] = values
        elif (value := text_field(form, name)) is not None:
            data[name] = value
    try:
        return model.model_validate(data)
    except ValidationError as exc:  # the field is the first step of `loc`; the rest name union members
        raise invalid_request([{**error, "loc": error["loc"][:1]} for error in exc.errors()]) from None
