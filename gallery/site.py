"""A small static HTTP site on 127.0.0.1, in a background thread: the demo's and the tests'.

It records every request path, so a test can assert what the crawler never asked for, and
every answer's status with the request's validators. Files are served with Last-Modified and
a strong ETag, and conditional requests are answered 304 when the file is unchanged.
"""

import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Canned:
    """A fixed response for one path, overriding the file tree (e.g. a 503 robots.txt)."""

    status: int  # 0: close the connection without answering (an unreachable resource)
    body: bytes = b""
    content_type: str = "text/plain"
    headers: tuple[tuple[str, str], ...] = ()
    delay: float = 0.0  # seconds to wait before answering (a slow server)


@dataclass(frozen=True)
class Answer:
    """One response the site sent, and the validators the request carried."""

    path: str
    status: int
    if_none_match: str | None
    if_modified_since: str | None


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, *args, site: "StaticSite", **kwargs):
        self.site = site
        self.etag: str | None = None  # of the file this request names, when it names one
        self.status = 0
        super().__init__(*args, **kwargs)

    def do_GET(self):
        self.site.requests.append(self.path)
        self.etag = None
        canned = self.site.canned.get(self.path.split("?", 1)[0])
        if canned is None:
            return super().do_GET()
        if canned.delay:
            time.sleep(canned.delay)
        if canned.status == 0:
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(canned.status)
        self.send_header("Content-Type", canned.content_type)
        self.send_header("Content-Length", str(len(canned.body)))
        for name, value in canned.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(canned.body)

    def send_head(self):
        # RFC 9110 §13.2.2: If-None-Match is evaluated first, and a request that carries it
        # has its If-Modified-Since ignored (which SimpleHTTPRequestHandler already does).
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"  # what the parent class serves for a directory
        if path.is_file():
            stat = path.stat()
            self.etag = f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"'  # strong: any rewrite changes it
            if _etag_matches(self.headers.get("If-None-Match"), self.etag):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.end_headers()
                return None
        return super().send_head()

    def send_response(self, code, message=None):
        self.status = code
        self.site.answers.append(
            Answer(self.path, int(code), self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since"))
        )
        super().send_response(code, message)

    def end_headers(self):
        if self.etag and self.status in (HTTPStatus.OK, HTTPStatus.NOT_MODIFIED):
            self.send_header("ETag", self.etag)
        super().end_headers()

    def log_message(self, format, *args):
        pass  # the request list is the log


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: a W/ prefix does not matter."""
    if not if_none_match:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that gave up (a crawler's timeout) is expected here, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StaticSite:
    def __init__(
        self, root: Path, *, canned: dict[str, Canned] | None = None, port: int = 0, host: str = "127.0.0.1"
    ):
        self.root = Path(root)
        self.canned = dict(canned or {})
        self.requests: list[str] = []
        self.answers: list[Answer] = []
        handler = partial(_Handler, directory=str(self.root), site=self)
        # Any address of 127.0.0.0/8 is this machine: sites on several "hosts" for multi-host tests.
        self._server = _Server((host, port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> "StaticSite":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
