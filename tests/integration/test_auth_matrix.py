"""Every HTTP and WebSocket route of the app and the echo agent, enumerated from the apps
themselves (so routes added later are covered): no credentials, wrong credentials, Basic Auth,
internal key → the expected status."""

from __future__ import annotations

import base64
import re
import uuid

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from opsloop.backend.api.app import create_api, route_table
from tests.support.processes import INTERNAL_KEY, PASSWORD, USER

PUBLIC = {("GET", "/health"), ("POST", "/auth/login"), ("POST", "/auth/logout")}
SERVICE_ONLY_APP = {("POST", "/agents/register"), ("POST", "/agents/heartbeat"), ("POST", "/admin/retention")}
BASIC = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
WRONG = "Basic " + base64.b64encode(f"{USER}:not-the-password".encode()).decode()


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: str(uuid.uuid4()) if "task" in m.group(0) else "srv-test", path)


def app_routes() -> list[tuple[str, str, str]]:
    return route_table(create_api())


def agent_routes() -> list[tuple[str, str, str]]:
    from agents.echo.app import app

    return route_table(app)


def call(base: str, method: str, path: str, headers: dict[str, str], source: str = "127.0.0.1") -> httpx.Response:
    """One request from client address `source` (any 127.x.y.z is this machine)."""
    body = None if method == "GET" else b"{}"
    with httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=10) as c:
        return c.request(method, base + concrete(path), headers={**headers, "content-type": "application/json"}, content=body)


CASES = {
    "none": {},
    "wrong": {"Authorization": WRONG},
    "basic": {"Authorization": BASIC},
    "internal": {"X-Internal-Key": INTERNAL_KEY},
    "internal-lowercase-header": {"x-internal-key": INTERNAL_KEY},
    "wrong-internal": {"X-Internal-Key": INTERNAL_KEY + "x"},
}


# One client address per case: the API counts wrong credentials per address and, after a few,
# answers that address 429 before evaluating anything (opsloop/backend/limiter.py).
SOURCES = {case: f"127.0.0.{20 + i}" for i, case in enumerate(CASES)}


def expect_app(method: str, path: str, case: str, status: int) -> None:
    where = f"{method} {path} [{case}] → {status}"
    if (method, path) in PUBLIC:
        assert status not in (401, 403), where
    elif case == "none":
        assert status == 401, where
    elif case in ("wrong", "wrong-internal"):
        assert status in (401, 429), where  # 429: this address guessed wrong too often
    elif case == "basic" and (method, path) in SERVICE_ONLY_APP:
        assert status == 403, where
    else:
        assert status not in (401, 403), where


def test_app_routes_are_enumerated() -> None:
    routes = app_routes()
    paths = {p for _, _, p in routes}
    assert {"/task", "/tasks", "/log", "/logs", "/logs/stream", "/ws", "/config/validate", "/openapi.json"} <= paths


@pytest.mark.parametrize("case", list(CASES))
def test_app_http_matrix(stack, case: str) -> None:
    for kind, method, path in app_routes():
        if kind != "http" or (path == "/logs/stream" and case in ("basic", "internal", "internal-lowercase-header")):
            continue
        resp = call(stack.url, method, path, CASES[case], SOURCES[case])
        expect_app(method, path, case, resp.status_code)
        if resp.status_code == 429:
            assert int(resp.headers["retry-after"]) >= 1, f"{method} {path}"
        if resp.status_code == 401:
            assert resp.headers.get("www-authenticate", "").startswith("Basic"), f"{method} {path}"
            assert resp.json() == {"error": "Unauthorized"}
        unconfigured = path.startswith("/render") and resp.status_code == 503  # no Render token in this stack: a clear 503
        assert resp.status_code < 500 or unconfigured, f"{method} {path} [{case}] → {resp.status_code} {resp.text[:200]}"


@pytest.mark.parametrize("case", ["basic", "internal"])
def test_sse_with_credentials_opens_a_stream(stack, case: str) -> None:
    with httpx.stream("GET", stack.url + "/logs/stream", headers=CASES[case], timeout=5) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")


def test_sse_query_auth_only_on_streams(stack) -> None:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with httpx.stream("GET", f"{stack.url}/logs/stream?auth={token}", timeout=5) as resp:
        assert resp.status_code == 200
    assert httpx.get(f"{stack.url}/tasks?auth={token}").status_code == 401


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + "/ws" + query


@pytest.mark.parametrize("case", list(CASES))
def test_app_websocket_matrix(stack, case: str) -> None:
    ws_routes = [p for kind, _, p in app_routes() if kind == "ws"]
    assert ws_routes == ["/ws"]
    for path in ws_routes:
        if case in ("none", "wrong", "wrong-internal"):
            with pytest.raises(InvalidStatus) as info:
                connect(stack.url.replace("http://", "ws://") + path, additional_headers=CASES[case], open_timeout=5)
            assert info.value.response.status_code == 401  # a real HTTP 401 (denial response), as on every route
        else:
            with connect(stack.url.replace("http://", "ws://") + path, additional_headers=CASES[case], open_timeout=5) as ws:
                ws.send('{"type": "ping"}')
                assert '"PONG"' in ws.recv(timeout=5)


def test_websocket_query_auth_and_origin(stack) -> None:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with connect(ws_url(stack.url, f"?auth={token}"), open_timeout=5) as ws:
        ws.send('{"type": "ping"}')
        assert "PONG" in ws.recv(timeout=5)
    with pytest.raises(InvalidStatus):
        connect(ws_url(stack.url, f"?auth={token}"), origin="http://evil.example", open_timeout=5)
    with connect(ws_url(stack.url, f"?auth={token}"), origin="http://127.0.0.1:3000", open_timeout=5) as ws:
        ws.send('{"type": "ping"}')
        assert "PONG" in ws.recv(timeout=5)


@pytest.mark.parametrize("case", list(CASES))
def test_agent_http_matrix(stack, case: str) -> None:
    routes = agent_routes()
    assert ("http", "POST", "/echo") in routes
    for kind, method, path in routes:
        if kind != "http":
            continue
        resp = call(stack.echo.url, method, path, CASES[case])
        where = f"agent {method} {path} [{case}] → {resp.status_code}"
        if path == "/health":
            assert resp.status_code == 200, where
        elif case in ("none", "wrong-internal"):
            assert resp.status_code == 401, where
        elif case in ("basic", "wrong"):
            assert resp.status_code == 403, where
        else:
            assert resp.status_code not in (401, 403), where
        assert resp.status_code < 500, where
