"""The HTTP service (FastAPI): reverse image search for anyone allowed to search, removal
requests for data stewards. Thin: parse, call into indexer/, answer JSON.

Every error is a 4xx with a JSON body {"error": "..."}; read-only endpoints never write.
"""

import asyncio
import importlib.resources
import logging
import os
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from gallery.gate import OPEN_PATHS, Gate, RequestGate
from indexer.analyze import Rejected, init_query_worker, query_in_worker
from indexer.decode import DecodeLimits
from indexer.decode_budget import OverBudget, check_budget
from indexer.hash_index import GalleryHashIndex
from indexer.removal import RequestError, build_request, list_removals, process_requests
from indexer.hashes import parse_hash
from indexer.search import query_note, search_hash, search_picture
from indexer.store import Gallery
from indexer.store_errors import StoreError
from robots_policy.domains import public_suffix_of
from indexer.workers import BoundedPool, PoolFull, WorkerBounds

MAX_PER_PAGE = 100

logger = logging.getLogger(__name__)


class RemovalBody(BaseModel):
    """The same selectors and fields as `gallery remove`; give at least one selector."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = None
    url_prefix: str | None = None
    domain: str | None = None
    hash: str | None = Field(None, description="KIND:HEX, KIND one of pdq, phash, sha256")
    basis: str = "other"
    requester: str | None = None
    reference: str | None = None
    notice: dict | None = Field(None, description="DMCA notice fields, for basis copyright")
    received_at: str | None = Field(None, description="ISO date the request was received (default: now)")
    dry_run: bool = False
    yes_all: bool = False
    yes_public_suffix: bool = Field(False, description="Allow domain to be a public suffix (github.io: every site under it)")

    def selectors(self) -> dict[str, str | None]:
        return {"url": self.url, "url_prefix": self.url_prefix, "domain": self.domain, "hash": self.hash}


@dataclass(frozen=True)
class ServiceConfig:
    gallery_uri: str
    steward_keys: frozenset[str]  # may file and read removals
    search_keys: frozenset[str] | None = None  # None: search is open to anyone
    max_upload_bytes: int = 20 * 1024 * 1024
    max_removal_bytes: int = 64 * 1024  # a removal request is a few selectors, never a file
    decode_limits: DecodeLimits = field(default_factory=DecodeLimits)
    upload_workers: int = 2  # processes decoding uploads
    upload_queue: int = 4  # uploads waiting for a worker beyond those; more get 503
    upload_bounds: WorkerBounds = field(default_factory=lambda: WorkerBounds(seconds=10.0, memory_bytes=1024**3))


# Room for the multipart framing around an upload (boundaries, part headers, the form fields).
MULTIPART_OVERHEAD = 64 * 1024
# Bodies on routes that take none (GET): enough for any client's stray empty form, nothing more.
NO_BODY = 1024
RETRY_AFTER_SECONDS = 2


def load_keys(*, env_var: str, file: Path | None) -> frozenset[str]:
    """API keys from a file (one a line, "#" comments) and/or an environment variable (comma-separated)."""
    keys = {k.strip() for k in os.environ.get(env_var, "").split(",")}
    if file is not None:
        keys |= {line.split("#", 1)[0].strip() for line in file.read_text().splitlines()}
    return frozenset(k for k in keys if k)


class ApiError(HTTPException):
    pass


def gate_for(config: ServiceConfig):
    """Each route's keys and body size: the one place that says who may call what."""
    search = Gate(config.search_keys, "search", NO_BODY)
    upload = Gate(config.search_keys, "search", config.max_upload_bytes + MULTIPART_OVERHEAD)
    steward = Gate(config.steward_keys, "steward", NO_BODY)
    removal = Gate(config.steward_keys, "steward", config.max_removal_bytes)
    page = Gate(None, "", NO_BODY)

    def gate(method: str, path: str) -> Gate:
        if path in OPEN_PATHS:
            return page
        if path == "/removals" or path.startswith("/removals/"):
            return removal if method == "POST" else steward
        return upload if (method, path) == ("POST", "/search") else search

    return gate


class UploadDecoder:
    """Uploads decoded and hashed in worker processes, started on the first upload (a service
    that never gets one never starts them); a full queue is refused rather than waited on."""

    def __init__(self, config: ServiceConfig):
        self.config = config
        self._pool: BoundedPool | None = None
        self._lock = threading.Lock()

    async def hashes(self, data: bytes):
        # The header walk first, in a thread: a known bomb is refused without a worker's time.
        try:
            await run_in_threadpool(check_budget, data, self.config.decode_limits.budget())
        except OverBudget as exc:
            return Rejected(exc.reason, f"{exc.reason}: {exc.detail}")
        with self._lock:
            if self._pool is None:
                self._pool = BoundedPool(
                    workers=self.config.upload_workers,
                    initializer=init_query_worker,
                    initargs=(self.config.decode_limits,),
                    bounds=self.config.upload_bounds,
                    queue_limit=self.config.upload_queue,
                )
        try:
            future = self._pool.submit(query_in_worker, data)
        except PoolFull:
            raise ApiError(503, "busy decoding other uploads; try again shortly", {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        return await asyncio.wrap_future(future)

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()


def create_app(config: ServiceConfig) -> FastAPI:
    decoder = UploadDecoder(config)

    @asynccontextmanager
    async def lifespan(app):
        yield
        decoder.stop()

    app = FastAPI(title="gallery-crawler search service", version="1", lifespan=lifespan)
    app.add_middleware(RequestGate, gate_for=gate_for(config))
    gallery = Gallery(config.gallery_uri, create=False, fresh_reads=True)
    hash_index = GalleryHashIndex(gallery)

    # Starlette's class, not FastAPI's subclass: malformed multipart bodies, unknown routes and
    # wrong methods are raised by Starlette itself and must get the same JSON shape.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError):
        # The object store refused or failed (a write refused mid-removal, the store away):
        # the service is fine, the storage is not; a removal is safe to file again.
        logger.error("gallery storage failed on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse({"error": f"gallery storage unavailable: {exc}"}, status_code=503)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):
        # A bug, not bad input: logged with its traceback, answered in the same JSON shape.
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal error"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)

    def page_of(hits, page: int, per_page: int, note: str | None = None) -> dict:
        start = (page - 1) * per_page
        return {
            "total": len(hits),
            "page": page,
            "per_page": per_page,
            "matches": [hit.to_json() for hit in hits[start : start + per_page]],
            "note": note,  # how far the query could be matched, when less than every way
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def web_page() -> str:
        return (importlib.resources.files("gallery") / "web" / "index.html").read_text()

    @app.get("/search")
    def search_by_hash(
        hash: Annotated[str, Query(description="KIND:HEX, KIND one of pdq, phash, sha256")],
        max_distance: Annotated[int | None, Query(ge=0, le=256)] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 20,
    ) -> dict:
        try:
            kind, value = parse_hash(hash)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        hits = search_hash(gallery, kind, value, max_distance=max_distance, hash_index=hash_index)
        return page_of(hits, page, per_page)

    @app.post("/search", openapi_extra=UPLOAD_SCHEMA)
    async def search_by_upload(
        request: Request,
        max_distance: Annotated[int | None, Query(ge=0, le=256)] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 20,
    ) -> dict:
        # The form read here, not by FastAPI: one file and a few fields, so a body of many
        # parts is refused (400) after the first few, not parsed whole.
        form = await request.form(max_files=1, max_fields=4)
        try:
            image = form.get("image")
            if not isinstance(image, UploadFile):
                raise ApiError(422, "image: Field required (a multipart file field named image)")
            data = await image.read(config.max_upload_bytes + 1)
        finally:
            await form.close()
        if len(data) > config.max_upload_bytes:
            raise ApiError(413, f"upload larger than {config.max_upload_bytes} bytes")
        result = await decoder.hashes(data)
        if isinstance(result, Rejected):
            raise ApiError(422, f"not a usable image ({result.detail})")
        hits = await run_in_threadpool(search_picture, gallery, result, max_distance=max_distance, hash_index=hash_index)
        note = await run_in_threadpool(query_note, result, hits)
        return page_of(hits, page, per_page, note)

    @app.get("/images/{image_id}")
    def image(image_id: str) -> dict:
        hits = search_hash(gallery, "sha256", _image_id_bytes(image_id))
        if not hits:
            raise ApiError(404, f"no image {image_id}")
        return hits[0].to_json()

    @app.get("/images/{image_id}/thumbnail")
    def thumbnail(image_id: str) -> Response:
        rows = gallery.get_images([_image_id_bytes(image_id).hex()], with_thumbnail=True)
        if not rows:
            raise ApiError(404, f"no image {image_id}")
        return Response(rows[0]["thumbnail"], media_type="image/jpeg")

    @app.get("/stats")
    def stats() -> dict:
        return gallery.counts()

    @app.post("/removals", status_code=201)
    def file_removal(body: RemovalBody) -> dict:
        selectors = [(kind, value) for kind, value in body.selectors().items() if value]
        try:
            request = build_request(
                selectors,
                basis=body.basis,
                requester=body.requester,
                reference=body.reference,
                notice=body.notice,
                received=body.received_at,
            )
            if body.domain and not body.yes_public_suffix and public_suffix_of(body.domain):
                raise ApiError(400, f"domain {body.domain} is a public suffix: it covers every unrelated site under it; "
                               "send yes_public_suffix if that is meant")
            report = process_requests(gallery, [request], dry_run=body.dry_run, yes_all=body.yes_all)[0]
        except RequestError as exc:
            raise ApiError(400, str(exc)) from None
        if report.refused:
            raise ApiError(409, f"refused: {report.refused}")
        return report.to_json()

    @app.get("/removals")
    def removals() -> dict:
        return {"removals": [status.to_json() for status in list_removals(gallery)]}

    @app.get("/removals/{request_id}")
    def removal(request_id: str) -> dict:
        for status in list_removals(gallery):
            if status.request_id == request_id:
                return status.to_json()
        raise ApiError(404, f"no removal request {request_id}")

    return app


UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "required": ["image"], "properties": {"image": {"type": "string", "format": "binary"}}}
            }
        },
    }
}


def _image_id_bytes(image_id: str) -> bytes:
    try:
        return parse_hash(f"sha256:{image_id}")[1]
    except ValueError:
        raise ApiError(404, f"no image {image_id}") from None
