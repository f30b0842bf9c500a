"""Real servers for tests, each started on 127.0.0.1 on a free port and stopped afterwards."""

import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, *, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def running(command: list[str], *, port: int, log: Path, cwd: Path | None = None, env: dict | None = None):
    # Output to a file: a pipe nobody reads fills up and stalls a chatty server (moto logs every request).
    with open(log, "ab") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process=process)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


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
    import sys

    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    with running([str(moto), "-H", "127.0.0.1", "-p", str(port)], port=port, log=workdir / "moto.log", cwd=workdir):
        yield {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_REGION": "us-east-1",
        }
