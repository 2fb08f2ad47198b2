"""Stream clients for tests: SSE and WebSocket readers in threads, and a stuck client that never reads.

The SSE client speaks HTTP/1.1 over a plain socket (chunked decoding and SSE parsing by hand), so a
test controls exactly when it connects, what `Last-Event-ID` it sends and when it hangs up.
Every frame is kept with the monotonic time it arrived.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.processes import PASSWORD, USER, wait_for

BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


@dataclass
class SSEFrame:
    event: str
    id: str | None
    data: Any
    at: float


@dataclass
class SSEClient:
    """`GET /logs/stream` read in a thread; `frames` grows as they arrive."""

    base_url: str
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    last_event_id: str | None = None
    auth: bool = True
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    frames: list[SSEFrame] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    error: str | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._opened = threading.Event()

    def start(self, timeout: float = 10.0) -> SSEClient:
        split = urlsplit(self.base_url)
        self._sock = socket.create_connection((split.hostname, split.port), timeout=timeout)
        self._sock.sendall(_request(self.base_url, self.params, self._all_headers()))
        threading.Thread(target=self._read, name="test-sse", daemon=True).start()
        if not self._opened.wait(timeout):
            raise AssertionError("SSE stream did not answer")
        return self

    def _all_headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", **self.headers}
        if self.auth:
            headers.setdefault("Authorization", BASIC)
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def _read(self) -> None:
        assert self._sock is not None
        self._sock.settimeout(None)
        reader = self._sock.makefile("rb")
        try:
            status_line = reader.readline().decode()
            self.status = int(status_line.split()[1])
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                self.response_headers[name.strip().lower()] = value.strip()
            self._opened.set()
            buffer = b""
            for chunk in _chunks(reader):
                blocks = (buffer + chunk).split(b"\n\n")
                buffer = blocks.pop()
                for block in blocks:
                    self._parse(block.decode())
        except (OSError, ValueError) as exc:
            self.error = str(exc)
        finally:
            self._opened.set()
            self.ended.set()

    def _parse(self, block: str) -> None:
        event, frame_id, data = "message", None, []
        for line in block.split("\n"):
            if line.startswith(":"):
                with self._lock:
                    self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "id":
                frame_id = value
            elif name == "data":
                data.append(value)
        if not data and frame_id is None:
            return
        text = "\n".join(data)
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        with self._lock:
            self.frames.append(SSEFrame(event, frame_id, payload, time.monotonic()))

    def body(self) -> str:
        """For a refused stream: the error answer's text (the reader keeps none of it as frames)."""
        return self.error or ""

    def snapshot(self, event: str | None = None) -> list[SSEFrame]:
        with self._lock:
            return [f for f in self.frames if event is None or f.event == event]

    def wait_count(self, event: str, count: int, timeout: float = 15.0, where: Any = None) -> list[SSEFrame]:
        """Wait until `count` frames of `event` (matching `where(data)`) arrived; return them."""

        def probe() -> list[SSEFrame] | None:
            got = [f for f in self.snapshot(event) if where is None or where(f.data)]
            return got if len(got) >= count else None

        return wait_for(probe, timeout=timeout, what=f"{count} SSE {event} frame(s)")

    def wait_heartbeat_after(self, frame: SSEFrame, timeout: float = 15.0) -> SSEFrame:
        """Wait for a heartbeat sent after `frame`: the server sends one only when its queue for
        this client stayed empty for a whole heartbeat interval, so nothing was pending behind
        `frame` (a check that waits for what it proves, never a bare sleep)."""

        def probe() -> SSEFrame | None:
            frames = self.snapshot()
            later = frames[frames.index(frame) + 1 :] if frame in frames else []
            return next((f for f in later if f.event == "heartbeat"), None)

        return wait_for(probe, timeout=timeout, what="an SSE heartbeat after the frame")

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
        self.ended.wait(5)


def _request(base_url: str, params: dict[str, str], headers: dict[str, str], path: str = "/logs/stream") -> bytes:
    split = urlsplit(base_url)
    target = path + ("?" + urlencode(params) if params else "")
    lines = [f"GET {target} HTTP/1.1", f"Host: {split.hostname}:{split.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _chunks(reader: Any):
    """Decode a chunked HTTP body as it arrives."""
    while True:
        size_line = reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        data = reader.read(size)
        reader.readline()
        yield data


@dataclass
class WSClient:
    """`/ws` read in a thread; `frames` are the parsed JSON frames with their arrival time."""

    base_url: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=lambda: {"Authorization": BASIC})
    origin: str | None = None
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    close_code: int | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.ws: ClientConnection | None = None

    def start(self) -> WSClient:
        url = self.base_url.replace("http://", "ws://") + "/ws" + ("?" + urlencode(self.query) if self.query else "")
        self.ws = connect(url, additional_headers=self.headers, origin=self.origin, open_timeout=10, max_size=None)  # type: ignore[arg-type]
        threading.Thread(target=self._read, name="test-ws", daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.ws is not None
        try:
            for message in self.ws:
                frame = json.loads(message)
                with self._lock:
                    self.frames.append((time.monotonic(), frame))
        except ConnectionClosed:
            pass  # the iterator ends on a clean close; an abrupt one raises
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()

    def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        self.ws.send(json.dumps(frame))

    def snapshot(self, type_: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [f for _, f in self.frames if type_ is None or f["type"] == type_]

    def wait_count(self, type_: str, count: int, timeout: float = 15.0, where: Any = None) -> list[dict[str, Any]]:
        def probe() -> list[dict[str, Any]] | None:
            got = [f for f in self.snapshot(type_) if where is None or where(f["data"])]
            return got if len(got) >= count else None

        return wait_for(probe, timeout=timeout, what=f"{count} WebSocket {type_} frame(s)")

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
        self.closed.wait(5)


def stuck_socket(base_url: str, kind: str, params: dict[str, str]) -> socket.socket:
    """A client that opens an SSE or WebSocket stream and never reads a byte (tiny receive buffer),
    so the server's writes back up into its per-connection queue."""
    split = urlsplit(base_url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((split.hostname, split.port))
    headers = {"Authorization": BASIC}
    if kind == "ws":
        headers.update(
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                "Sec-WebSocket-Version": "13",
            }
        )
        sock.sendall(_request(base_url, params, headers, path="/ws"))
    else:
        sock.sendall(_request(base_url, params, headers))
    return sock


def read_until_eof(sock: socket.socket, timeout: float = 30.0, or_marker: bytes | None = None) -> bytes:
    """Read everything the server still sends until it closes (EOF), or until `or_marker` shows
    up (a WebSocket close frame's reason: the server then waits for the close handshake the stuck
    client never answers). Returns the last bytes read."""
    sock.settimeout(timeout)
    tail = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = sock.recv(1 << 20)
        if not data:
            return tail
        tail = (tail + data)[-4096:]
        if or_marker is not None and or_marker in tail:
            return tail
    raise AssertionError(f"the server did not end the stream within {timeout}s")
