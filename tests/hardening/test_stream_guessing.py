"""Password guessing through the streams (`/logs/stream?auth=`, `/ws`) is throttled per address like
every other route: after a few failures the address gets 429 with Retry-After, a request without
credentials is not counted, and the owner from another address still gets in."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.support.processes import PASSWORD, USER, Proc, app_instance


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Proc]:
    """An instance of its own: the address it throttles here must not spill into other tests."""
    proc = app_instance(database_url, name="stream-guessing-app").start()
    yield proc
    proc.stop()


def token(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def sse_status(app: Proc, auth: str | None, local_address: str = "127.0.0.1") -> httpx.Response:
    params = {"auth": auth} if auth else {}
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(transport=transport, timeout=10) as client, client.stream("GET", app.url + "/logs/stream", params=params) as resp:
        resp.read() if resp.status_code != 200 else None
        return resp


def test_guessing_through_the_streams_is_throttled(app: Proc) -> None:
    statuses = [sse_status(app, token(USER, f"guess-{i}")).status_code for i in range(12)]
    assert statuses[0] == 401 and 429 in statuses, statuses
    throttled = sse_status(app, token(USER, "one-more"))
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
    assert throttled.json()["error"].startswith("Too many failed")

    with pytest.raises(InvalidStatus) as info:
        connect(app.url.replace("http://", "ws://") + f"/ws?auth={token(USER, 'ws-guess')}", open_timeout=5)
    assert info.value.response.status_code == 429

    assert sse_status(app, None).status_code == 401  # no credentials: refused, not counted as a guess
    owner = sse_status(app, token(USER, PASSWORD), local_address="127.0.0.2")  # the owner, elsewhere
    assert owner.status_code == 200
