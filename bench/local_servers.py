"""Local servers for the tests and the benches: Debian's redis-server on a local port (started keeping
nothing on disk, waited for, bounded, until it answers PING, stopped afterwards) and stopping a process."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MISSING = "redis-server is missing: `make redis` (or `make test`) installs Debian's redis-server"


def redis_binary() -> Path | None:
    """Debian's redis-server, or None when it is not installed."""
    found = Path(shutil.which("redis-server") or "/usr/bin/redis-server")
    return found if found.exists() else None


def redis_answers(port: int) -> bool:
    """Whether a Redis on 127.0.0.1:`port` answers PING (a plain socket: no client library)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def stop(proc: subprocess.Popen, wait_s: float = 10.0) -> None:
    """Terminate `proc`, and kill it if it has not ended within `wait_s`."""
    proc.terminate()
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def redis_process(port: int, wait_s: float = 10.0,
                  options: tuple[str, ...] = ()) -> Iterator[subprocess.Popen]:
    """redis-server on 127.0.0.1:`port` with `options` added, once it answers PING (at most `wait_s`;
    else RuntimeError with its output); stopped afterwards. FileNotFoundError when not installed."""
    binary = redis_binary()
    if binary is None:
        raise FileNotFoundError(MISSING)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", *options], stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + wait_s
            while not redis_answers(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    why = "exited" if proc.poll() is not None else f"did not answer PING within {wait_s:g} s"
                    raise RuntimeError(f"redis-server on 127.0.0.1:{port} {why}:\n{log.read().decode()}")
                time.sleep(0.05)
            yield proc
        finally:
            stop(proc)
