"""Logging in to the dashboard, as a person and as an attacker on the state socket."""

from __future__ import annotations

import re

import httpx

from opsloop.state.config import ConfigState
from opsloop.state.new_task import NewTaskState
from opsloop.state.task_detail import TaskDetailState
from tests.e2e.conftest import login, shot
from tests.support.processes import PASSWORD, USER
from tests.support.statesocket import event, handler_name, send_events_sync


def test_logged_out_visit_lands_on_login_and_comes_back(page, dashboard) -> None:
    page.goto(dashboard.url + "/dashboard/config")
    page.wait_for_url(re.compile(r"/login"))
    assert "next=" in page.url
    shot(page, "login")
    page.fill("#username", USER)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(re.compile(r"/dashboard/config"))
    page.wait_for_selector("#config-matrix")
    page.wait_for_selector(".service-status[data-service='echo-agent-svc'][data-status='ok']")
    assert page.locator(".service-status[data-service='opsloop'][data-status='ok']").count() == 1
    assert page.locator("#signed-in-user").inner_text() == USER
    shot(page, "config")


def test_wrong_password_is_refused(page, dashboard) -> None:
    login(page, dashboard.url, password="wrong-password")
    page.wait_for_selector("#login-error")
    assert "/login" in page.url
    assert page.context.cookies() == [] or all(c["name"] != "opsloop_session" for c in page.context.cookies())


def test_shell_navigation_and_logout(page, dashboard) -> None:
    login(page, dashboard.url)
    page.wait_for_selector("#page-title")
    for nav in ("activity", "tasks", "new-task", "agents", "configuration", "render", "overview"):
        page.click(f"#nav-{nav}")
        page.wait_for_selector("#page-title")
    cookie = next(c for c in page.context.cookies() if c["name"] == "opsloop_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""
    page.click("#logout")
    page.wait_for_url(re.compile(r"/login"))
    page.goto(dashboard.url + "/dashboard/tasks")
    page.wait_for_url(re.compile(r"/login"))


def test_state_socket_refuses_changes_without_a_session(dashboard) -> None:
    """Anyone can open /_event and send any event: without a session, nothing is created."""
    corr = "socket-attack"
    events = [
        event(handler_name(NewTaskState, "set_correlation_id"), {"value": corr}, path="/dashboard/new"),
        event(handler_name(NewTaskState, "set_task_type"), {"value": "echo"}, path="/dashboard/new"),
        event(handler_name(NewTaskState, "submit"), path="/dashboard/new"),
        event(handler_name(TaskDetailState, "retry"), path="/dashboard/tasks/00000000-0000-0000-0000-000000000000"),
    ]
    updates = send_events_sync(dashboard.url, events, wait=2)
    assert not any("new_task_state" in k for m in updates for k in m.get("delta", {})), updates
    with httpx.Client(base_url=dashboard.url, auth=(USER, PASSWORD)) as c:
        assert c.get("/tasks", params={"corrId": corr}).json()["tasks"] == []


def test_state_socket_refuses_events_without_a_session(dashboard) -> None:
    load = handler_name(ConfigState, "load")
    anonymous = send_events_sync(dashboard.url, [event(load, path="/dashboard/config")])
    assert not any("config_state" in k for m in anonymous for k in m.get("delta", {})), anonymous
    assert any(e["name"] == "_redirect" for m in anonymous for e in m.get("events", []))
    forged = send_events_sync(dashboard.url, [event(load, path="/dashboard/config")], cookie="opsloop_session=eyJ1IjoiYWRtaW4ifQ.x.y")
    assert not any("config_state" in k for m in forged for k in m.get("delta", {}))
    resp = httpx.post(dashboard.url + "/auth/login", data={"username": USER, "password": PASSWORD, "next": "/"})
    cookie = f"opsloop_session={resp.cookies['opsloop_session']}"
    signed_in = send_events_sync(dashboard.url, [event(load, path="/dashboard/config")], cookie=cookie, wait=4)
    assert any("config_state" in k for m in signed_in for k in m.get("delta", {})), signed_in
