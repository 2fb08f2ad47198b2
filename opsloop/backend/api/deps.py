"""Shared route plumbing: who is calling, the runtime, strict body and query parsing."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.responses import JSONResponse

from opsloop.backend import jsonutil
from opsloop.backend.api.identity import identify
from opsloop.backend.auth import Principal
from opsloop.backend.errors import BadRequest
from opsloop.backend.runtime import Runtime, get_runtime
from opsloop.backend.sessions import SessionStore
from opsloop.backend.tasks.store import TaskStore

M = TypeVar("M", bound=BaseModel)


class JSON(JSONResponse):
    """JSON via orjson: rows carry datetimes and UUIDs, and this is the hot path."""

    def render(self, content: Any) -> bytes:
        return jsonutil.dumps(content)


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSON:
    return JSON({"error": message}, status_code=status, headers=headers)


def unauthorized() -> HTTPException:
    return HTTPException(401, "Unauthorized", headers={"WWW-Authenticate": 'Basic realm="opsloop"'})


async def caller(request: Request) -> Principal:
    """Basic Auth, X-Internal-Key or the dashboard session; `?auth=` is only for stream routes (see `stream_caller`).
    Async (like every dependency here): FastAPI runs a plain `def` in a worker thread per request."""
    p = await identify(request, session_store)  # Basic (throttled per address after failures), X-Internal-Key, or the session cookie
    if p is None:
        raise unauthorized()
    return p


async def service_caller(request: Request) -> Principal:
    """Routes for services only (agent registration): the internal key, not a person's password."""
    p = await caller(request)
    if p.kind != "service":
        raise HTTPException(403, "This route takes the internal key (X-Internal-Key)")
    return p


def process_runtime() -> Runtime:
    """The process's runtime, started or not (the raw ASGI streams check `started` themselves)."""
    return get_runtime()


async def runtime() -> Runtime:
    """The process's runtime, once started: the one place routes reach `get_runtime()`."""
    rt = get_runtime()
    if not rt.started:
        raise HTTPException(503, "opsloop is starting")
    return rt


async def task_store(rt: Annotated[Runtime, Depends(runtime)]) -> TaskStore:
    return rt.tasks


def session_store() -> SessionStore:
    """The runtime's session store (sessions are looked up before the runtime has started too)."""
    return get_runtime().sessions


RuntimeDep = Annotated[Runtime, Depends(runtime)]
TaskStoreDep = Annotated[TaskStore, Depends(task_store)]
Caller = Annotated[Principal, Depends(caller)]


async def read_json(request: Request) -> Any:
    """The body, held to the JSON policy (`jsonutil.parse`): depth, 64-bit integers, no NUL."""
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("request body is empty: expected JSON")
    return jsonutil.parse(raw)


def describe(exc: ValidationError, prefix: str = "") -> str:
    """The first problem, naming its field (and the entry's index for arrays)."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "body"
    if err["type"] == "missing":
        return f"{prefix}{loc} is required"
    return f"{prefix}{loc}: {err['msg']}"


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None


def validate_list(adapter: TypeAdapter[Any], data: list[Any]) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        index, *rest = err["loc"]
        field = ".".join(str(p) for p in rest) or "entry"
        what = "is required" if err["type"] == "missing" else f": {err['msg']}"
        raise BadRequest(f"entry {index}: {field} {what}".replace(" :", ":")) from None


def parse_limit(raw: str | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise BadRequest(f"limit must be an integer from 1 to {maximum}")
    return value


def parse_time(raw: str | None, name: str) -> datetime | None:
    """ISO 8601, or epoch milliseconds (what the earlier system's clients send)."""
    if raw is None or raw == "":
        return None
    try:
        if raw.isdigit():
            return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"{name} must be an ISO 8601 time or epoch milliseconds") from None


def text_param(request: Request, name: str) -> str | None:
    """A query filter; NUL is refused (PostgreSQL's text cannot hold it: the query would fail)."""
    value = request.query_params.get(name) or None
    if value is not None and "\x00" in value:
        raise BadRequest(f"{name} cannot contain the NUL character")
    return value


def corr_param(request: Request) -> str | None:
    """`corrId` and `correlationId` are both accepted (the earlier system used both)."""
    return text_param(request, "correlationId") or text_param(request, "corrId")
