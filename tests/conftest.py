"""Shared fixtures: one migrated database per session, a running stack (app + echo agent) per module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.database import fresh_database
from tests.support.processes import INTERNAL_KEY, PASSWORD, USER, Proc, app_instance, echo_agent, wait_for


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    from opsloop.backend.db import upgrade_database

    with fresh_database() as url:
        upgrade_database(url)
        yield url


@dataclass
class Stack:
    database_url: str
    app: Proc
    echo: Proc

    @property
    def url(self) -> str:
        return self.app.url

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.app.url, auth=(USER, PASSWORD), timeout=10.0, **kw)

    def service_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.app.url, headers={"X-Internal-Key": INTERNAL_KEY}, timeout=10.0)


@pytest.fixture(scope="module")
def stack(database_url: str, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """An app instance and an echo agent registered with it, against the session database."""
    module = request.module.__name__.rsplit(".", 1)[-1]
    app = app_instance(database_url, name=f"{module}-app").start()
    echo = echo_agent(database_url, app.url, name=f"{module}-echo").start()
    with httpx.Client(base_url=app.url, auth=(USER, PASSWORD)) as c:
        wait_for(
            lambda: any(a["slug"] == "echo" and a["url"] == echo.url for a in c.get("/agents").json()["agents"]),
            timeout=15,
            what="echo agent registration",
        )
    try:
        yield Stack(database_url, app, echo)
    finally:
        echo.stop()
        app.stop()
