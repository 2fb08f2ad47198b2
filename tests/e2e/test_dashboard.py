"""The operator's dashboard, driven in Chromium against the real app, database and echo agent."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.e2e.conftest import login, shot
from tests.support.processes import INTERNAL_KEY, PASSWORD, USER, echo_agent, wait_for


def api(dashboard) -> httpx.Client:
    return httpx.Client(base_url=dashboard.url, auth=(USER, PASSWORD), timeout=10)


def task_count(dashboard, corr: str) -> int:
    with api(dashboard) as c:
        return len(c.get("/tasks", params={"corrId": corr, "limit": 200}).json()["tasks"])


def test_create_task_from_form_and_watch_it_finish(page, dashboard) -> None:
    corr = f"e2e-form-{uuid.uuid4().hex[:6]}"
    login(page, dashboard.url, path="/dashboard/tasks")
    page.wait_for_selector("#page-title")
    table = page.context.new_page()
    table.goto(dashboard.url + "/dashboard/tasks")
    table.wait_for_selector("#status-counts .count-chip[data-status='done']")
    done_before = int(table.get_attribute("#status-counts .count-chip[data-status='done']", "data-count"))
    page.goto(dashboard.url + "/dashboard/new")
    page.wait_for_selector("#new-payload")
    page.fill("#new-correlation", corr)
    page.fill("#new-payload", '{"hello": "from the dashboard"}')
    page.wait_for_selector("#payload-ok")
    page.click("#create-task")
    page.wait_for_url(re.compile(r"/dashboard/tasks/[0-9a-f-]{36}"), timeout=5000)
    task_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.wait_for_selector("#task-status[data-status='done']", timeout=2000)
    page.wait_for_selector("#task-events .timeline-event[data-kind='done']", timeout=2000)
    kinds = page.locator("#task-events .timeline-event").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds[:3] == ["created", "running", "done"], kinds
    page.wait_for_selector("#task-logs .task-log", timeout=2000)
    assert "ECHO_REQUEST" in page.locator("#task-logs").inner_text()
    assert "from the dashboard" in page.locator("#task-result").inner_text()
    shot(page, "task-detail")
    table.wait_for_selector(f".task-row[data-task-id='{task_id}'][data-status='done']", timeout=2000)
    # The counts follow without a reload too (they are cached for 2 s, then refreshed and pushed).
    table.wait_for_function(
        f"Number(document.querySelector(\"#status-counts .count-chip[data-status='done']\").dataset.count) > {done_before}", timeout=4000
    )
    shot(table, "tasks")
    table.close()


def test_invalid_payload_shows_error_and_creates_nothing(page, dashboard) -> None:
    corr = f"e2e-invalid-{uuid.uuid4().hex[:6]}"
    login(page, dashboard.url, path="/dashboard/new")
    page.wait_for_selector("#new-payload")
    page.fill("#new-correlation", corr)
    page.fill("#new-payload", '{"broken": ')
    page.wait_for_selector("#payload-error")
    assert "Invalid JSON" in page.locator("#payload-error").inner_text()
    assert page.locator("#create-task").is_disabled()
    page.locator("#create-task").click(force=True)
    page.wait_for_timeout(500)
    shot(page, "new-task-invalid")
    assert task_count(dashboard, corr) == 0


def create_echo_tasks(dashboard, corr: str, count: int) -> None:
    """`count` echo tasks with correlation id `corr`, created and listed."""
    with api(dashboard) as c:
        for i in range(count):
            assert c.post("/task", json={"type": "echo", "source": "e2e", "correlationId": corr, "payload": {"i": i}}).status_code == 202
    wait_for(lambda: task_count(dashboard, corr) == count, what=f"{count} tasks")


def test_filters_live_in_the_url_and_paging_walks_on(page, dashboard) -> None:
    corr = f"e2e-page-{uuid.uuid4().hex[:6]}"
    create_echo_tasks(dashboard, corr, 30)
    login(page, dashboard.url, path="/dashboard/tasks")
    page.wait_for_selector("#filter-corr")
    page.fill("#filter-corr", corr)
    page.click("#apply-filters")
    page.wait_for_url(re.compile(f"corr={corr}"))
    page.wait_for_function("document.querySelectorAll('.task-row').length === 25")
    page.reload()
    page.wait_for_function("document.querySelectorAll('.task-row').length === 25")
    assert page.locator("#filter-corr").input_value() == corr
    first_page = set(page.locator(".task-row").evaluate_all("els => els.map(e => e.dataset.taskId)"))
    page.click("#next-page")
    page.wait_for_function("document.querySelectorAll('.task-row').length === 5")
    second_page = set(page.locator(".task-row").evaluate_all("els => els.map(e => e.dataset.taskId)"))
    assert not first_page & second_page and len(first_page | second_page) == 30
    assert page.locator("#page-number").inner_text() == "page 2"


def test_rows_pushed_off_the_first_page_by_live_tasks_are_on_the_next(page, dashboard) -> None:
    corr = f"e2e-push-{uuid.uuid4().hex[:6]}"
    create_echo_tasks(dashboard, corr, 25)
    with api(dashboard) as c:
        wait_for(lambda: all(t["status"] == "done" for t in c.get("/tasks", params={"corrId": corr}).json()["tasks"]), what="all done")
        login(page, dashboard.url, path="/dashboard/tasks")
        page.wait_for_selector("#status-counts")
        page.goto(f"{dashboard.url}/dashboard/tasks?corr={corr}")
        page.wait_for_function("document.querySelectorAll('.task-row').length === 25")
        assert page.locator("#next-page").is_disabled()  # exactly one page
        first = page.locator(".task-row").evaluate_all("els => els.map(e => e.dataset.taskId)")
        for i in range(3):
            assert c.post("/task", json={"type": "echo", "source": "e2e", "correlationId": corr, "payload": {"live": i}}).status_code == 202
    page.wait_for_function(
        f"document.querySelector('.task-row').dataset.taskId !== '{first[0]}' && document.querySelectorAll('.task-row').length === 25"
    )
    page.wait_for_function(f"!document.querySelector('.task-row[data-task-id=\"{first[-3]}\"]')", timeout=5000)
    page.wait_for_selector("#next-page:not([disabled])", timeout=5000)
    page.click("#next-page")
    page.wait_for_function("document.querySelectorAll('.task-row').length === 3")
    second = page.locator(".task-row").evaluate_all("els => els.map(e => e.dataset.taskId)")
    assert second == first[-3:], (second, first[-3:])


def test_cancel_queued_and_retry_failed_from_detail(page, dashboard) -> None:
    # An agent nobody runs: its task waits for it, queued (for OPSLOOP_AGENT_WAIT_S, minutes).
    with httpx.Client(base_url=dashboard.url, headers={"X-Internal-Key": INTERNAL_KEY}) as svc:
        body = {
            "slug": "e2e-hold",
            "url": "http://127.0.0.1:9",
            "taskTypes": ["e2e.hold"],
            "endpoint": "/run",
            "limits": {"e2e.hold": {"maxAttempts": 5, "backoffMs": 120000}},
        }
        assert svc.post("/agents/register", json=body).status_code == 200
    with api(dashboard) as c:
        doomed = c.post("/task", json={"type": "e2e.hold", "source": "e2e", "payload": {"x": 1}}).json()["id"]
        wait_for(
            lambda: (t := c.get(f"/task/{doomed}").json()["task"])["status"] == "queued" and (t["error"] or {}).get("waitingForAgent") == "e2e-hold",
            timeout=15,
            what="the task to wait queued for its agent",
        )
    login(page, dashboard.url, path=f"/dashboard/tasks/{doomed}")
    page.wait_for_selector("#task-status[data-status='queued']")
    page.click("#cancel-task")
    page.click("#cancel-task-confirm")
    page.wait_for_selector("#task-status[data-status='cancelled']")
    shot(page, "task-cancelled")

    # An agent registered with a wrong route: it refuses the task (404), which fails at once; fixed,
    # the task is retried from the dashboard and runs.
    with httpx.Client(base_url=dashboard.url, headers={"X-Internal-Key": INTERNAL_KEY}) as svc:
        agent = {"slug": "e2e-misrouted", "url": dashboard.echo.url, "taskTypes": ["e2e.misrouted"], "endpoint": "/nope"}
        assert svc.post("/agents/register", json=agent).status_code == 200
        with api(dashboard) as c:
            failing = c.post("/task", json={"type": "e2e.misrouted", "source": "e2e", "payload": {"x": 2}}).json()["id"]
            wait_for(lambda: c.get(f"/task/{failing}").json()["task"]["status"] == "error", timeout=30, what="the task to fail")
        assert svc.post("/agents/register", json={**agent, "endpoint": "/echo"}).status_code == 200
    page.goto(f"{dashboard.url}/dashboard/tasks/{failing}")
    page.wait_for_selector("#task-status[data-status='error']")
    assert "attempts" in page.locator("#task-error").inner_text()
    page.click("#retry-task")
    page.click("#retry-task-confirm")
    page.wait_for_selector("#task-status[data-status='done']", timeout=15_000)
    with api(dashboard) as c:
        assert c.get(f"/task/{doomed}").json()["task"]["status"] == "cancelled"
    with httpx.Client(base_url=dashboard.url, headers={"X-Internal-Key": INTERNAL_KEY}) as svc:  # retire it: the config view lists every agent
        assert svc.post("/agents/register", json={**agent, "url": "http://127.0.0.1:9"}).status_code == 200


def test_config_matrix_ok_then_names_the_misconfigured_key(page, dashboard, database_url) -> None:
    login(page, dashboard.url, path="/dashboard/config")
    page.wait_for_selector(".service-status[data-service='echo-agent-svc'][data-status='ok']")
    assert page.locator(".service-status[data-status='ok']").count() == 2
    dashboard.echo.stop()
    port = dashboard.echo.url.rsplit(":", 1)[1]
    rogue = echo_agent(database_url, dashboard.url, name="echo-wrong-key", port=int(port), INTERNAL_KEY=INTERNAL_KEY + "-other")
    rogue.start()
    try:
        page.reload()
        page.wait_for_selector(".service-status[data-service='echo'][data-status='error']")
        problems = page.locator("#config-problems").inner_text()
        assert "INTERNAL_KEY" in problems
        shot(page, "config-misconfigured")
    finally:
        rogue.stop()
        dashboard.echo.start()
    with api(dashboard) as c:
        wait_for(lambda: any(a["slug"] == "echo" and a["live"] for a in c.get("/agents").json()["agents"]), what="echo back")


def test_activity_shows_a_log_line_from_another_client(page, dashboard) -> None:
    login(page, dashboard.url, path="/dashboard/activity")
    page.wait_for_selector("#pause-activity")
    page.wait_for_timeout(500)
    message = f"hello from another client {uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=dashboard.url, headers={"X-Internal-Key": INTERNAL_KEY}) as c:
        assert c.post("/log", json={"service": "e2e-client", "level": "warn", "message": message}).status_code == 202
    page.wait_for_selector(f"text={message}", timeout=3000)
    shot(page, "activity")


@pytest.mark.parametrize(
    ("name", "path", "selector"),
    [
        ("overview", "/", "#overview-charts"),
        ("agents", "/dashboard/agents", "#agents-table"),
        ("config", "/dashboard/config", "#config-matrix"),
        ("new-task", "/dashboard/new", "#new-payload"),
        ("render", "/dashboard/render", "#page-title"),
    ],
)
def test_every_view_renders(page, dashboard, name: str, path: str, selector: str) -> None:
    login(page, dashboard.url, path=path)
    page.wait_for_selector(selector)
    page.wait_for_timeout(500)
    shot(page, f"view-{name}")
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    shot(page, f"view-{name}-phone")
