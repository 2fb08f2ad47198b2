"""A local fake of Render's public API, for development and tests.

Why: opsloop drives its own deployment through Render's API; the fake lets the client,
renderctl, the Blueprint apply and the build-failure monitor run end to end without a
Render account, with Render's paths, bodies, status codes, paging, auth, rate-limit headers
and build-log lines. Its requests and answers conform to Render's OpenAPI document (tests
check every exchange; ``validate_openapi=True`` makes the fake check its own traffic).

Served under ``/v1`` like ``https://api.render.com/v1``: point a client at
``http://127.0.0.1:PORT/v1``. State is in memory, owned by the server's event loop.

Implemented: owners; services of every type (create, list with filters, retrieve, update,
delete); env vars (list, replace-all PUT, per-key GET/PUT/DELETE, ``generateValue``);
deploys (trigger: 201 with the deploy, or 202 with no body when one is already running and
the new one is queued; list, retrieve, cancel); build logs through ``GET /logs``; cursor
paging with ``limit`` 1..100 (default 20); Bearer auth; Render's error body ``{message}``;
rate limits per Render's documented classes with ``Ratelimit-Limit/Remaining/Reset``,
``Render-Request-Id`` on every answer and 429 with ``Retry-After``.

Control endpoints (outside ``/v1``, no auth, for tests and local runs):
``POST /__fake__/reset`` (forget services, deploys, logs, faults, rate windows),
``POST /__fake__/faults`` ``{"status"?: 429|500|503..., "count": N, "path_prefix"?: "/services",
"method"?: "GET", "retry_after"?: seconds, "delay_seconds"?: seconds}`` (the next N matching
requests fail with that status, or are delayed first), ``POST /__fake__/services``
``{"services": [servicePOST bodies]}`` (seed without rate limits or deploys),
``GET /__fake__/openapi-problems`` and ``GET /__fake__/health``.

Build model (deterministic):

- Every service's repository is the same fake tree, opsloop's own layout: the directories
  in ``repo_dirs`` exist (default: only the repository root ``""``). A root dir outside it
  fails the build with ``Service Root Directory "/opt/render/project/src/<dir>" is missing.``
- A build command is split on ``&&`` and ``;``; each step that contains a known fragment
  produces a directory relative to the root dir (``BUILD_OUTPUTS``): ``reflex export`` ->
  ``.web/build/client``; ``npm run build``, ``yarn build``, ``pnpm build``, ``vite build`` ->
  ``dist``; ``hugo`` -> ``public``. Anything else builds successfully and produces nothing.
- A static site publishes ``publishPath`` (relative to the root dir; ``""`` or ``.`` is the
  root dir itself). An empty build command logs ``==> Empty build command; skipping build``
  and produces nothing. If the publish directory was not produced the build fails with
  ``==> Publish directory <publishPath> does not exist!``.
- Deploy statuses: created -> build_in_progress -> live for static sites, and created ->
  build_in_progress -> update_in_progress -> live for other services, or build_failed; the
  earlier live deploy becomes deactivated. Each phase takes a share of ``build_seconds``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import math
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opsloop.render.client import RATE_LIMITS, RateLimit, rate_class

from .resources import Resources
from .runner import DEFAULT_PORT, DeployFailed, Runner

API_PREFIX = "/v1"
SRC_ROOT = "/opt/render/project/src"
DEFAULT_OWNER = {
    "id": "tea-opsloopfake0000000000",
    "name": "opsloop (fake)",
    "email": "ops@example.com",
    "type": "team",
}
DEFAULT_REPO_DIRS: tuple[str, ...] = ("",)
MAX_LOG_LINES = 50_000
BUILD_OUTPUTS: tuple[tuple[str, str], ...] = (
    ("reflex export", ".web/build/client"),
    ("npm run build", "dist"),
    ("yarn build", "dist"),
    ("pnpm build", "dist"),
    ("vite build", "dist"),
    ("hugo", "public"),
)

SERVICE_TYPES = ("static_site", "web_service", "private_service", "background_worker", "cron_job")
NATIVE_RUNTIMES = frozenset({"elixir", "go", "node", "python", "ruby", "rust"})
RUNTIMES = NATIVE_RUNTIMES | {"docker", "image"}
PLANS = frozenset({"starter", "starter_plus", "standard", "standard_plus", "pro", "pro_plus", "pro_max", "pro_ultra", "free", "custom"})
REGIONS = frozenset({"frankfurt", "oregon", "ohio", "singapore", "virginia"})
IN_PROGRESS = frozenset({"created", "queued", "build_in_progress", "update_in_progress", "pre_deploy_in_progress"})
_DASHBOARD_KIND = {
    "static_site": "static",
    "web_service": "web",
    "private_service": "pserv",
    "background_worker": "worker",
    "cron_job": "cron",
}
_PATCH_DETAILS = {
    "static_site": {"buildCommand", "publishPath", "pullRequestPreviewsEnabled", "previews", "renderSubdomainPolicy", "ipAllowList"},
    "web_service": {
        "envSpecificDetails",
        "healthCheckPath",
        "maintenanceMode",
        "plan",
        "preDeployCommand",
        "pullRequestPreviewsEnabled",
        "previews",
        "runtime",
        "maxShutdownDelaySeconds",
        "renderSubdomainPolicy",
        "ipAllowList",
        "cache",
    },
    "private_service": {
        "envSpecificDetails",
        "plan",
        "preDeployCommand",
        "pullRequestPreviewsEnabled",
        "previews",
        "runtime",
        "maxShutdownDelaySeconds",
    },
    "background_worker": {
        "envSpecificDetails",
        "plan",
        "preDeployCommand",
        "pullRequestPreviewsEnabled",
        "previews",
        "runtime",
        "maxShutdownDelaySeconds",
    },
    "cron_job": {"envSpecificDetails", "plan", "schedule", "runtime"},
}
_PATCH_TOP = {"autoDeploy", "repo", "branch", "image", "name", "buildFilter", "rootDir", "serviceDetails"}
_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"


class FakeError(Exception):
    """An error answer in Render's shape: ``{"message": ...}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status, headers=dict(headers or {}))


def _new_id(prefix: str) -> str:
    return prefix + "-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(20))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(raw: str) -> datetime:
    """A query timestamp: RFC 3339 (Render's format) or Unix seconds."""
    try:
        return datetime.fromtimestamp(float(raw), tz=UTC)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise FakeError(400, f"invalid timestamp: {raw}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise FakeError(400, "invalid cursor") from exc


def _slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-") or "service"


def _norm_dir(path: str) -> str:
    """Normalize a repo-relative directory: '' is the root; './x/' -> 'x'."""
    parts = [p for p in path.strip().split("/") if p not in ("", ".")]
    return "/".join(parts)


# ----- requests ---------------------------------------------------------------------------


@dataclass
class Call:
    """One API call as handlers see it."""

    method: str
    path: str
    params: dict[str, str]
    query: list[tuple[str, str]]
    body: bytes

    def json(self) -> Any:
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise FakeError(400, "invalid JSON body") from exc

    def one(self, name: str) -> str | None:
        values = [v for k, v in self.query if k == name]
        return values[-1] if values else None

    def many(self, name: str) -> list[str]:
        """An array query parameter: repeated keys and comma-separated values both work."""
        return [item for k, v in self.query if k == name for item in v.split(",") if item]

    def page(self, items: Sequence[tuple[str, dict[str, Any]]], wrap: str) -> list[dict[str, Any]]:
        return _page(items, wrap, self)

    def limit(self, default: int = 20) -> int:
        raw = self.one("limit")
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise FakeError(400, "limit must be an integer") from exc
        if not 1 <= value <= 100:
            raise FakeError(400, "limit must be between 1 and 100")
        return value


def _page(items: Sequence[tuple[str, dict[str, Any]]], wrap: str, call: Call) -> list[dict[str, Any]]:
    """Render's cursor paging over (key, item) pairs: items after the cursor's key."""
    limit = call.limit()
    start = 0
    cursor = call.one("cursor")
    if cursor:
        key = _uncursor(cursor)
        keys = [k for k, _ in items]
        if key not in keys:
            raise FakeError(400, "invalid cursor")
        start = keys.index(key) + 1
    return [{wrap: item, "cursor": _cursor(key)} for key, item in items[start : start + limit]]


# ----- faults and rate limits -------------------------------------------------------------


@dataclass
class Fault:
    """The next ``count`` matching requests fail with ``status`` (after ``delay``)."""

    status: int | None
    count: int
    path_prefix: str = ""
    method: str | None = None
    retry_after: float = 1.0
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return self.count > 0 and path.startswith(self.path_prefix) and self.method in (None, method)


class RateWindows:
    """Fixed windows per (limit class, service), like Render's ``Ratelimit-*`` headers."""

    def __init__(self, limits: Mapping[str, RateLimit], clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = dict(limits)
        self._clock = clock
        self._windows: dict[tuple[str, str], list[float]] = {}  # key -> [count, reset_at]

    def reset(self) -> None:
        self._windows.clear()

    def hit(self, method: str, path: str) -> tuple[dict[str, str], int | None]:
        """Count one request: (headers, None) or (headers, retry-after) when refused."""
        name, key = rate_class(method, path)
        rule = self.limits.get(name)
        if rule is None:
            return {}, None
        now = self._clock()
        window = self._windows.get((name, key))
        if window is None or now >= window[1]:
            window = self._windows[(name, key)] = [0, now + rule.period]
        reset = max(1, math.ceil(round(window[1] - now, 6)))  # 60.0000000001 is 60, not 61
        refused = window[0] >= rule.limit
        if not refused:
            window[0] += 1
        headers = {
            "Ratelimit-Limit": str(rule.limit),
            "Ratelimit-Remaining": str(max(0, rule.limit - int(window[0]))),
            "Ratelimit-Reset": str(reset),
        }
        return headers, (reset if refused else None)


# ----- build simulation -------------------------------------------------------------------


def simulate_build(service: Mapping[str, Any], commit: Mapping[str, Any], repo_dirs: Sequence[str]) -> tuple[bool, list[str]]:
    """Run the deterministic build model (module docstring): (succeeded, log lines)."""
    if service.get("imagePath"):
        return True, [f"==> Pulling image {service['imagePath']}", "==> Image pulled"]
    lines = [
        f"==> Cloning from {service.get('repo', '')}",
        f"==> Checking out commit {commit['id']} in branch {service.get('branch', 'main')}",
    ]
    root = _norm_dir(service.get("rootDir", ""))
    if root not in {_norm_dir(d) for d in repo_dirs}:
        return False, [*lines, f'Service Root Directory "{SRC_ROOT}/{root}" is missing.', "==> Build failed 😞"]
    details = service["serviceDetails"]
    command = details.get("buildCommand") if service["type"] == "static_site" else (details.get("envSpecificDetails", {}).get("buildCommand"))
    produced: set[str] = set()
    if command and command.strip():
        lines.append(f"==> Running build command '{command}'...")
        produced = _build_outputs(command)
    elif service["type"] == "static_site":
        lines.append("==> Empty build command; skipping build")
    if service["type"] != "static_site":
        return True, [*lines, "==> Build successful 🎉"]
    publish = details.get("publishPath", "public")
    if _norm_dir(publish) and _norm_dir(publish) not in produced:
        return False, [*lines, f"==> Publish directory {publish} does not exist!", "==> Build failed 😞"]
    return True, [*lines, "==> Uploading build...", "==> Build successful 🎉"]


def _build_outputs(command: str) -> set[str]:
    steps = [s.strip() for s in re.split(r"&&|;", command) if s.strip()]
    return {out for step in steps for fragment, out in BUILD_OUTPUTS if fragment in step}


# ----- the fake ---------------------------------------------------------------------------


Handler = Callable[[Call], Awaitable[Response]]


@dataclass
class FakeRender:
    """State and request handlers of the fake."""

    token: str | None = None
    build_seconds: float = 0.2
    owners: list[dict[str, Any]] = field(default_factory=lambda: [dict(DEFAULT_OWNER)])
    repo_dirs: Sequence[str] = DEFAULT_REPO_DIRS
    rate_limits: Mapping[str, RateLimit] = field(default_factory=lambda: dict(RATE_LIMITS))
    checker: Any = None  # OpenAPIChecker when validating
    postgres_url: str | None = None  # a PostgreSQL server for real Postgres instances
    runner: Runner | None = None  # runs deploys of services whose repository it can reach

    def __post_init__(self) -> None:
        self.rates = RateWindows(self.rate_limits)
        self.services: dict[str, dict[str, Any]] = {}
        self.env: dict[str, dict[str, str]] = {}
        self.deploys: dict[str, list[dict[str, Any]]] = {}  # newest first
        self.logs: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.problems: list[str] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._last_log_at = datetime.now(UTC)
        self.resources = Resources(
            owner_of=self._owner, error=FakeError, postgres_url=self.postgres_url, settle_seconds=self.build_seconds * 0.5, services=self.services
        )
        self._routes = self._route_table()

    # ----- plumbing ------------------------------------------------------------------

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        sid, key, did = r"(?P<sid>[^/]+)", r"(?P<key>[^/]+)", r"(?P<did>[^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/owners", self.list_owners),
            ("GET", r"/owners/(?P<oid>[^/]+)", self.get_owner),
            ("GET", "/services", self.list_services),
            ("POST", "/services", self.create_service),
            ("GET", f"/services/{sid}", self.get_service),
            ("PATCH", f"/services/{sid}", self.update_service),
            ("DELETE", f"/services/{sid}", self.delete_service),
            ("GET", f"/services/{sid}/env-vars", self.list_env),
            ("PUT", f"/services/{sid}/env-vars", self.replace_env),
            ("GET", f"/services/{sid}/env-vars/{key}", self.get_env),
            ("PUT", f"/services/{sid}/env-vars/{key}", self.put_env),
            ("DELETE", f"/services/{sid}/env-vars/{key}", self.delete_env),
            ("GET", f"/services/{sid}/deploys", self.list_deploys),
            ("POST", f"/services/{sid}/deploys", self.trigger_deploy),
            ("GET", f"/services/{sid}/deploys/{did}", self.get_deploy),
            ("POST", f"/services/{sid}/deploys/{did}/cancel", self.cancel_deploy),
            ("GET", "/logs", self.list_logs),
            *self.resources.routes(),
        ]
        return [(m, re.compile(f"^{p}$"), h) for m, p, h in table]

    async def handle_api(self, request: Request) -> Response:
        """Entry point of every ``/v1`` request."""
        path = "/" + request.path_params["rest"]
        body = await request.body()
        response = await self._dispatch(request, path, body)
        response.headers["Render-Request-Id"] = f"fake-{uuid.uuid4().hex[:16]}"
        if self.checker is not None:
            self._record_problems(request, path, body, response)
        return response

    async def _dispatch(self, request: Request, path: str, body: bytes) -> Response:
        method = request.method
        fault = self._take_fault(method, path)
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status is not None:
                return self._fault_response(fault)
        if not self._authorized(request.headers.get("authorization", "")):
            return _error(401, "unauthorized")
        limit_headers, retry_after = self.rates.hit(method, path)
        if retry_after is not None:
            return _error(429, "rate limit exceeded", {**limit_headers, "Retry-After": str(retry_after)})
        query = parse_qsl(request.url.query, keep_blank_values=True)
        response = await self._route(method, path, query, body)
        response.headers.update(limit_headers)
        return response

    async def _route(self, method: str, path: str, query: list[tuple[str, str]], body: bytes) -> Response:
        for route_method, pattern, handler in self._routes:
            match = pattern.match(path)
            if match and route_method == method:
                try:
                    return await handler(Call(method, path, match.groupdict(), query, body))
                except FakeError as exc:
                    return _error(exc.status, exc.message)
        return _error(404, f"not found: {path}")

    def _authorized(self, header: str) -> bool:
        if self.token is None:
            return True
        expected = f"Bearer {self.token}"
        return hmac.compare_digest(header.encode(), expected.encode())

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.count -= 1
                return fault
        return None

    def _fault_response(self, fault: Fault) -> Response:
        status = fault.status or 500
        headers: dict[str, str] = {}
        if status == 429:
            retry = fault.retry_after
            headers = {
                "Retry-After": str(int(retry)) if float(retry).is_integer() else str(retry),
                "Ratelimit-Limit": "0",
                "Ratelimit-Remaining": "0",
                "Ratelimit-Reset": str(max(1, math.ceil(retry))),
            }
        messages = {429: "rate limit exceeded", 503: "service unavailable"}
        return _error(status, messages.get(status, "internal server error"), headers)

    def _record_problems(self, request: Request, path: str, body: bytes, response: Response) -> None:
        full = API_PREFIX + path
        self.problems += self.checker.check_request(request.method, full, request.url.query, body, dict(request.headers))
        content = bytes(getattr(response, "body", b""))
        self.problems += self.checker.check_response(request.method, full, response.status_code, content, response.headers.get("content-type"))

    # ----- control -------------------------------------------------------------------

    async def reset(self) -> None:
        """Forget everything but the owners (for tests)."""
        await self.resources.reset()
        if self.runner is not None:
            await self.runner.close()
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self.services.clear()
        self.env.clear()
        self.deploys.clear()
        self.logs.clear()
        self.faults.clear()
        self.problems.clear()
        self.rates.reset()

    def add_fault(self, spec: Mapping[str, Any]) -> Fault:
        prefix = str(spec.get("path_prefix") or "")
        if prefix.startswith(API_PREFIX + "/") or prefix == API_PREFIX:
            prefix = prefix[len(API_PREFIX) :]
        fault = Fault(
            status=int(spec["status"]) if spec.get("status") is not None else None,
            count=int(spec.get("count", 1)),
            path_prefix=prefix,
            method=str(spec["method"]).upper() if spec.get("method") else None,
            retry_after=float(spec.get("retry_after", 1)),
            delay=float(spec.get("delay_seconds", 0)),
        )
        if fault.status is None and fault.delay <= 0:
            raise FakeError(400, "a fault needs a status or delay_seconds")
        self.faults.append(fault)
        return fault

    async def shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.resources.reset()
        if self.runner is not None:
            await self.runner.close()

    # ----- lookups -------------------------------------------------------------------

    def _service(self, service_id: str) -> dict[str, Any]:
        service = self.services.get(service_id)
        if service is None:
            raise FakeError(404, f"not found: {service_id}")
        return service

    def _deploy(self, service_id: str, deploy_id: str) -> dict[str, Any]:
        for deploy in self.deploys.get(service_id, []):
            if deploy["id"] == deploy_id:
                return deploy
        raise FakeError(404, f"not found: {deploy_id}")

    def _owner_ids(self) -> set[str]:
        return {o["id"] for o in self.owners}

    def _owner(self, owner_id: str) -> dict[str, Any]:
        for owner in self.owners:
            if owner["id"] == owner_id:
                return owner
        raise FakeError(400, f"invalid ownerId: {owner_id}")

    # ----- owners --------------------------------------------------------------------

    async def list_owners(self, call: Call) -> Response:
        names, emails = set(call.many("name")), set(call.many("email"))
        owners = [(o["id"], o) for o in self.owners if (not names or o["name"] in names) and (not emails or o["email"] in emails)]
        return JSONResponse(_page(owners, "owner", call))

    async def get_owner(self, call: Call) -> Response:
        for owner in self.owners:
            if owner["id"] == call.params["oid"]:
                return JSONResponse(owner)
        raise FakeError(404, f"not found: {call.params['oid']}")

    # ----- services ------------------------------------------------------------------

    async def list_services(self, call: Call) -> Response:
        filters = {
            "name": set(call.many("name")),
            "type": set(call.many("type")),
            "ownerId": set(call.many("ownerId")),
        }
        regions = set(call.many("region"))
        suspended = set(call.many("suspended"))
        items = [
            (sid, s)
            for sid, s in self.services.items()
            if all(not wanted or s[k] in wanted for k, wanted in filters.items())
            and (not regions or s["serviceDetails"].get("region") in regions)
            and (not suspended or s["suspended"] in suspended)
        ]
        return JSONResponse(_page(items, "service", call))

    async def create_service(self, call: Call) -> Response:
        service, env = self.new_service(call.json())
        self._store_service(service, env)
        deploy = self._start_deploy(service["id"], trigger="api")
        return JSONResponse({"service": service, "deployId": deploy["id"]}, status_code=201)

    def new_service(self, body: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """Validate a ``servicePOST`` body; build the service Render would store."""
        if not isinstance(body, dict):
            raise FakeError(400, "body must be a JSON object")
        kind = body.get("type")
        if kind not in SERVICE_TYPES:
            raise FakeError(400, f"type must be one of {', '.join(SERVICE_TYPES)}")
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise FakeError(400, "name is required")
        owner_id = body.get("ownerId")
        if owner_id not in self._owner_ids():
            raise FakeError(400, f"invalid ownerId: {owner_id}")
        if any(s["name"] == name and s["ownerId"] == owner_id for s in self.services.values()):
            raise FakeError(409, f"a service named {name} already exists")
        image = body.get("image")
        if not body.get("repo") and not (isinstance(image, dict) and image.get("imagePath")):
            raise FakeError(400, "must provide either repo or image")
        service = self._service_shell(body, kind, name, owner_id)
        service["serviceDetails"] = self._details(kind, body.get("serviceDetails") or {}, service, image)
        env = _env_input(body.get("envVars") or [])
        return service, env

    def _service_shell(self, body: Mapping[str, Any], kind: str, name: str, owner_id: str) -> dict[str, Any]:
        service_id = _new_id("crn" if kind == "cron_job" else "srv")
        now = _iso(datetime.now(UTC))
        service: dict[str, Any] = {
            "id": service_id,
            "autoDeploy": _enum(body.get("autoDeploy", "yes"), {"yes", "no"}, "autoDeploy"),
            "createdAt": now,
            "dashboardUrl": f"https://dashboard.render.com/{_DASHBOARD_KIND[kind]}/{service_id}",
            "name": name,
            "notifyOnFail": "default",
            "ownerId": owner_id,
            "rootDir": _string(body.get("rootDir", ""), "rootDir"),
            "slug": self._unique_slug(name),
            "suspended": "not_suspended",
            "suspenders": [],
            "type": kind,
            "updatedAt": now,
        }
        if body.get("repo"):
            service["repo"] = _string(body["repo"], "repo")
            service["branch"] = _string(body.get("branch") or "main", "branch")
        if body.get("buildFilter") is not None:
            service["buildFilter"] = _build_filter(body["buildFilter"])
        if body.get("environmentId"):
            service["environmentId"] = _string(body["environmentId"], "environmentId")
        image = body.get("image")
        if isinstance(image, dict) and image.get("imagePath"):
            service["imagePath"] = _string(image["imagePath"], "image.imagePath")
        return service

    def _unique_slug(self, name: str) -> str:
        slug = _slugify(name)
        taken = {s["slug"] for s in self.services.values()}
        while slug in taken:
            slug = f"{_slugify(name)}-{''.join(secrets.choice(_ID_ALPHABET) for _ in range(4))}"
        return slug

    def _details(self, kind: str, details: Any, service: Mapping[str, Any], image: Any) -> dict[str, Any]:
        if not isinstance(details, dict):
            raise FakeError(400, "serviceDetails must be an object")
        slug = service["slug"]
        if kind == "static_site":
            return {
                "buildCommand": _string(details.get("buildCommand", ""), "serviceDetails.buildCommand"),
                "publishPath": _string(details.get("publishPath", "public"), "serviceDetails.publishPath"),
                "url": f"https://{slug}.onrender.com",
                "buildPlan": "starter",
                "previews": {"generation": _previews(details)},
                "pullRequestPreviewsEnabled": _enum(details.get("pullRequestPreviewsEnabled", "no"), {"yes", "no"}, "pullRequestPreviewsEnabled"),
            }
        return _server_details(kind, details, slug, image)

    def _store_service(self, service: dict[str, Any], env: dict[str, str]) -> None:
        self.services[service["id"]] = service
        self.env[service["id"]] = env
        self.deploys[service["id"]] = []

    async def get_service(self, call: Call) -> Response:
        return JSONResponse(self._service(call.params["sid"]))

    async def update_service(self, call: Call) -> Response:
        service = self._service(call.params["sid"])
        patch = call.json()
        if not isinstance(patch, dict):
            raise FakeError(400, "body must be a JSON object")
        unknown = set(patch) - _PATCH_TOP
        if unknown:
            raise FakeError(400, f"unknown fields: {', '.join(sorted(unknown))}")
        updated = json.loads(json.dumps(service))
        self._apply_top_patch(updated, patch)
        if "serviceDetails" in patch:
            _apply_details_patch(updated, patch["serviceDetails"])
        updated["updatedAt"] = _iso(datetime.now(UTC))
        self.services[service["id"]] = updated
        return JSONResponse(updated)

    def _apply_top_patch(self, service: dict[str, Any], patch: Mapping[str, Any]) -> None:
        if "name" in patch:
            name = _string(patch["name"], "name")
            clash = any(s["name"] == name and s["ownerId"] == service["ownerId"] and s["id"] != service["id"] for s in self.services.values())
            if not name or clash:
                raise FakeError(409 if clash else 400, f"invalid or taken name: {name}")
            service["name"] = name
        for key in ("repo", "branch", "rootDir"):
            if key in patch:
                service[key] = _string(patch[key], key)
        if "autoDeploy" in patch:
            service["autoDeploy"] = _enum(patch["autoDeploy"], {"yes", "no"}, "autoDeploy")
        if "buildFilter" in patch:
            service["buildFilter"] = _build_filter(patch["buildFilter"])
        if "image" in patch:
            image = patch["image"]
            if not isinstance(image, dict) or not image.get("imagePath"):
                raise FakeError(400, "image.imagePath is required")
            service["imagePath"] = _string(image["imagePath"], "image.imagePath")

    async def delete_service(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        for deploy in self.deploys.get(service_id, []):
            task = self._tasks.pop(deploy["id"], None)
            if task is not None:
                task.cancel()
        del self.services[service_id]
        self.env.pop(service_id, None)
        self.deploys.pop(service_id, None)
        if self.runner is not None:
            await self.runner.forget(service_id)
        return Response(status_code=204)

    # ----- env vars ------------------------------------------------------------------

    def _env_page(self, service_id: str, call: Call) -> list[dict[str, Any]]:
        items = [(k, {"key": k, "value": v}) for k, v in self.env[service_id].items()]
        return _page(items, "envVar", call)

    async def list_env(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        return JSONResponse(self._env_page(service_id, call))

    async def replace_env(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        self.env[service_id] = _env_input(call.json() or [])
        items = [{"envVar": {"key": k, "value": v}, "cursor": _cursor(k)} for k, v in self.env[service_id].items()]
        return JSONResponse(items)

    async def get_env(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        key = call.params["key"]
        if key not in self.env[service_id]:
            raise FakeError(404, f"not found: {key}")
        return JSONResponse({"key": key, "value": self.env[service_id][key]})

    async def put_env(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        key = call.params["key"]
        body = call.json()
        if not isinstance(body, dict):
            raise FakeError(400, "body must be {value} or {generateValue: true}")
        value = _env_value(key, body)
        self.env[service_id][key] = value
        return JSONResponse({"key": key, "value": value})

    async def delete_env(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        if self.env[service_id].pop(call.params["key"], None) is None:
            raise FakeError(404, f"not found: {call.params['key']}")
        return Response(status_code=204)

    # ----- deploys -------------------------------------------------------------------

    async def list_deploys(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        statuses = set(call.many("status"))
        items = [(d["id"], d) for d in self.deploys[service_id] if not statuses or d["status"] in statuses]
        return JSONResponse(_page(items, "deploy", call))

    async def trigger_deploy(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        body = call.json() or {}
        if not isinstance(body, dict):
            raise FakeError(400, "body must be a JSON object")
        _enum(body.get("clearCache", "do_not_clear"), {"clear", "do_not_clear"}, "clearCache")
        busy = any(d["status"] in IN_PROGRESS for d in self.deploys[service_id])
        deploy = self._new_deploy(service_id, "api", queued=busy)
        if busy:
            return Response(status_code=202)
        self._run(service_id, deploy)
        return JSONResponse(deploy, status_code=201)

    async def get_deploy(self, call: Call) -> Response:
        return JSONResponse(self._deploy(self._service(call.params["sid"])["id"], call.params["did"]))

    async def cancel_deploy(self, call: Call) -> Response:
        service_id = self._service(call.params["sid"])["id"]
        deploy = self._deploy(service_id, call.params["did"])
        if deploy["status"] not in IN_PROGRESS:
            raise FakeError(400, f"deploy {deploy['id']} is not in progress ({deploy['status']})")
        task = self._tasks.pop(deploy["id"], None)
        if task is not None:
            task.cancel()
        self._log(service_id, "==> Deploy canceled")
        self._finish(service_id, deploy, "canceled")
        return JSONResponse(deploy)

    def _new_deploy(self, service_id: str, trigger: str, *, queued: bool = False) -> dict[str, Any]:
        now = _iso(datetime.now(UTC))
        service = self.services[service_id]
        deploy: dict[str, Any] = {
            "id": _new_id("dep"),
            "status": "queued" if queued else "created",
            "trigger": trigger,
            "createdAt": now,
            "updatedAt": now,
        }
        if service.get("imagePath"):
            deploy["image"] = {"ref": service["imagePath"], "sha": "sha256:" + secrets.token_hex(32)}
        else:
            deploy["commit"] = {"id": secrets.token_hex(20), "message": "fake commit", "createdAt": now}
        self.deploys[service_id].insert(0, deploy)
        return deploy

    def _start_deploy(self, service_id: str, trigger: str) -> dict[str, Any]:
        deploy = self._new_deploy(service_id, trigger)
        self._run(service_id, deploy)
        return deploy

    def _run(self, service_id: str, deploy: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._build(service_id, deploy))
        self._tasks[deploy["id"]] = task
        did: str = deploy["id"]
        task.add_done_callback(lambda _t: self._tasks.pop(did, None))

    async def _build(self, service_id: str, deploy: dict[str, Any]) -> None:
        """Walk one deploy through its statuses: really run (``runner.py``), or the build model."""
        await asyncio.sleep(self.build_seconds * 0.25)
        service = self.services[service_id]  # the configuration as the build starts
        if self.runner is not None and self.runner.source(service.get("repo")) is not None:
            await self._boot(service_id, deploy, json.loads(json.dumps(service)))
            return
        static = service["type"] == "static_site"
        self._set_status(deploy, "build_in_progress")
        deploy["startedAt"] = deploy["updatedAt"]
        ok, lines = simulate_build(service, deploy.get("commit") or {"id": ""}, self.repo_dirs)
        for line in lines:
            self._log(service_id, line)
        await asyncio.sleep(self.build_seconds * (0.75 if static or not ok else 0.5))
        if not ok:
            self._finish(service_id, deploy, "build_failed")
            return
        if not static:
            self._set_status(deploy, "update_in_progress")
            self._log(service_id, "==> Deploying...")
            await asyncio.sleep(self.build_seconds * 0.25)
        self._log(service_id, "==> Your site is live 🎉" if static else "==> Your service is live 🎉")
        self._finish(service_id, deploy, "live")

    async def _boot(self, service_id: str, deploy: dict[str, Any], service: dict[str, Any]) -> None:
        """A deploy that really runs: build, pre-deploy, start, health check (``runner.py``)."""
        assert self.runner is not None
        self._set_status(deploy, "build_in_progress")
        deploy["startedAt"] = deploy["updatedAt"]

        def log(line: str) -> None:
            if service_id in self.services:
                self._log(service_id, line, "app" if deploy["status"] == "live" else "build")

        try:
            source = self.runner.source(service.get("repo"))
            assert source is not None
            commit = await self.runner.resolve_commit(source, str(service.get("branch") or "main"))
            deploy["commit"] = {"id": commit["id"], "message": f"commit {commit['id'][:7]}", "createdAt": deploy["createdAt"]}
            env = {**self.resources.env_for(service_id), **self.env[service_id]}
            peers = {s["slug"]: (self.env[i].get("PORT") or DEFAULT_PORT, i) for i, s in self.services.items() if s["type"] != "static_site"}
            await self.runner.deploy(service, env, peers, deploy["commit"], lambda status: self._set_status(deploy, status), log)
        except DeployFailed as exc:
            log(exc.line)
            self._finish(service_id, deploy, exc.status)
            return
        except OSError as exc:
            log(f"==> Could not run the deploy: {exc}")
            self._finish(service_id, deploy, "build_failed")
            return
        url = self.runner.url(service_id)
        if url and service_id in self.services and service["type"] in ("web_service", "static_site"):
            self.services[service_id]["serviceDetails"]["url"] = url
        log("==> Your site is live 🎉" if service["type"] == "static_site" else "==> Your service is live 🎉")
        self._finish(service_id, deploy, "live")

    def _set_status(self, deploy: dict[str, Any], status: str) -> None:
        deploy["status"] = status
        deploy["updatedAt"] = _iso(datetime.now(UTC))

    def _finish(self, service_id: str, deploy: dict[str, Any], status: str) -> None:
        if status == "live":
            for other in self.deploys.get(service_id, []):
                if other is not deploy and other["status"] == "live":
                    self._set_status(other, "deactivated")
        self._set_status(deploy, status)
        deploy["finishedAt"] = deploy["updatedAt"]
        queued = [d for d in self.deploys.get(service_id, []) if d["status"] == "queued"]
        if queued:
            nxt = queued[-1]  # the oldest queued one (list is newest first)
            self._set_status(nxt, "created")
            self._run(service_id, nxt)

    # ----- logs ----------------------------------------------------------------------

    def _log(self, service_id: str, message: str, kind: str = "build") -> None:
        """Append a log line; timestamps strictly increase so time paging is exact."""
        now = max(datetime.now(UTC), self._last_log_at + timedelta(microseconds=1))
        self._last_log_at = now
        if len(self.logs) >= MAX_LOG_LINES:
            del self.logs[: MAX_LOG_LINES // 10]  # a long-running local Render keeps the newest lines
        self.logs.append(
            {
                "ownerId": self.services[service_id]["ownerId"],
                "at": now,
                "entry": {
                    "id": uuid.uuid4().hex,
                    "message": message,
                    "timestamp": _iso(now),
                    "labels": [
                        {"name": "resource", "value": service_id},
                        {"name": "type", "value": kind},
                        {"name": "level", "value": "info"},
                    ],
                },
            }
        )

    async def list_logs(self, call: Call) -> Response:
        owner_id, resources = call.one("ownerId"), set(call.many("resource"))
        if not owner_id or not resources:
            raise FakeError(400, "ownerId and resource are required")
        direction = call.one("direction") or "backward"
        if direction not in ("forward", "backward"):
            raise FakeError(400, "direction must be forward or backward")
        now = datetime.now(UTC)
        start_raw, end_raw = call.one("startTime"), call.one("endTime")
        start = _parse_time(start_raw) if start_raw else now - timedelta(hours=1)
        end = _parse_time(end_raw) if end_raw else now
        matching = [r for r in self.logs if r["ownerId"] == owner_id and start <= r["at"] <= end and _labels_match(r["entry"], resources, call)]
        if direction == "backward":
            matching.reverse()
        limit = call.limit()
        page, more = matching[:limit], len(matching) > limit
        next_start, next_end = start, end
        if more and direction == "forward":
            next_start = page[-1]["at"] + timedelta(microseconds=1)
        elif more:
            next_end = page[-1]["at"] - timedelta(microseconds=1)
        return JSONResponse(
            {
                "hasMore": more,
                "nextStartTime": _iso(next_start),
                "nextEndTime": _iso(next_end),
                "logs": [r["entry"] for r in page],
            }
        )


def _labels_match(entry: Mapping[str, Any], resources: set[str], call: Call) -> bool:
    labels = {label["name"]: label["value"] for label in entry["labels"]}
    if labels.get("resource") not in resources:
        return False
    for name in ("type", "level"):
        wanted = set(call.many(name))
        if wanted and labels.get(name) not in wanted:
            return False
    texts = call.many("text")
    return not texts or any(t in entry["message"] for t in texts)


# ----- body validation helpers ------------------------------------------------------------


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise FakeError(400, f"{name} must be a string")
    return value


def _enum(value: Any, allowed: set[str] | frozenset[str], name: str) -> str:
    if value not in allowed:
        raise FakeError(400, f"{name} must be one of {', '.join(sorted(allowed))}")
    return value


def _previews(details: Mapping[str, Any]) -> str:
    previews = details.get("previews") or {}
    if not isinstance(previews, dict):
        raise FakeError(400, "previews must be an object")
    return _enum(previews.get("generation", "off"), {"off", "manual", "automatic"}, "previews.generation")


def _build_filter(value: Any) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise FakeError(400, "buildFilter must be an object")
    out = {}
    for key in ("paths", "ignoredPaths"):
        items = value.get(key) or []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise FakeError(400, f"buildFilter.{key} must be a list of strings")
        out[key] = list(items)
    return out


def _env_value(key: str, entry: Mapping[str, Any]) -> str:
    if entry.get("generateValue") is True:
        return base64.b64encode(secrets.token_bytes(32)).decode()
    if not isinstance(entry.get("value"), str):
        raise FakeError(400, f"env var {key}: value must be a string (or generateValue: true)")
    return entry["value"]


def _env_input(entries: Any) -> dict[str, str]:
    """Validate an ``envVarInputArray`` into an ordered {key: value}."""
    if not isinstance(entries, list):
        raise FakeError(400, "env vars must be a list")
    env: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
            raise FakeError(400, "each env var needs a key")
        if entry["key"] in env:
            raise FakeError(400, f"duplicate env var {entry['key']}")
        env[entry["key"]] = _env_value(entry["key"], entry)
    return env


def _server_details(kind: str, details: Mapping[str, Any], slug: str, image: Any) -> dict[str, Any]:
    """serviceDetails of a web/private service, background worker or cron job."""
    runtime = details.get("runtime") or details.get("env") or ("image" if image else None)
    _enum(runtime, RUNTIMES, "serviceDetails.runtime")
    out: dict[str, Any] = {
        "env": runtime,
        "runtime": runtime,
        "envSpecificDetails": _env_specific(str(runtime), details.get("envSpecificDetails") or {}),
        "plan": _enum(details.get("plan", "starter"), PLANS, "serviceDetails.plan"),
        "region": _enum(details.get("region", "oregon"), REGIONS, "serviceDetails.region"),
        "buildPlan": "starter",
    }
    if "preDeployCommand" in details:
        out["envSpecificDetails"]["preDeployCommand"] = _string(details["preDeployCommand"], "preDeployCommand")
    if kind == "cron_job":
        out["schedule"] = _string(details.get("schedule"), "serviceDetails.schedule")
        return out
    out["numInstances"] = _positive_int(details.get("numInstances", 1), "serviceDetails.numInstances")
    out["previews"] = {"generation": _previews(details)}
    out["maxShutdownDelaySeconds"] = _positive_int(details.get("maxShutdownDelaySeconds", 30), "maxShutdownDelaySeconds")
    if kind == "web_service":
        out["healthCheckPath"] = _string(details.get("healthCheckPath", ""), "serviceDetails.healthCheckPath")
        out["openPorts"] = []
        out["url"] = f"https://{slug}.onrender.com"
    elif kind == "private_service":
        out["openPorts"] = []
        out["url"] = f"{slug}:10000"
    return out


def _env_specific(runtime: str, given: Any) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise FakeError(400, "serviceDetails.envSpecificDetails must be an object")
    if runtime in NATIVE_RUNTIMES:
        if not isinstance(given.get("buildCommand"), str) or not isinstance(given.get("startCommand"), str):
            raise FakeError(400, "envSpecificDetails.buildCommand and startCommand are required")
        return {"buildCommand": given["buildCommand"], "startCommand": given["startCommand"]}
    return {
        "dockerCommand": _string(given.get("dockerCommand", ""), "dockerCommand"),
        "dockerContext": _string(given.get("dockerContext", "."), "dockerContext"),
        "dockerfilePath": _string(given.get("dockerfilePath", "./Dockerfile"), "dockerfilePath"),
    }


def _positive_int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise FakeError(400, f"{name} must be a positive integer")
    return value


def _apply_details_patch(service: dict[str, Any], patch: Any) -> None:
    """Apply a ``serviceDetails`` PATCH of the service's type; unknown keys are refused."""
    if not isinstance(patch, dict):
        raise FakeError(400, "serviceDetails must be an object")
    kind = service["type"]
    unknown = set(patch) - _PATCH_DETAILS[kind]
    if unknown:
        raise FakeError(400, f"serviceDetails fields not updatable for {kind}: {', '.join(sorted(unknown))}")
    details = service["serviceDetails"]
    for key, value in patch.items():
        if key == "envSpecificDetails":
            _patch_env_specific(details, value)
        elif key == "preDeployCommand":
            details["envSpecificDetails"]["preDeployCommand"] = _string(value, key)
        elif key == "runtime":
            details["runtime"] = details["env"] = _enum(value, RUNTIMES, "runtime")
        elif key == "plan":
            details["plan"] = _enum(value, PLANS, "plan")
        elif key == "previews":
            details["previews"] = {"generation": _previews(patch)}
        elif key in ("buildCommand", "publishPath", "healthCheckPath", "schedule"):
            details[key] = _string(value, key)
        else:
            details[key] = value


def _patch_env_specific(details: dict[str, Any], patch: Any) -> None:
    if not isinstance(patch, dict):
        raise FakeError(400, "envSpecificDetails must be an object")
    native = details["runtime"] in NATIVE_RUNTIMES
    allowed = {"buildCommand", "startCommand"} if native else {"dockerCommand", "dockerContext", "dockerfilePath", "registryCredentialId"}
    unknown = set(patch) - allowed
    if unknown:
        raise FakeError(400, f"envSpecificDetails fields not updatable: {', '.join(sorted(unknown))}")
    for key, value in patch.items():
        details["envSpecificDetails"][key] = _string(value, key)


# ----- app --------------------------------------------------------------------------------


def create_fake_render_app(
    *,
    token: str | None = None,
    build_seconds: float = 0.2,
    owners: Sequence[Mapping[str, Any]] | None = None,
    repo_dirs: Sequence[str] = DEFAULT_REPO_DIRS,
    rate_limits: Mapping[str, RateLimit] | None = None,
    validate_openapi: bool = False,
    runner: Runner | None = None,
    postgres_url: str | None = None,
) -> Starlette:
    """The fake as an ASGI app; its state is ``app.state.fake`` (a :class:`FakeRender`).

    ``token``: when set, every ``/v1`` request needs ``Authorization: Bearer <token>``.
    ``validate_openapi``: check every exchange against Render's OpenAPI document and list
    the problems at ``GET /__fake__/openapi-problems`` (needs the reference data).
    ``runner``: really build and run services whose repository it can reach (``runner.py``).
    ``postgres_url``: a PostgreSQL server (admin URL) where Postgres instances are real databases.
    """
    checker = None
    if validate_openapi:
        from .openapi_check import OpenAPIChecker

        checker = OpenAPIChecker.load()
    fake = FakeRender(
        token=token,
        build_seconds=max(0.0, build_seconds),
        owners=[dict(o) for o in owners] if owners else [dict(DEFAULT_OWNER)],
        repo_dirs=tuple(repo_dirs),
        rate_limits=dict(rate_limits if rate_limits is not None else RATE_LIMITS),
        checker=checker,
        postgres_url=postgres_url,
        runner=runner,
    )

    async def reset(_: Request) -> Response:
        await fake.reset()
        return JSONResponse({"status": "reset"})

    async def faults(request: Request) -> Response:
        try:
            spec = await request.json()
            fault = fake.add_fault(spec)
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"invalid fault: {exc}")
        except FakeError as exc:
            return _error(exc.status, exc.message)
        return JSONResponse({"fault": fault.__dict__}, status_code=201)

    async def seed(request: Request) -> Response:
        try:
            bodies = (await request.json())["services"]
            created = [fake.new_service(body) for body in bodies]
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"invalid seed: {exc}")
        except FakeError as exc:
            return _error(exc.status, exc.message)
        for service, env in created:
            fake._store_service(service, env)
        return JSONResponse({"services": [s for s, _ in created]}, status_code=201)

    async def problems(_: Request) -> Response:
        return JSONResponse({"validating": fake.checker is not None, "problems": fake.problems})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "services": len(fake.services)})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await fake.shutdown()

    app = Starlette(
        routes=[
            Route("/__fake__/reset", reset, methods=["POST"]),
            Route("/__fake__/faults", faults, methods=["POST"]),
            Route("/__fake__/services", seed, methods=["POST"]),
            Route("/__fake__/openapi-problems", problems, methods=["GET"]),
            Route("/__fake__/health", health, methods=["GET"]),
            Route(API_PREFIX + "/{rest:path}", fake.handle_api, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
        ],
        lifespan=lifespan,
    )
    app.state.fake = fake
    return app


def run_fake_render(
    host: str = "127.0.0.1",
    port: int = 10000,
    token: str | None = None,
    *,
    build_seconds: float = 2.0,
    log_level: str = "info",
    rate_scale: float = 1.0,
    work_dir: Path | None = None,
    build_venv: Path | None = None,
    repo_map: Mapping[str, str] | None = None,
    postgres_url: str | None = None,
    validate_openapi: bool = False,
    build_env: Mapping[str, str] | None = None,
) -> None:
    """Serve the fake with uvicorn until interrupted (``opsloop render fake``).

    ``rate_scale`` multiplies Render's documented limits (e.g. 10 for busy local runs and tests
    with several opsloop instances polling every second). Deploys of services whose repository
    is reachable run for real under ``work_dir`` (a temporary folder when not given).
    """
    import tempfile

    import uvicorn

    limits = {name: RateLimit(max(1, int(rule.limit * rate_scale)), rule.period) for name, rule in RATE_LIMITS.items()}
    folder = work_dir or Path(tempfile.mkdtemp(prefix="opsloop-render-"))
    runner = Runner(
        folder, build_venv=build_venv, repo_map=dict(repo_map or {}), api_url=f"http://{host}:{port}{API_PREFIX}", build_env=dict(build_env or {})
    )
    app = create_fake_render_app(
        token=token, build_seconds=build_seconds, rate_limits=limits, runner=runner, postgres_url=postgres_url, validate_openapi=validate_openapi
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level)
