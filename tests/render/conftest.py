"""Fixtures for the Render tests: the fake served over real HTTP, clients whose traffic is
recorded and checked against Render's OpenAPI document, and the reference data."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import pytest_asyncio
import uvicorn

from opsloop.devtools.render_fake.app import create_fake_render_app
from opsloop.devtools.render_fake.openapi_check import OpenAPIChecker
from opsloop.render.client import RenderClient, Throttle
from opsloop.render.reference import reference_dir

if TYPE_CHECKING:
    from tests.support.processes import Proc

    from .procs import FakeProc

TOKEN = "rnd_test_token_0123456789abcdef"
REFERENCE = reference_dir()
SKIP_REASON = f"Render reference data not found at {REFERENCE} (set OPSLOOP_RENDER_REFERENCE_DIR)"


def have_reference() -> bool:
    return (REFERENCE / "openapi.json").is_file() and (REFERENCE / "render-yaml.schema.json").is_file()


def require_reference() -> Path:
    """Skip the calling test, with the reason, when Render's reference data is absent."""
    if not have_reference():
        pytest.skip(SKIP_REASON)
    return REFERENCE


@dataclass
class FakeServer:
    """The fake running under uvicorn in a background thread, on a free port."""

    url: str
    app: Any
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def state(self) -> Any:
        return self.app.state.fake

    def control(self, path: str, body: Any = None) -> Any:
        response = httpx.post(f"{self.url}/__fake__/{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def problems(self) -> list[str]:
        return httpx.get(f"{self.url}/__fake__/openapi-problems", timeout=10).json()["problems"]


def serve(app: Any) -> FakeServer:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the fake Render API did not start")
        time.sleep(0.01)
    return FakeServer(f"http://127.0.0.1:{port}", app, server, thread)


def stop(fake: FakeServer) -> None:
    fake.server.should_exit = True
    fake.thread.join(timeout=10)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeServer]:
    app = create_fake_render_app(token=TOKEN, build_seconds=0.05, validate_openapi=have_reference())
    fake = serve(app)
    yield fake
    stop(fake)


@pytest.fixture
def fake(fake_server: FakeServer) -> FakeServer:
    """The shared fake, reset to an empty account with one owner."""
    fake_server.control("reset")
    return fake_server


def _module_tag(request: pytest.FixtureRequest) -> str:
    """`test_cli_local` -> `cli-local`: names a module's processes (and their logs in test-artifacts/)."""
    return request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")


@pytest.fixture(scope="module")
def fake_proc(request: pytest.FixtureRequest) -> Iterator[FakeProc]:
    """`opsloop render fake` as a process of its own, one per test module; a module may set
    FAKE_BUILD_SECONDS (the simulated build time, default 0.3)."""
    from .procs import start_fake

    proc = start_fake(f"render-{_module_tag(request)}-fake", build_seconds=getattr(request.module, "FAKE_BUILD_SECONDS", 0.3))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def app_proc(database_url: str, fake_proc: FakeProc, request: pytest.FixtureRequest) -> Iterator[Proc]:
    """An `opsloop serve` instance pointed at the module's fake Render."""
    from .procs import start_app

    proc = start_app(database_url, fake_proc, f"render-{_module_tag(request)}-app")
    yield proc
    proc.stop()


@dataclass
class Recorder(httpx.AsyncBaseTransport):
    """Real HTTP transport that keeps every (request, response) for OpenAPI checks."""

    exchanges: list[tuple[httpx.Request, httpx.Response]] = field(default_factory=list)
    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        await response.aclose()
        copy = httpx.Response(response.status_code, headers=response.headers, content=body, request=request)
        self.exchanges.append((request, copy))
        return copy

    async def aclose(self) -> None:
        await self.inner.aclose()

    def problems(self) -> list[str]:
        checker = OpenAPIChecker.load()
        return [p for request, response in self.exchanges for p in checker.check_exchange(request, response)]


@dataclass
class Sleeps:
    """Injected sleep: records the delays and yields once, so retries cost no time."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture
async def render(fake: FakeServer, recorder: Recorder, sleeps: Sleeps) -> AsyncIterator[RenderClient]:
    """A client of the fake; afterwards, all its traffic must conform to Render's OpenAPI."""
    client = RenderClient(fake.base_url, TOKEN, transport=recorder, sleep=sleeps, throttle=Throttle(scale=1000, sleep=sleeps))
    yield client
    await client.aclose()
    if have_reference():
        assert recorder.problems() == []
        assert fake.problems() == []


async def wait_deploy(client: RenderClient, service_id: str, deploy_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll a deploy until it leaves the in-progress statuses."""
    deadline = time.monotonic() + timeout
    while True:
        deploy = await client.get_deploy(service_id, deploy_id)
        if deploy["status"] not in {"created", "queued", "build_in_progress", "update_in_progress"}:
            return deploy
        if time.monotonic() > deadline:
            raise AssertionError(f"deploy {deploy_id} still {deploy['status']} after {timeout}s")
        await asyncio.sleep(0.05)  # stays far below the fake's 400 GETs a minute


def owner_id(fake: FakeServer) -> str:
    return fake.state.owners[0]["id"]


def static_site(name: str, *, root_dir: str = "", build: str = "npm run build", publish: str = "dist") -> dict[str, Any]:
    return {
        "type": "static_site",
        "name": name,
        "repo": "https://github.com/example/opsloop",
        "branch": "main",
        "rootDir": root_dir,
        "serviceDetails": {"buildCommand": build, "publishPath": publish},
    }


def web_service(name: str, **details: Any) -> dict[str, Any]:
    return {
        "type": "web_service",
        "name": name,
        "repo": "https://github.com/example/opsloop",
        "serviceDetails": {
            "runtime": "python",
            "envSpecificDetails": {"buildCommand": "pip install -r requirements.txt", "startCommand": "python -m app"},
            **details,
        },
    }
