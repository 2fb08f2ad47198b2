"""Browser fixtures: one dashboard process (with an echo agent) and one Chromium per session."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, dashboard_process, require_chromium
from tests.support.processes import ARTIFACTS, PASSWORD, USER, Proc, echo_agent, wait_for


@pytest.fixture(scope="package")
def dashboard(database_url: str) -> Iterator[Proc]:
    app = dashboard_process(database_url).start(timeout=120)
    echo = echo_agent(database_url, app.url, name="dashboard-echo").start()
    with httpx.Client(base_url=app.url, auth=(USER, PASSWORD)) as c:
        wait_for(
            lambda: any(a["slug"] == "echo" and a["url"] == echo.url for a in c.get("/agents").json()["agents"]),
            timeout=15,
            what="echo agent registration",
        )
    app.echo = echo  # type: ignore[attr-defined]
    try:
        yield app
    finally:
        echo.stop()
        app.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    """One Chromium for the e2e tests. Package scope, not session: Playwright's sync API runs an
    event loop in this thread while it is open, which would break every later asyncio test."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, dashboard):
    # Playwright evaluates string predicates (`wait_for_function`) with eval, which the app's CSP
    # forbids; these tests are about behaviour. The CSP itself is tested without this
    # (tests/e2e/test_login.py::test_dashboard_and_docs_run_under_the_csp).
    context = browser.new_context(viewport={"width": 1280, "height": 860}, bypass_csp=True)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    yield pg
    context.close()


def login(page, base_url: str, password: str = PASSWORD, path: str = "/") -> None:
    page.goto(base_url + path)
    page.wait_for_selector("#username")
    page.fill("#username", USER)
    page.fill("#password", password)
    page.click("#sign-in")


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
