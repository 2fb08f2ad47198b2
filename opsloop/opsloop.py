"""The Reflex app: dashboard pages on top of the FastAPI app that carries the REST API.

Reflex mounts itself under our FastAPI app (`api_transformer`), so API routes match first; the
dashboard's pages therefore live at `/` and under `/dashboard/…`, where no API route is. The
runtime (database pool, live bus, dispatcher) starts as a Reflex lifespan task, since Reflex
does not run a transformer app's own lifespan; the live pusher feeds open dashboards from it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import reflex as rx

from opsloop.backend.api.app import create_api
from opsloop.backend.api.security_headers import SecurityHeaders
from opsloop.backend.plugins import installed as installed_plugins
from opsloop.backend.runtime import get_runtime
from opsloop.pages.activity import activity_page
from opsloop.pages.agents import agents_page
from opsloop.pages.config import config_page
from opsloop.pages.login import login_page
from opsloop.pages.new_task import new_task_page
from opsloop.pages.overview import overview_page
from opsloop.pages.task_detail import task_detail_page
from opsloop.pages.tasks import tasks_page
from opsloop.serving import FrontendOrigin
from opsloop.state.activity import ActivityState
from opsloop.state.agents import AgentsState
from opsloop.state.config import ConfigState
from opsloop.state.gate import SessionGate
from opsloop.state.live import live_pusher
from opsloop.state.new_task import NewTaskState
from opsloop.state.overview import OverviewState
from opsloop.state.session import LoginState, SessionState
from opsloop.state.session_sweeper import session_sweeper
from opsloop.state.task_detail import TaskDetailState
from opsloop.state.tasks import TasksState


@contextlib.asynccontextmanager
async def runtime_lifespan() -> AsyncIterator[None]:
    rt = get_runtime()
    await rt.start()
    try:
        yield
    finally:
        await rt.stop()


api = create_api()
api.add_middleware(FrontendOrigin)
api.add_middleware(SecurityHeaders)  # outside FrontendOrigin too (added once per answer)
app = rx.App(api_transformer=api)
app.register_lifespan_task(runtime_lifespan)
app.register_lifespan_task(live_pusher)
app.register_lifespan_task(session_sweeper)
app.add_middleware(SessionGate())


def signed_in(route: str, component, title: str, *loads) -> None:
    app.add_page(component, route=route, title=f"{title} · opsloop", on_load=[SessionState.check_login, *loads])


app.add_page(login_page, route="/login", title="Sign in · opsloop", on_load=LoginState.load)
signed_in("/", overview_page, "Overview", OverviewState.load)
signed_in("/dashboard/activity", activity_page, "Activity", ActivityState.load)
signed_in("/dashboard/tasks", tasks_page, "Tasks", TasksState.load)
signed_in("/dashboard/tasks/[task_id]", task_detail_page, "Task", TaskDetailState.load)
signed_in("/dashboard/new", new_task_page, "New task", NewTaskState.load)
signed_in("/dashboard/agents", agents_page, "Agents", AgentsState.load)
signed_in("/dashboard/config", config_page, "Configuration", ConfigState.load)
for plugin in installed_plugins():
    for page in plugin.pages():
        signed_in(page.route, page.component, page.title, *page.on_load)
