"""The OpenAPI document and the `/docs` page: what FastAPI generates from the routes, plus what
only the app as a whole knows — how callers authenticate, the error shape every route shares, and
the SSE stream (a raw ASGI route FastAPI does not see).

Swagger UI's assets come from the `fastapi-offline` wheel and are served by the app itself: no
CDN (none is reachable here, and a production API page should not load third-party script).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.responses import FileResponse, HTMLResponse, Response

from opsloop.backend.api.deps import error

DOCS_ASSETS_PATH = "/docs/assets"
BASIC = "basicAuth"
INTERNAL_KEY = "internalKey"
QUERY_AUTH = "queryAuth"
PUBLIC: list[dict[str, list[str]]] = []  # `security: []` on an operation: no credentials needed


class ErrorBody(BaseModel):
    """Every error answer of every route: one line, never a secret."""

    error: str = Field(description="What went wrong, in one line", examples=["Task not found"])


ERROR = {"model": ErrorBody}
# Added to every route at include time: the app's middleware, dependencies and handlers produce them.
RETRY_AFTER = {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait before trying again"}}
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {**ERROR, "description": "A cross-site request with ambient credentials (cookie or cached Basic), or an Origin not allowed"},
    413: {**ERROR, "description": "Request body above MAX_BODY_BYTES"},
    415: {**ERROR, "description": "A JSON route was sent a body that is not `application/json`"},
    "default": {**ERROR, "description": "Any other error: `{error}`"},
}
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {
        **ERROR,
        "description": "No or wrong credentials",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Basic realm="opsloop"'}},
    },
    429: {**ERROR, "description": "Too many failed credentials from this address: wait `Retry-After` seconds", "headers": RETRY_AFTER},
    503: {**ERROR, "description": "The instance is starting, or the database is unavailable (`Retry-After`)", "headers": RETRY_AFTER},
}

SECURITY_SCHEMES = {
    BASIC: {"type": "http", "scheme": "basic", "description": "Operators and scripts: BASIC_AUTH_USER / BASIC_AUTH_PASS."},
    INTERNAL_KEY: {"type": "apiKey", "in": "header", "name": "X-Internal-Key", "description": "Services and agents: INTERNAL_KEY."},
    QUERY_AUTH: {
        "type": "apiKey",
        "in": "query",
        "name": "auth",
        "description": "Streams only (`/logs/stream`, `/ws`): base64(user:pass), for browsers that cannot set headers.",
    },
}

_STREAM_PARAMS = [
    ("service", "Only log lines of this service (and then no task events)"),
    ("level", "Only log lines of this level: debug, info, warn, error (and then no task events)"),
    ("taskId", "Only this task's log lines and events"),
    ("traceId", "Only this trace's log lines and events"),
    ("lastEventId", "Resume after this frame id (same as the Last-Event-ID header)"),
]

SSE_PATH = {
    "get": {
        "tags": ["logs"],
        "summary": "Live log lines and task events (Server-Sent Events)",
        "description": (
            "Frames `event: log` (a log row) and `event: event` (a task event, camelCase), each with an "
            "`id:`; a client reconnecting with `Last-Event-ID` receives what it missed. A heartbeat frame "
            "comes at least every 15 s. Browsers pass credentials as `?auth=base64(user:pass)`; an `Origin` "
            "must be in WS_ALLOWED_ORIGINS."
        ),
        "operationId": "logs_stream",
        "parameters": [
            *({"name": n, "in": "query", "required": False, "schema": {"type": "string"}, "description": d} for n, d in _STREAM_PARAMS),
            {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}, "description": "Resume position"},
        ],
        "security": [{BASIC: []}, {INTERNAL_KEY: []}, {QUERY_AUTH: []}],
        "responses": {
            "200": {"description": "An endless event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            "401": {
                "description": "No or wrong credentials",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
            },
            "403": {"description": "Origin not allowed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}},
        },
    }
}

DESCRIPTION = """REST API of opsloop (tasks, task events, logs, agents, configuration).

**Auth.** Every operation takes HTTP Basic (`basicAuth`: operators and scripts) or the
`X-Internal-Key` header (`internalKey`: services and agents), except those marked public
(`GET /health`, the dashboard's login and logout). Routes for services only (agent registration)
answer 403 to Basic Auth. Errors are always `{"error": "..."}`; 401 carries `WWW-Authenticate: Basic`.

**Live.** `GET /logs/stream` (Server-Sent Events) and the WebSocket `/ws` (not describable in
OpenAPI: frames `{ts, type, data}` with `type` one of `TASK_UPDATE`, `TASK_EVENT`, `LOG`; send
`{"type": "subscribe", "filter": {...}}` to narrow, `{"type": "ping"}` for `PONG`) also take
`?auth=base64(user:pass)`, and check `Origin` against WS_ALLOWED_ORIGINS.
"""


def build_document(api: FastAPI) -> dict[str, Any]:
    """FastAPI's document of the routes, plus the security schemes (applied globally), the shared
    error schema and the SSE stream."""
    doc = get_openapi(title=api.title, version=api.version, description=DESCRIPTION, routes=api.routes, tags=api.openapi_tags)
    components = doc.setdefault("components", {})
    components["securitySchemes"] = SECURITY_SCHEMES
    components.setdefault("schemas", {})["ErrorBody"] = ErrorBody.model_json_schema()
    doc["security"] = [{BASIC: []}, {INTERNAL_KEY: []}]
    doc.setdefault("paths", {})["/logs/stream"] = SSE_PATH
    return doc


def cached_openapi(api: FastAPI) -> dict[str, Any]:
    """`api.openapi()` replacement: built once per process (routes do not change after start)."""
    if api.openapi_schema is None:
        api.openapi_schema = build_document(api)
    return api.openapi_schema


def _assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


DOCS_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}


def docs_page(openapi_url: str = "/openapi.json") -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=openapi_url,
        title="opsloop API",
        swagger_js_url=f"{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS_PATH}/favicon.png",
        swagger_ui_parameters={"persistAuthorization": False, "displayRequestDuration": True, "tryItOutEnabled": False},
    )


def docs_asset(name: str) -> Response:
    """One of the few Swagger UI files, by exact name (no path from the request reaches the disk)."""
    media_type = DOCS_ASSETS.get(name)
    if media_type is None:
        return error(404, "Not found")
    return FileResponse(_assets_dir() / name, media_type=media_type, headers={"cache-control": "public, max-age=86400"})
