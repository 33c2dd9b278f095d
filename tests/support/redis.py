"""A real `redis-server` for the tests, started by the suite (never the system's service).

    from tests.support.redis import redis_server   # in a conftest: a session fixture
    def test_x(redis_server): redis_server.url      # redis://127.0.0.1:PORT/0

Random free port, no persistence (`--save "" --appendonly no`), its working
directory a temp dir; killed at the end of the session. Skips (with the
reason) only when the redis-server binary is missing.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

START_TIMEOUT = 10.0


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen
    directory: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(directory: Path) -> RedisServer:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    for _ in range(5):  # the free port may be taken between our probe and its bind
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", str(directory), "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _answers(port):
                return RedisServer(port, process, directory)
            time.sleep(0.05)
        process.kill()
        output = process.communicate()[0].decode(errors="replace")
    raise RuntimeError(f"redis-server did not start:\n{output}")


@pytest.fixture(scope="session")
def redis_server():
    with tempfile.TemporaryDirectory(prefix="leakguard-redis-") as tmp:
        server = start_redis(Path(tmp))
        try:
            yield server
        finally:
            server.process.kill()
            server.process.communicate()
