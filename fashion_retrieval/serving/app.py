"""The HTTP face of a :class:`~fashion_retrieval.serving.service.SearchService`: a FastAPI app with the
search API, the catalogue's images, ``/healthz``, ``/info``, OpenAPI docs at ``/docs`` and the web page
of ``static/`` at ``/`` (docs/serving.md).

Bodies are read whole into memory, up to ``max_upload_bytes`` (413 beyond, before the rest is read) and
within ``body_timeout`` seconds per chunk (408 for a client that stalls), by :class:`BodyLimit` in front of
the app; an upload is decoded from memory and never stored under a name the client chose. Every refusal
is a 4xx JSON ``{"error": ...}`` naming the problem; the search itself runs in a worker thread so a slow
search never blocks ``/healthz``.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fashion_retrieval.serving.schemas import (
    BundleQuery,
    ErrorOut,
    Health,
    Options,
    ProductOut,
    RandomBundle,
    SearchAnswer,
    TextQuery,
)
from fashion_retrieval.serving.service import SearchService, ServiceError
from fashion_retrieval.serving.spec import SPEC_ENV, ServiceSpec

STATIC_DIR = Path(__file__).parent / "static"
DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_K = 100
DEFAULT_BODY_TIMEOUT = 10.0
# The longest query text, in characters (the text tower truncates to its own max_length tokens anyway).
DEFAULT_MAX_TEXT_CHARS = 500
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut} for status in (400, 404, 408, 413, 415, 422)
}
SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "JPEG, PNG or WebP"},
                        **Options.model_json_schema()["properties"],
                        **TextQuery.model_json_schema()["properties"],
                    },
                }
            },
            "application/json": {
                "schema": {"oneOf": [BundleQuery.model_json_schema(), TextQuery.model_json_schema()]}
            },
        },
    }
}


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def validation_message(error: ValidationError | RequestValidationError) -> str:
    """``field: problem; ...`` of a validation error."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}" for e in error.errors()
    )


class BodyLimit:
    """ASGI middleware: reads a request's whole body before the app sees it, refusing one over
    ``max_bytes`` (413, from ``Content-Length`` before reading, or as soon as the chunks pass it) and a
    client whose next chunk does not come within ``timeout`` seconds (408)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        too_large = f"the request body is over serve.max_upload_bytes = {self.max_bytes} bytes"
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, too_large)(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.timeout)
            except asyncio.TimeoutError:
                message = f"the request body did not arrive within serve.body_timeout = {self.timeout} s"
                await error_response(408, message)(scope, receive, send)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await error_response(413, too_large)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


Query = BundleQuery | Options | TextQuery


async def parse_search(
    request: Request, max_k: int, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
) -> tuple[bytes | None, Query]:
    """``(upload bytes or None, query)`` of a search: a multipart photo (:class:`Options`), a JSON bundle
    (:class:`BundleQuery`), or a text with an optional photo, product or neither (:class:`TextQuery`: a
    form field or JSON key ``text`` or ``product_id`` makes one)."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        async with request.form(max_files=1, max_fields=8) as form:
            upload = form.get("image")
            fields = {key: value for key, value in form.items() if key != "image"}
            is_text = "text" in fields or "product_id" in fields
            if upload is not None and not isinstance(upload, UploadFile):
                raise ServiceError(400, "the multipart field 'image' must be a file")
            if upload is None and not is_text:
                raise ServiceError(400, "the multipart form has no file field 'image' (nor a field 'text')")
            data = None if upload is None else await upload.read()
        query: Query = TextQuery.model_validate(fields) if is_text else Options.model_validate(fields)
    elif media_type == "application/json":
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError as error:
            raise ServiceError(400, f"the JSON body does not parse: {error}") from error
        if not isinstance(body, dict):
            raise ServiceError(400, 'the JSON body must be an object such as {"bundle_id": "..."}')
        is_text = "text" in body or "product_id" in body
        data, query = None, TextQuery.model_validate(body) if is_text else BundleQuery.model_validate(body)
    else:
        raise ServiceError(
            415,
            f"content type {media_type or 'none'!r}: send multipart/form-data with a file field 'image' "
            '(and/or a field \'text\'), or application/json {"bundle_id": ...} or {"text": ...}',
        )
    if query.k > max_k:
        raise ServiceError(422, f"k: at most serve.max_k = {max_k} products, got {query.k}")
    if isinstance(query, TextQuery) and len(query.text) > max_text_chars:
        raise ServiceError(
            422, f"text: at most serve.max_text_chars = {max_text_chars} characters, got {len(query.text)}"
        )
    return data, query


def create_app(
    service: SearchService,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_k: int = DEFAULT_MAX_K,
    body_timeout: float = DEFAULT_BODY_TIMEOUT,
    seed: int | None = None,
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
) -> FastAPI:
    """The app of ``service``: requests up to ``max_upload_bytes``, at most ``max_k`` products each,
    bodies within ``body_timeout`` seconds per chunk, texts of at most ``max_text_chars`` characters;
    ``seed`` fixes ``/bundles/random`` (tests)."""
    app = FastAPI(
        title="fashion-retrieval",
        summary="Complete the look: the catalogue products in a photo (docs/serving.md)",
        responses=ERRORS,
    )
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes, timeout=body_timeout)
    rng = random.Random(seed)

    @app.exception_handler(ServiceError)
    async def refused(_: Request, error: ServiceError) -> JSONResponse:
        return error_response(error.status, error.message)

    @app.exception_handler(ValidationError)
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: ValidationError | RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(error))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail))

    @app.post("/search", response_model=SearchAnswer, openapi_extra=SEARCH_BODY)
    async def search(request: Request) -> dict[str, Any]:
        """Rank the catalogue for a photo (multipart field ``image``) or a dataset bundle (JSON
        ``{"bundle_id": ...}``), with the options ``k``, ``section``, ``detector``, ``rerank``; or for a
        text (``text``: form field or JSON key), alone or composed with the ``image`` upload or a
        ``product_id`` ("this product, in black"), with ``k`` and ``section``."""
        data, query = await parse_search(request, max_k, max_text_chars)
        if isinstance(query, TextQuery):
            return await run_in_threadpool(service.search_text, query, data)
        if data is None:
            assert isinstance(query, BundleQuery)
            return await run_in_threadpool(service.search_bundle, query.bundle_id, query)
        return await run_in_threadpool(service.search_photo, data, query)

    @app.get("/products/{product_id}", response_model=ProductOut)
    def product(product_id: str) -> dict[str, Any]:
        """A catalogue product: category, section, image URL."""
        return service.product(product_id)

    @app.get("/products/{product_id}/image", response_class=FileResponse)
    def product_image(product_id: str) -> FileResponse:
        return FileResponse(service.product_image(product_id))

    @app.get("/bundles/random", response_model=RandomBundle)
    def random_bundle(split: str = "val") -> dict[str, str]:
        """A random bundle of the ``val`` or ``test`` split (the page's "random bundle")."""
        return {"bundle_id": service.random_bundle(split, rng), "split": split}

    @app.get("/bundles/{bundle_id}/image", response_class=FileResponse)
    def bundle_image(bundle_id: str) -> FileResponse:
        return FileResponse(service.bundle_image(bundle_id))

    @app.get("/healthz", response_model=Health)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    def info() -> dict[str, Any]:
        """The model, index, dataset, commit and validation metrics of the run, and the service's limits."""
        return {
            **service.info(),
            "limits": {
                "max_upload_bytes": max_upload_bytes,
                "max_k": max_k,
                "body_timeout": body_timeout,
                "max_text_chars": max_text_chars,
            },
        }

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def without_wandb() -> None:
    """Make ``import wandb`` fail in this process (unless it was imported already): timm imports it
    whenever it is installed (``timm.utils.summary``, for timm's own training logs), seconds of a torch
    worker's start, and the service never logs to W&B. For a process that only serves."""
    sys.modules.setdefault("wandb", None)  # type: ignore[arg-type]  # None: "not importable"


def app_from_environment() -> FastAPI:
    """The app of the service spec named by ``$FASHION_RETRIEVAL_SERVE_SPEC`` (uvicorn's factory in each
    worker process: every worker loads its own service)."""
    without_wandb()
    spec_path = os.environ.get(SPEC_ENV)
    if not spec_path:
        raise RuntimeError(f"{SPEC_ENV} is not set: start the service with `fashion-retrieval serve`")
    spec = ServiceSpec.load(Path(spec_path))
    limits = spec.settings
    return create_app(
        SearchService.from_spec(spec),
        max_upload_bytes=int(limits["max_upload_bytes"]),
        max_k=int(limits["max_k"]),
        body_timeout=float(limits["body_timeout"]),
        max_text_chars=int(limits.get("max_text_chars", DEFAULT_MAX_TEXT_CHARS)),
    )
