"""Model listing, inspection and the model-management routes an Ollama client may call."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response

from app.errors import InvalidRequest, ModelRequired, NotSupported
from app.generation import Services, services_of
from app.http.body import parse_body
from app.http.responses import json_response, ndjson_response
from app.ollama import CopyRequest, ListResponse, ModelRequest, ProcessResponse
from app.ollama.translate.show import process_model, show_response, tag_model

__all__ = ["blob", "copy", "create", "delete", "list_tags", "list_running", "pull", "push", "show"]

_MANAGED = "models are managed by mistral.rs, not through this API"


async def _named(request: Request) -> tuple[Services, ModelRequest]:
    body = await parse_body(request, ModelRequest)
    if not (body.model or body.name):
        raise ModelRequired()
    return services_of(request), body


async def list_tags(request: Request) -> Response:
    entries = await services_of(request).catalog.entries(fresh=True)
    return json_response(ListResponse(models=[tag_model(entry) for entry in entries]))


async def list_running(request: Request) -> Response:
    services = services_of(request)
    entries = await services.catalog.entries(fresh=True)
    where = services.upstream.locations
    return json_response(ProcessResponse(models=[process_model(e, where(e.id)) for e in entries if e.loaded]))


async def show(request: Request) -> Response:
    services, body = await _named(request)
    entry = await services.catalog.resolve(body.model or body.name)
    return json_response(show_response(entry, verbose=body.verbose is True))


async def _pull_progress() -> AsyncIterator[bytes]:  # nothing to download: mistral.rs has the model
    yield b'{"status":"pulling manifest"}\n'
    yield b'{"status":"success"}\n'


async def pull(request: Request) -> Response:
    """mistral.rs already serves the model, so ``ollama pull``/``run`` flows succeed at once."""
    services, body = await _named(request)
    name = body.model or body.name
    await services.catalog.resolve(name, f"model '{name}' not found: this server cannot pull models; {_MANAGED}")
    if body.stream is False:
        return json_response({"status": "success"})
    return ndjson_response(_pull_progress())


async def _refuse_known(request: Request, name: str, action: str) -> Response:
    await services_of(request).catalog.resolve(name)
    raise NotSupported(f"{action} is not supported: {_MANAGED}")


async def push(request: Request) -> Response:
    _, body = await _named(request)
    return await _refuse_known(request, body.model or body.name, "pushing models")


async def delete(request: Request) -> Response:
    _, body = await _named(request)
    return await _refuse_known(request, body.model or body.name, "deleting models")


async def copy(request: Request) -> Response:
    body = await parse_body(request, CopyRequest)
    if not body.source or not body.destination:
        raise InvalidRequest("source and destination are required")
    return await _refuse_known(request, body.source, "copying models")


async def create(request: Request) -> Response:
    raise NotSupported(f"creating models is not supported: {_MANAGED}")


async def blob(request: Request) -> Response:
    if request.method == "HEAD":
        return Response(status_code=404)  # no blob exists here
    raise NotSupported(f"uploading blobs is not supported: {_MANAGED}")
