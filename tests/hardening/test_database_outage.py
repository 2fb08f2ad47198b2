"""The database goes away under a running app: requests get 503 with Retry-After (never a 500), the
app comes back by itself when the database does, and nothing acknowledged is lost.

The app reaches PostgreSQL through a TCP proxy the test controls; cutting the proxy is an outage
as the app sees one (connections reset, new ones refused), without stopping the shared server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.processes import PASSWORD, USER, Proc, app_instance, wait_for
from tests.support.proxy import TcpProxy, database_proxy
from tests.support.tasks import query, unique


@pytest.fixture(scope="module")
def proxied_app(database_url: str) -> Iterator[tuple[Proc, TcpProxy]]:
    proxy, url = database_proxy(database_url)
    app = app_instance(url, name="db-outage-app").start()
    try:
        yield app, proxy
    finally:
        app.stop()
        proxy.close()


def test_database_outage_answers_503_then_recovers(database_url: str, proxied_app: tuple[Proc, TcpProxy]) -> None:
    app, proxy = proxied_app
    corr = unique("outage")
    with httpx.Client(base_url=app.url, auth=(USER, PASSWORD), timeout=30) as client:
        before = client.post("/log", json={"service": "outage", "message": "before", "correlationId": corr})
        assert before.status_code == 202

        proxy.outage()
        answers = [
            client.get("/tasks", params={"limit": 5}),
            client.post("/log", json={"service": "outage", "message": "during", "correlationId": corr}),
            client.get(f"/task/{uuid.uuid4()}"),
            client.get("/logs", params={"service": "outage"}),
        ]
        for resp in answers:
            assert resp.status_code == 503, (resp.request.method, resp.request.url.path, resp.status_code, resp.text)
            assert resp.json()["error"].startswith("database unavailable") and resp.headers["retry-after"] == "2"

        proxy.restore()
        after = wait_for(
            lambda: (r := client.post("/log", json={"service": "outage", "message": "after", "correlationId": corr})).status_code == 202 and r,
            timeout=30,
            what="the app to write again once the database is back",
        )
        assert after.status_code == 202
        assert client.get("/tasks", params={"limit": 5}).status_code == 200
    stored = [r["message"] for r in query(database_url, "SELECT message FROM logs WHERE correlation_id = %s ORDER BY id", (corr,))]
    assert stored[0] == "before" and stored[-1] == "after" and "during" not in stored  # refused, so never half-written
