"""The Render page in a browser: the built dashboard (own process, own port) pointed at the fake
Render; services with their latest deploy, Deploy and Env actions, plan and apply — each action a
`render.*` task with source `dashboard`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dashboard import CHROMIUM, CHROMIUM_ARGS, dashboard_process, require_chromium
from tests.support.processes import ARTIFACTS, PASSWORD, USER, Proc, free_port

from .conftest import static_site
from .procs import FakeProc, client, render_env, tasks_of, wait_deploy_status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dashboard(database_url: str, fake_proc: FakeProc) -> Iterator[Proc]:
    require_chromium()
    proc = dashboard_process(database_url, name="render-dashboard", port=free_port(), **render_env(fake_proc)).start(timeout=120)
    yield proc
    proc.stop()


def test_render_page_lists_deploys_and_acts_through_tasks(dashboard: Proc, database_url: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    with client(dashboard) as http:
        resp = http.post("/render/services", json={"service": static_site("page-site")})
        assert resp.status_code == 201, resp.text
        sid = resp.json()["service"]["id"]
        wait_deploy_status(http, sid)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
        page.set_default_timeout(20_000)
        try:
            page.goto(dashboard.url + "/dashboard/render")
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            row = page.locator("tr.service-row[data-name='page-site']")
            expect(row.locator("td[data-status]")).to_have_attribute("data-status", "live")

            row.locator(".deploy-button").click()
            expect(page.locator("#render-notice")).to_contain_text("Deploy dep-")
            expect(page.locator("#render-tasks")).to_contain_text("render.deploy")

            row.get_by_text("Env").click()
            page.fill("#env-text", "GREETING=hello\nAPI_TOKEN=not-shown")
            page.click("#env-save")
            expect(page.locator("#render-notice")).to_contain_text("merged with 2 variable(s)")
            expect(page.locator("#env-current")).to_contain_text("GREETING")
            expect(page.locator("#env-current")).not_to_contain_text("not-shown")

            page.fill("#env-text", "ONLY=this")
            page.click("#env-clear")
            page.click("#env-save")  # "Replace all" first says what it would delete
            expect(page.locator("#env-replace-warning")).to_contain_text("deletes 2 variable(s) not in the text: API_TOKEN, GREETING")
            expect(page.locator("#env-current")).to_contain_text("GREETING")  # nothing sent yet
            page.click("#env-replace-confirm")
            expect(page.locator("#render-notice")).to_contain_text("replaced by 1 variable(s)")
            expect(page.locator("#env-current")).not_to_contain_text("GREETING")

            page.click("#blueprint-plan-button")
            expect(page.locator("tr.plan-row[data-action='create']")).to_have_count(4)  # the database and 3 services
            expect(page.get_by_text("opsloop: RENDER_API_TOKEN: sync: false value missing")).to_be_visible()
            page.click("#blueprint-apply")
            page.click("#blueprint-apply-confirm")  # the dashboard holds no operator secrets: refused, nothing changed
            expect(page.get_by_role("alert")).to_contain_text("nothing was changed", timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "render-page.png"), full_page=True)
        finally:
            browser.close()

    by_source = {t["type"] for t in tasks_of(database_url, "render.deploy", "source = 'dashboard'")}
    by_source |= {t["type"] for t in tasks_of(database_url, "render.env", "source = 'dashboard'")}
    by_source |= {t["type"] for t in tasks_of(database_url, "render.apply", "source = 'dashboard'")}
    assert by_source == {"render.deploy", "render.env", "render.apply"}
