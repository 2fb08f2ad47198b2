"""Finding 12: a database outage must not flood the log. The app's database goes away (a proxy in
front of it is closed), clients keep calling and a burst of malformed requests arrives; the log
written until the first repeat summary (the marker that a whole window passed) stays small."""

from __future__ import annotations

import json
import re
import socket
import threading
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.support.processes import ARTIFACTS, PASSWORD, USER, app_instance, wait_for

WINDOW_S = "3"
BURST = 500
BOUND_BYTES = 16 * 1024


class Proxy:
    """A TCP proxy to the database; `stop()` closes it and every connection through it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                server = socket.create_connection(self.upstream)
            except OSError:
                if self.stopped:
                    return
                continue
            with self.lock:
                if self.stopped:
                    client.close()
                    server.close()
                    return
                self.sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self.listener.close()
            for s in self.sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


def test_a_database_outage_writes_a_bounded_log(database_url: str) -> None:
    parts = urlsplit(database_url)
    if not parts.hostname:
        import pytest

        pytest.skip("needs a TCP database server (OPSLOOP_TEST_DATABASE_URL) to put a proxy in front of")
    proxy = Proxy((parts.hostname, parts.port or 5432))
    app = app_instance(_through(database_url, proxy.port), name="log-storm-app", OPSLOOP_LOG_REPEAT_WINDOW_S=WINDOW_S)
    app.log_path.write_bytes(b"")
    app.start()
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=app.url, auth=(USER, PASSWORD), timeout=30) as c:
            while not stop.is_set():
                for path in ("/health", "/tasks", "/logs"):
                    try:
                        c.get(path)
                    except httpx.HTTPError:
                        pass

    pollers = [threading.Thread(target=poll, daemon=True) for _ in range(4)]
    try:
        start = app.log_path.stat().st_size
        proxy.stop()  # the database is gone for the app
        for t in pollers:
            t.start()
        host, port = app.url.removeprefix("http://").split(":")
        for _ in range(BURST):  # each one is a WARNING from uvicorn ("Invalid HTTP request received.")
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                s.recv(1024)

        def summary() -> str | None:
            text = app.log_path.read_bytes()[start:].decode(errors="replace")
            return next((line for line in text.splitlines() if "Invalid HTTP request" in line and "repeated" in line), None)

        marker = wait_for(summary, timeout=60, interval=0.2, what="the repeat summary of the malformed requests")
        written = app.log_path.stat().st_size - start
    finally:
        stop.set()
        app.stop()
    repeated = int(re.search(r"repeated (\d+) times", marker).group(1))
    figures = {"bytes_until_marker": written, "malformed_requests": BURST, "suppressed_repeats": repeated, "window_s": float(WINDOW_S)}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "log-storm.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
    assert repeated == BURST - 1, marker
    assert written < BOUND_BYTES, f"{written} bytes of log during the outage:\n{app.log_path.read_text()[-3000:]}"
