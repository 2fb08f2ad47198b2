"""Finding 4: request heads are bounded on every server we run (the app under `opsloop serve`
and the echo agent): oversized heads, too many headers and long URLs are refused before the rest
is read, slow and silent clients are cut off, and a normal client keeps being answered meanwhile.

The attack's effect on a concurrent client is measured and written to
test-artifacts/http-limits-under-attack.json (figures, not timed assertions)."""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field

import httpx
import psutil
import pytest
from websockets.sync.client import connect

from opsloop.backend.auth import basic_header
from tests.support.processes import ARTIFACTS, PASSWORD, USER

LIMIT = 65536  # OPSLOOP_HTTP_MAX_HEADER_BYTES's default
PATIENCE_S = 30.0  # an upper bound for the server to act, never an expected duration


def _addr(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _exchange(url: str, *chunks: bytes) -> bytes:
    """Send `chunks` on a fresh connection and read until the server closes it."""
    with socket.create_connection(_addr(url), timeout=PATIENCE_S) as s:
        try:
            for chunk in chunks:
                s.sendall(chunk)
        except OSError:  # the server closed while we were still sending: its answer is queued
            pass
        return _read_to_close(s)


def _read_to_close(s: socket.socket) -> bytes:
    out = b""
    try:
        while data := s.recv(65536):
            out += data
    except ConnectionResetError:
        pass
    return out


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@pytest.fixture(params=["app", "echo"])
def server(request, stack) -> str:
    return stack.app.url if request.param == "app" else stack.echo.url


def test_an_oversized_head_is_refused_without_reading_it(server: str) -> None:
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "
    answer = _exchange(server, head, *[b"a" * 65536] * 256, b"\r\n\r\n")  # 16 MB in one header
    assert _status(answer) == 431, answer[:200]
    assert httpx.get(server + "/health").status_code == 200


def test_too_many_headers_and_a_long_url_are_refused(server: str) -> None:
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(101))
    assert _status(_exchange(server, b"GET /health HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) == 431
    assert _status(_exchange(server, b"GET /health?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 414
    near = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Cookie: " + b"c" * 48000 + b"\r\nConnection: close\r\n\r\n"
    assert _status(_exchange(server, near)) == 200, "a large head under the limit is served"


def test_a_body_larger_than_the_head_limit_is_not_counted_as_head(stack) -> None:
    payload = json.dumps({"type": "echo", "source": "limits", "payload": {"blob": "b" * (4 * LIMIT)}}).encode()
    head = (
        f"POST /task HTTP/1.1\r\nHost: x\r\nAuthorization: {basic_header(USER, PASSWORD)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = _exchange(stack.url, head + payload)  # one write: the first chunk holds head and body
    assert _status(answer) == 202, answer[:300]


def test_keep_alive_requests_each_get_a_fresh_head_budget(server: str) -> None:
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * (LIMIT // 2) + b"\r\n\r\n"
    with socket.create_connection(_addr(server), timeout=PATIENCE_S) as s:
        for _ in range(4):  # 4 × 32 KiB on one connection: over the limit in sum, each under it
            s.sendall(request[:100])
            s.sendall(request[100:])
            head = b""
            while b"\r\n\r\n" not in head:
                head += s.recv(65536)
            assert _status(head) == 200, head[:200]
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += s.recv(65536)


def test_a_slow_head_gets_408_and_a_silent_client_is_closed(server: str) -> None:
    with socket.create_connection(_addr(server), timeout=PATIENCE_S) as slow, socket.create_connection(_addr(server), timeout=PATIENCE_S) as silent:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        answer = _read_to_close(slow)
        assert _status(answer) == 408, answer[:200]
        assert _read_to_close(silent) == b"", "a connection that sends nothing is closed without an answer"


def test_websocket_upgrade_still_works(stack) -> None:
    ws_url = stack.url.replace("http://", "ws://") + "/ws"
    with connect(ws_url, additional_headers={"Authorization": basic_header(USER, PASSWORD)}, origin="http://localhost:3000", open_timeout=10) as ws:
        ws.ping().wait(10)


@dataclass
class Attack:
    """Oversized heads from a few threads and many slow-head connections, until stopped."""

    url: str
    big_threads: int = 4
    big_bytes: int = 8 * 1024 * 1024
    slow_connections: int = 200
    stop: threading.Event = field(default_factory=threading.Event)
    big_refused: int = 0
    slow_cut: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._big, daemon=True) for _ in range(self.big_threads)]
        self.threads.append(threading.Thread(target=self._slow, daemon=True))
        for t in self.threads:
            t.start()

    def _big(self) -> None:
        head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: "
        while not self.stop.is_set():
            answer = _exchange(self.url, head, *[b"a" * 65536] * (self.big_bytes // 65536), b"\r\n\r\n")
            self.big_refused += _status(answer) == 431

    def _slow(self) -> None:
        conns = [socket.create_connection(_addr(self.url), timeout=PATIENCE_S) for _ in range(self.slow_connections)]
        for c in conns:
            c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        for c in conns:  # the server must close every one of them (a recv past PATIENCE_S fails the count)
            try:
                self.slow_cut += _status(_read_to_close(c)) == 408
            except TimeoutError:
                pass
            c.close()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=PATIENCE_S * 2)


def test_a_normal_client_is_served_while_attacked(stack) -> None:
    """Measured, not timed: every normal request is answered; the figures go to test-artifacts."""

    def run_client(n: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=stack.url, timeout=PATIENCE_S) as c:
            for _ in range(n):
                t0 = time.perf_counter()
                assert c.get("/health").status_code == 200
                latencies.append((time.perf_counter() - t0) * 1000)
        return sorted(latencies)

    app = psutil.Process(stack.app.popen.pid)
    baseline = run_client(300)
    rss_before = app.memory_info().rss
    attack = Attack(stack.url)
    attack.start()
    try:
        attacked = run_client(600)
        rss_during = app.memory_info().rss
    finally:
        attack.finish()
    assert attack.big_refused > 0
    assert attack.slow_cut == attack.slow_connections, f"{attack.slow_cut}/{attack.slow_connections} slow heads were cut off"

    def pct(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 2)

    figures = {
        "baseline_ms": {"p50": pct(baseline, 0.5), "p99": pct(baseline, 0.99), "max": round(baseline[-1], 2)},
        "under_attack_ms": {"p50": pct(attacked, 0.5), "p99": pct(attacked, 0.99), "max": round(attacked[-1], 2)},
        "oversized_heads_refused": attack.big_refused,
        "slow_heads_cut": attack.slow_cut,
        "app_rss_mb": {"before": round(rss_before / 2**20), "during": round(rss_during / 2**20)},
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "http-limits-under-attack.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))
