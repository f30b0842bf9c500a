"""The HTTP service (FastAPI): reverse image search for anyone allowed to search, removal
requests for data stewards. Thin: parse, call into indexer/, answer JSON.

Every error is a 4xx with a JSON body {"error": "..."}; read-only endpoints never write.
"""

import hmac
import importlib.resources
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from indexer.decode import ImageRejected
from indexer.hash_index import GalleryHashIndex
from indexer.removal import RequestError, build_request, list_removals, process_requests
from indexer.hashes import parse_hash
from indexer.search import search_hash, search_image
from indexer.store import Gallery, StoreError

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

    def selectors(self) -> dict[str, str | None]:
        return {"url": self.url, "url_prefix": self.url_prefix, "domain": self.domain, "hash": self.hash}


@dataclass(frozen=True)
class ServiceConfig:
    gallery_uri: str
    steward_keys: frozenset[str]  # may file and read removals
    search_keys: frozenset[str] | None = None  # None: search is open to anyone
    max_upload_bytes: int = 20 * 1024 * 1024


def load_keys(*, env_var: str, file: Path | None) -> frozenset[str]:
    """API keys from a file (one a line, "#" comments) and/or an environment variable (comma-separated)."""
    keys = {k.strip() for k in os.environ.get(env_var, "").split(",")}
    if file is not None:
        keys |= {line.split("#", 1)[0].strip() for line in file.read_text().splitlines()}
    return frozenset(k for k in keys if k)


class ApiError(HTTPException):
    pass


def _key_matches(authorization: str | None, keys: frozenset[str]) -> bool:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    # Compare against every key, without stopping early: timing says nothing about which matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(token.strip().encode(), key.encode())
    return matched


def create_app(config: ServiceConfig) -> FastAPI:
    app = FastAPI(title="gallery-crawler search service", version="1")
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

    def require_search_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if config.search_keys is not None and not _key_matches(authorization, config.search_keys):
            raise ApiError(401, "a search API key is required (Authorization: Bearer KEY)", {"WWW-Authenticate": "Bearer"})

    def require_steward_key(authorization: Annotated[str | None, Header()] = None) -> None:
        if not _key_matches(authorization, config.steward_keys):
            raise ApiError(401, "a steward API key is required (Authorization: Bearer KEY)", {"WWW-Authenticate": "Bearer"})

    def page_of(hits, page: int, per_page: int) -> dict:
        start = (page - 1) * per_page
        return {
            "total": len(hits),
            "page": page,
            "per_page": per_page,
            "matches": [hit.to_json() for hit in hits[start : start + per_page]],
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def web_page() -> str:
        return (importlib.resources.files("gallery") / "web" / "index.html").read_text()

    @app.get("/search", dependencies=[Depends(require_search_key)])
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

    @app.post("/search", dependencies=[Depends(require_search_key)])
    async def search_by_upload(
        request: Request,
        image: UploadFile,
        max_distance: Annotated[int | None, Query(ge=0, le=256)] = None,
        page: Annotated[int, Query(ge=1)] = 1,
        per_page: Annotated[int, Query(ge=1, le=MAX_PER_PAGE)] = 20,
    ) -> dict:
        data = await image.read(config.max_upload_bytes + 1)
        if len(data) > config.max_upload_bytes:
            raise ApiError(413, f"upload larger than {config.max_upload_bytes} bytes")
        try:
            hits = search_image(gallery, data, max_distance=max_distance, hash_index=hash_index)
        except ImageRejected as exc:
            raise ApiError(422, f"not a usable image ({exc})") from None
        return page_of(hits, page, per_page)

    @app.get("/images/{image_id}", dependencies=[Depends(require_search_key)])
    def image(image_id: str) -> dict:
        hits = search_hash(gallery, "sha256", _image_id_bytes(image_id))
        if not hits:
            raise ApiError(404, f"no image {image_id}")
        return hits[0].to_json()

    @app.get("/images/{image_id}/thumbnail", dependencies=[Depends(require_search_key)])
    def thumbnail(image_id: str) -> Response:
        rows = gallery.get_images([_image_id_bytes(image_id).hex()], with_thumbnail=True)
        if not rows:
            raise ApiError(404, f"no image {image_id}")
        return Response(rows[0]["thumbnail"], media_type="image/jpeg")

    @app.get("/stats", dependencies=[Depends(require_search_key)])
    def stats() -> dict:
        return gallery.counts()

    @app.post("/removals", dependencies=[Depends(require_steward_key)], status_code=201)
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
            report = process_requests(gallery, [request], dry_run=body.dry_run, yes_all=body.yes_all)[0]
        except RequestError as exc:
            raise ApiError(400, str(exc)) from None
        if report.refused:
            raise ApiError(409, f"refused: {report.refused}")
        return report.to_json()

    @app.get("/removals", dependencies=[Depends(require_steward_key)])
    def removals() -> dict:
        return {"removals": [status.to_json() for status in list_removals(gallery)]}

    @app.get("/removals/{request_id}", dependencies=[Depends(require_steward_key)])
    def removal(request_id: str) -> dict:
        for status in list_removals(gallery):
            if status.request_id == request_id:
                return status.to_json()
        raise ApiError(404, f"no removal request {request_id}")

    return app


def _image_id_bytes(image_id: str) -> bytes:
    try:
        return parse_hash(f"sha256:{image_id}")[1]
    except ValueError:
        raise ApiError(404, f"no image {image_id}") from None
