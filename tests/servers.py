"""Real servers for tests, each started on 127.0.0.1 on a free port and stopped afterwards."""

import http.client
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, process: subprocess.Popen, timeout: float = 30, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout}s")


@contextmanager
def running(command: list[str], *, port: int, log: Path, cwd: Path | None = None, env: dict | None = None, host: str = "127.0.0.1"):
    # Output to a file: a pipe nobody reads fills up and stalls a chatty server (moto logs every request).
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process=process, host=host)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def nginx_sites(roots: dict[str, Path], workdir: Path):
    """Debian's nginx serving each directory as a site of its own on its host (an address of
    127.0.0.0/8), with persistent connections as real sites keep them. Yields the sites'
    base URLs, in the order of `roots`."""
    urls, servers = [], []
    for host, root in roots.items():
        port = free_port()
        urls.append(f"http://{host}:{port}")
        servers.append(f"server {{ listen {host}:{port}; root {root}; }}")
    temp = "\n".join(f"{kind}_temp_path {workdir}/nginx-{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    config = workdir / "nginx.conf"
    # "user root": started as root, nginx's workers would otherwise read the sites as nobody.
    config.write_text(
        f"""daemon off; worker_processes 1; pid {workdir}/nginx.pid; error_log {workdir}/nginx-error.log;
{"user root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 1024; }}
http {{
access_log off; default_type application/octet-stream;
types {{ text/html html; image/jpeg jpg; image/png png; image/gif gif; text/plain txt; }}
{temp}
{chr(10).join(servers)}
}}
"""
    )
    command = ["nginx", "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(config)]
    # nginx opens every listener before it serves: the last site answering means all do.
    with running(command, port=port, host=host, log=workdir / "nginx.log"):
        yield urls


@contextmanager
def redis_server(workdir: Path):
    """Debian's redis-server, in memory only: nothing saved, nothing appended."""
    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)]
    with running(command, port=port, log=workdir / "redis.log"):
        yield f"redis://127.0.0.1:{port}/0"


class PersistentRedis:
    """Debian's redis-server keeping its data in an append-only file, so a test can stop it
    (SIGTERM: it syncs the file and exits) and start it again on the same port and directory."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "yes"]
        with open(self.workdir / "redis.log", "ab") as out:
            self.process = subprocess.Popen(command + ["--dir", str(self.workdir)], stdout=out, stderr=subprocess.STDOUT)
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@contextmanager
def persistent_redis_server(workdir: Path):
    server = PersistentRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def s3_server(workdir: Path):
    """moto's S3-compatible server; yields the environment that points the AWS clients at it."""
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    with running([str(moto), "-H", "127.0.0.1", "-p", str(port)], port=port, log=workdir / "moto.log", cwd=workdir):
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        }


WRITE_METHODS = ("PUT", "POST", "DELETE")


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the S3 clients expect
    proxy: "StoreProxy"

    def do_HEAD(self):
        self._forward()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD

    def _forward(self):
        body = self._read_body()
        refusal = self.proxy.refusal(self.command)
        if refusal:
            status, code = refusal
            message = f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{code}</Code>"
            message += "<Message>refused by the test proxy</Message><RequestId>proxy</RequestId></Error>"
            self._answer(status, [("Content-Type", "application/xml")], message.encode())
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.proxy.upstream_port, timeout=60)
        try:
            # Headers as sent, Host included: the request's signature covers them.
            headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
            if "Transfer-Encoding" in self.headers:
                headers["Content-Length"] = str(len(body))
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in ("transfer-encoding", "connection")]
            if self.command != "HEAD" and not response.getheader("Content-Length"):
                kept.append(("Content-Length", str(len(data))))
            self._answer(response.status, kept, data, length_set=True)
        finally:
            upstream.close()

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, headers: list, body: bytes, *, length_set: bool = False):
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        if not length_set:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format, *args):
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client that hung up (a process stopped mid-request) is expected, not worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class StoreProxy:
    """A reverse proxy in front of an S3 server that passes everything through until told to
    refuse: from then on writes (PUT, POST, DELETE), or every request, get an S3 error."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.writes = 0  # write requests seen, refused ones included
        self.refused = 0
        self._refuse_after: int | None = None
        self._methods: tuple[str, ...] = WRITE_METHODS
        self._error = (403, "AccessDenied")
        self._lock = threading.Lock()
        handler = type("Handler", (_ProxyHandler,), {"proxy": self})
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def refuse_writes(
        self, *, after: int = 0, status: int = 403, code: str = "AccessDenied", methods: tuple[str, ...] = WRITE_METHODS
    ) -> None:
        """Refuse every write (of `methods`) once `after` more have passed (0: from now on)."""
        with self._lock:
            self._refuse_after, self._methods, self._error = self.writes + after, methods, (status, code)

    def refuse_everything(self, *, status: int = 403, code: str = "InvalidAccessKeyId") -> None:
        with self._lock:
            self._refuse_after, self._methods, self._error = self.writes, ("GET", "HEAD", *WRITE_METHODS), (status, code)

    def allow(self) -> None:
        with self._lock:
            self._refuse_after = None

    def refusal(self, method: str) -> tuple[int, str] | None:
        """The (status, S3 error code) to answer this request with, or None to pass it on."""
        with self._lock:
            if method in WRITE_METHODS:
                self.writes += 1
            if self._refuse_after is None or method not in self._methods:
                return None
            if method in WRITE_METHODS and self.writes <= self._refuse_after:
                return None  # writes still allowed before the refusals start
            self.refused += 1
            return self._error

    def __enter__(self) -> "StoreProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
