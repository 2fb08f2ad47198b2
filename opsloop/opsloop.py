"""The Reflex app: dashboard pages on top of the FastAPI app that carries the REST API.

Reflex mounts itself under our FastAPI app (`api_transformer`), so API routes match first; the
dashboard's pages therefore live at `/` and under `/dashboard/…`, where no API route is. The
runtime (database pool, live bus, dispatcher) starts as a Reflex lifespan task, since Reflex
does not run a transformer app's own lifespan.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import reflex as rx

from opsloop.backend.api.app import create_api
from opsloop.backend.runtime import get_runtime
from opsloop.pages.config import config_page
from opsloop.pages.login import login_page
from opsloop.pages.placeholders import simple_page
from opsloop.state.config import ConfigState
from opsloop.state.gate import SessionGate
from opsloop.state.session import LoginState, SessionState


@contextlib.asynccontextmanager
async def runtime_lifespan() -> AsyncIterator[None]:
    rt = get_runtime()
    await rt.start()
    try:
        yield
    finally:
        await rt.stop()


app = rx.App(api_transformer=create_api())
app.register_lifespan_task(runtime_lifespan)
app.add_middleware(SessionGate())

app.add_page(login_page, route="/login", title="Sign in · opsloop", on_load=LoginState.load)
app.add_page(
    lambda: simple_page("Overview", "Charts of throughput and status appear here once tasks run.", "chart-line"),
    route="/",
    title="opsloop",
    on_load=SessionState.check_login,
)
for route, title, message, icon in (
    ("/dashboard/activity", "Activity", "Task updates, events and log lines appear here as they happen.", "activity"),
    ("/dashboard/tasks", "Tasks", "No tasks yet.", "list-checks"),
    ("/dashboard/new", "New task", "The new-task form appears here.", "circle-plus"),
    ("/dashboard/agents", "Agents", "Registered agents appear here.", "bot"),
    ("/dashboard/render", "Render", "Render services appear here when a Render token is configured.", "cloud"),
):
    app.add_page(
        lambda title=title, message=message, icon=icon: simple_page(title, message, icon),
        route=route,
        title=f"{title} · opsloop",
        on_load=SessionState.check_login,
    )
app.add_page(config_page, route="/dashboard/config", title="Configuration · opsloop", on_load=[SessionState.check_login, ConfigState.load])
