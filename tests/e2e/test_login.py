"""Logging in to the dashboard, as a person and as an attacker on the state socket."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from reflex.state import State

from opsloop.state.config import ConfigState
from opsloop.state.new_task import NewTaskState
from opsloop.state.task_detail import TaskDetailState
from opsloop.state.tasks import TasksState
from tests.e2e.conftest import login, shot
from tests.support.processes import INTERNAL_KEY, PASSWORD, USER, wait_for
from tests.support.socket_client import delta_has, state_socket
from tests.support.statesocket import event, handler_name, send_events_sync
from tests.support.tasks import query, unique

T = TypeVar("T")


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


# -- hostile `next` ----------------------------------------------------------------------------

HOSTILE_NEXT = [
    "https://evil.example/",
    "http://evil.example/x",
    "javascript:window.__xss=1",
    "JaVaScRiPt:window.__xss=1",
    " javascript:window.__xss=1",
    "javascript%3Awindow.__xss=1",
    "%6Aavascript:window.__xss=1",
    "//evil.example/",
    "/%2F/evil.example/",
    "/\\evil.example/",
    "\\/evil.example/",
    "/\t/evil.example/",
    "data:text/html,<script>window.__xss=1</script>",
]

CSP_PROBE = """window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"""


def guard_page(page) -> tuple[list[str], list[str]]:
    """Record requests that leave the origin, and any dialog (an alert would be script running)."""
    origin = page.context._dashboard_url  # type: ignore[attr-defined]
    left: list[str] = []
    dialogs: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(origin) or r.url.startswith("data:") else left.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    return left, dialogs


def settle_on(page, url: str) -> None:
    page.wait_for_url(url)
    page.wait_for_selector("#page-title")


def test_hostile_next_when_logged_in_stays_on_the_origin(page, dashboard) -> None:
    page.context._dashboard_url = dashboard.url  # type: ignore[attr-defined]
    left, dialogs = guard_page(page)
    login(page, dashboard.url)
    settle_on(page, dashboard.url + "/")
    for value in HOSTILE_NEXT:
        page.evaluate("() => { window.__xss = undefined; }")
        page.goto(dashboard.url + "/login?next=" + quote(value, safe=""))
        settle_on(page, dashboard.url + "/")  # the login page sent the signed-in user home, not to `next`
        assert page.evaluate("() => window.__xss") is None, value
    assert not left and not dialogs, (left, dialogs)


def test_hostile_next_when_logging_in_stays_on_the_origin(page, dashboard) -> None:
    page.context._dashboard_url = dashboard.url  # type: ignore[attr-defined]
    left, dialogs = guard_page(page)
    for value in HOSTILE_NEXT:
        page.context.clear_cookies()
        page.goto(dashboard.url + "/login?next=" + quote(value, safe=""))
        page.wait_for_selector("#username")
        assert page.locator("input[name=next]").get_attribute("value") == "/", value
        page.fill("#username", USER)
        page.fill("#password", PASSWORD)
        page.click("#sign-in")
        settle_on(page, dashboard.url + "/")
        assert page.evaluate("() => window.__xss") is None, value
    assert not left and not dialogs, (left, dialogs)


def test_next_path_on_the_origin_is_followed(page, dashboard) -> None:
    login(page, dashboard.url, path="/login?next=" + quote("/dashboard/tasks?status=error", safe=""))
    page.wait_for_url(re.compile(re.escape(dashboard.url) + r"/dashboard/tasks/?\?status=error$"))
    page.goto(dashboard.url + "/login?next=%2Fdashboard%2Fagents")
    page.wait_for_url(re.compile(re.escape(dashboard.url) + r"/dashboard/agents/?$"))


# -- CSP in the browser ------------------------------------------------------------------------


def injected_script_is_blocked(page) -> bool:
    """An inline script added to the page (what an injection would do) is refused by the CSP: the
    browser reports the violation and the script does not run."""
    directive = page.evaluate(
        """() => new Promise(resolve => {
            document.addEventListener('securitypolicyviolation', e => resolve(e.violatedDirective), {once: true});
            const s = document.createElement('script');
            s.textContent = 'window.__injected = 1';
            document.body.appendChild(s);
        })"""
    )
    return directive.startswith("script-src") and page.evaluate("() => window.__injected") is None


def test_dashboard_and_docs_run_under_the_csp(browser, dashboard) -> None:
    """Every view works with the CSP in force, and the browser reports no violation."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, http_credentials={"username": USER, "password": PASSWORD})
    page = context.new_page()
    page.set_default_timeout(15_000)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text or "Refused to" in m.text else None)
    page.add_init_script(CSP_PROBE)
    try:
        login(page, dashboard.url)
        page.wait_for_selector("#page-title")
        for nav in ("activity", "tasks", "new-task", "agents", "configuration", "render", "overview"):
            page.click(f"#nav-{nav}")
            page.wait_for_selector("#page-title")
        tasks = page.goto(dashboard.url + "/dashboard/tasks")
        page.wait_for_selector("#page-title")
        violations = page.evaluate("() => window.__csp")
        assert tasks is not None and "script-src 'self'" in tasks.headers.get("content-security-policy", "")
        assert not violations and not console, (violations, console)
        assert injected_script_is_blocked(page)
        console.clear()  # that violation was ours
        docs = page.goto(dashboard.url + "/docs")
        page.wait_for_selector(".swagger-ui .info .title")
        page.wait_for_selector(".opblock-tag")
        violations += page.evaluate("() => window.__csp")
        assert docs is not None and "frame-ancestors 'none'" in docs.headers.get("content-security-policy", "")
        assert not violations and not console, (violations, console)
        assert injected_script_is_blocked(page)
    finally:
        context.close()


# -- CSRF from another site --------------------------------------------------------------------


@contextlib.contextmanager
def attacker_site(html: str) -> Iterator[str]:
    """A page on another origin (another port of this host: same site, other origin)."""
    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_cross_site_form_and_fetch_change_nothing(browser, dashboard) -> None:
    """A signed-in operator (session cookie, and Basic credentials the browser answers 401s with)
    visits another site, which posts forms and fetches at the dashboard: nothing is created,
    cancelled or logged out."""
    corr = unique("csrf")
    with httpx.Client(base_url=dashboard.url, auth=(USER, PASSWORD)) as api:
        resp = api.post("/task", json={"type": "echo", "source": "csrf", "correlationId": corr + "-victim"})
    task_id = resp.json()["id"]
    target = dashboard.url
    payload = json.dumps({"type": "echo", "source": "csrf", "correlationId": corr})
    name, value = payload[:-1] + ',"x":"', '"}'
    html = f"""<html><body>
<form id="plain" method="POST" action="{target}/task" enctype="text/plain"><input name='{name}' value='{value}'></form>
<form id="urlencoded" method="POST" action="{target}/task"><input name="type" value="echo"><input name="correlationId" value="{corr}"></form>
<form id="cancel" method="POST" action="{target}/task/{task_id}/cancel"></form>
<form id="logout" method="POST" action="{target}/auth/logout"></form>
<script>
window.attack = async () => {{
  const opts = {{method: 'POST', mode: 'no-cors', credentials: 'include'}};
  await fetch('{target}/task', {{...opts, headers: {{'content-type': 'text/plain'}}, body: '{payload}'}});
  await fetch('{target}/log', {{...opts, headers: {{'content-type': 'text/plain'}}, body: JSON.stringify({{service: 'csrf', message: '{corr}'}})}});
  await fetch('{target}/task/{task_id}/cancel', opts);
  await fetch('{target}/auth/logout', opts);
  return 'sent';
}};
</script></body></html>"""
    context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        login(page, dashboard.url)
        page.wait_for_selector("#page-title")
        with attacker_site(html) as evil:
            page.goto(evil)
            assert page.evaluate("() => window.attack()") == "sent"  # every fetch got its (opaque) answer
            statuses = []
            for form in ("plain", "urlencoded", "cancel", "logout"):
                page.goto(evil)
                with page.expect_navigation() as nav:
                    page.evaluate(f"() => document.getElementById('{form}').submit()")
                statuses.append(nav.value.status if nav.value else None)
        assert statuses == [403, 403, 403, 403], statuses
        with httpx.Client(base_url=dashboard.url, auth=(USER, PASSWORD)) as api:
            assert api.get("/tasks", params={"corrId": corr}).json()["tasks"] == []
            assert api.get("/logs", params={"service": "csrf", "q": corr}).json()["logs"] == []
            assert api.get(f"/task/{task_id}").json()["task"]["status"] != "cancelled"
        page.goto(dashboard.url + "/dashboard/tasks")  # still signed in
        page.wait_for_selector("#page-title")
        assert "/login" not in page.url
    finally:
        context.close()


# -- sessions on the state socket --------------------------------------------------------------


def run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run async socket code from a sync test (Playwright's sync API owns this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro_fn()).result()


def session_cookie(base_url: str) -> str:
    resp = httpx.post(base_url + "/auth/login", data={"username": USER, "password": PASSWORD})
    assert resp.status_code == 303, resp.text
    return resp.cookies["opsloop_session"]


def redirected(update: dict[str, Any]) -> bool:
    return any(e.get("name") == "_redirect" for e in update.get("events", []))


async def refused_on_socket(base_url: str, cookie_value: str) -> bool:
    """A config page load with this cookie is refused (redirect to /login, no config data)."""
    async with state_socket(base_url, cookie=f"opsloop_session={cookie_value}") as s:
        await s.send(event(handler_name(ConfigState, "load"), path="/dashboard/config"))
        try:
            await s.wait_for(lambda u: redirected(u) or delta_has("config_state")(u))
        except ConnectionError:  # served, then ended by the sweeper: the session ended meanwhile
            return False
        return not any(delta_has("config_state")(u) for u in s.updates)


def refused_soon(base_url: str, cookie_value: str) -> None:
    """Refused now on the instance that ended the session, within the session cache's second otherwise."""
    wait_for(lambda: run(lambda: refused_on_socket(base_url, cookie_value)), 15, interval=0.2, what="the socket to refuse the session")


def session_row_id(database_url: str, cookie_value: str) -> str:
    from itsdangerous import URLSafeTimedSerializer

    (row,) = query(database_url, "SELECT value FROM app_secrets WHERE name = 'session_secret'")
    raw = URLSafeTimedSerializer(row["value"], salt="opsloop-session-v2").loads(cookie_value)
    return hashlib.sha256(raw.encode()).hexdigest()


@pytest.mark.parametrize("ending", ["logout", "expiry"])
def test_logout_and_expiry_end_the_session_on_the_state_socket(dashboard, ending: str) -> None:
    value = session_cookie(dashboard.url)
    load = handler_name(ConfigState, "load")

    async def scenario() -> None:
        async with state_socket(dashboard.url, cookie=f"opsloop_session={value}") as s:
            await s.send(event(load, path="/dashboard/config"))
            await s.wait_for(delta_has("config_state"))
            if ending == "logout":
                async with httpx.AsyncClient(base_url=dashboard.url) as c:
                    out = await c.post("/auth/logout", cookies={"opsloop_session": value})
                    assert out.status_code == 303
            else:
                expired = query(
                    dashboard.env["DATABASE_URL"],
                    "UPDATE sessions SET expires_at = now() WHERE id = %(id)s RETURNING id",
                    {"id": session_row_id(dashboard.env["DATABASE_URL"], value)},
                )
                assert len(expired) == 1
            await asyncio.wait_for(s.closed.wait(), 15)  # the open socket is ended by the server

    run(scenario)
    if ending == "logout":  # revoked on this instance: refused at once
        assert run(lambda: refused_on_socket(dashboard.url, value))
    else:
        refused_soon(dashboard.url, value)
    assert httpx.get(dashboard.url + "/tasks", cookies={"opsloop_session": value}).status_code == 401


def test_cookie_minted_from_the_internal_key_is_refused_on_the_socket(dashboard) -> None:
    from tests.hardening.test_security import minted_cookies

    for value in minted_cookies(INTERNAL_KEY):
        assert run(lambda v=value: refused_on_socket(dashboard.url, v)), value
        assert httpx.get(dashboard.url + "/tasks", cookies={"opsloop_session": value}).status_code == 401


def test_reused_client_token_without_the_cookie_gets_nothing(dashboard) -> None:
    """A closed tab's client token, reused by a socket without the session cookie: its hydrate
    returns none of the user's state, and it receives none of the user's live pushes."""
    value = session_cookie(dashboard.url)
    cookie = f"opsloop_session={value}"
    token, control_token = str(uuid.uuid4()), str(uuid.uuid4())
    marker = unique("private-marker")
    tasks_load = handler_name(TasksState, "load")

    async def scenario() -> tuple[str, list[str]]:
        async with state_socket(dashboard.url, cookie=cookie, token=token) as tab:
            await tab.send(event(handler_name(NewTaskState, "set_correlation_id"), {"value": marker}, path="/dashboard/new"))
            await tab.wait_for(lambda u: marker in json.dumps(u))
            await tab.send(event(tasks_load, path="/dashboard/tasks"))
            await tab.wait_for(delta_has("task"))
        # the tab is closed; another socket comes with its token and no cookie
        async with (
            state_socket(dashboard.url, token=token) as thief,
            state_socket(dashboard.url, cookie=cookie, token=control_token) as control,
        ):
            await control.send(event(tasks_load, path="/dashboard/tasks"))
            await control.wait_for(delta_has("task"))
            created = []
            async with httpx.AsyncClient(base_url=dashboard.url, auth=(USER, PASSWORD)) as api:
                for _ in range(2):  # two pushes to the control tab: the first push round has reached every tab
                    resp = await api.post("/task", json={"type": "echo", "source": "token-reuse", "correlationId": marker})
                    created.append(resp.json()["id"])
                    await control.wait_for(lambda u, tid=created[-1]: tid in json.dumps(u))
            await thief.send(event(handler_name(State, "hydrate"), path="/dashboard/new"))
            await thief.wait_for(lambda u: bool(u.get("delta")))
            return thief.text(), created

    seen, created = run(scenario)
    assert marker not in seen, "the reused token's hydrate returned the user's state"
    assert not any(tid in seen for tid in created), "the reused token received the user's live pushes"
