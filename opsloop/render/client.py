"""Async client of Render's public REST API (https://api.render.com/v1), on httpx.

Why it is more than thin wrappers: Render pages every list with cursors and wraps each item
(``[{"service": {...}, "cursor": "..."}]``), answers errors as ``{id?, message?}``, and
rate-limits per endpoint class. The client follows every page and unwraps items, turns
error answers into :class:`RenderAPIError` (never showing the token), retries what is safe
to retry, and throttles itself under Render's documented limits so that it rarely sees a
429 at all.

Retry policy (``max_retries`` attempts after the first, total sleep capped by
``max_total_sleep``):

- 429 is always retried (Render did not process the request), after ``Retry-After`` seconds,
  else ``Ratelimit-Reset`` seconds, else exponential backoff;
- 5xx and read/write timeouts are retried with exponential backoff and jitter for GET, PUT,
  PATCH and DELETE (repeating them is harmless). POST is retried only on 502/503/504 and on
  connect failures, where the request did not reach Render's application: repeating a POST
  that may have been carried out could create a second service or deploy;
- connection failures (connect errors and timeouts, pool timeouts) are retried for all.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

DEFAULT_BASE_URL = "https://api.render.com/v1"
PAGE_LIMIT = 100  # Render's maximum page size
MAX_LOG_PAGES = 50

log = logging.getLogger(__name__)

SleepFn = Callable[[float], Awaitable[None]]
JSON = Any


# ----- errors ----------------------------------------------------------------------------


class RenderAPIError(Exception):
    """An error answer from Render (or no usable answer at all).

    ``message`` is Render's ``message`` (or the HTTP reason); ``request_id`` is Render's
    ``Render-Request-Id`` header, to quote to Render's support.
    """

    def __init__(
        self,
        status: int,
        message: str,
        request_id: str | None = None,
        *,
        error_id: str | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.status = status
        self.message = message
        self.request_id = request_id
        self.error_id = error_id
        self.method = method
        self.path = path
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" on {self.method} {self.path}" if self.method else ""
        rid = f" (request {self.request_id})" if self.request_id else ""
        return f"Render API {self.status}{where}: {self.message}{rid}"


class RenderConnectionError(RenderAPIError):
    """Render could not be reached or did not answer in time (``status`` is 0)."""


# ----- rate limits -----------------------------------------------------------------------


@dataclass(frozen=True)
class RateLimit:
    """``limit`` requests per ``period`` seconds."""

    limit: int
    period: float


# Render's documented limits (see shared/render/README.md).
RATE_LIMITS: dict[str, RateLimit] = {
    "create_service": RateLimit(20, 3600.0),  # POST /services
    "service_write": RateLimit(10, 60.0),  # PATCH /services/{id}, deploys; per service
    "write": RateLimit(30, 60.0),  # every other write
    "read": RateLimit(400, 60.0),  # GET
}


def rate_class(method: str, path: str) -> tuple[str, str]:
    """The limit class and bucket key of a request; ``path`` is relative to ``/v1``."""
    method = method.upper()
    parts = [p for p in path.split("?")[0].split("/") if p]
    if parts and parts[0] == "v1":
        parts = parts[1:]
    if method in ("GET", "HEAD"):
        return "read", ""
    if method == "POST" and parts == ["services"]:
        return "create_service", ""
    if len(parts) >= 2 and parts[0] == "services":
        if method == "PATCH" and len(parts) == 2:
            return "service_write", parts[1]
        if method == "POST" and parts[2:3] == ["deploys"]:
            return "service_write", parts[1]
    return "write", ""


class Throttle:
    """Client-side token buckets, one per (limit class, service), under Render's limits.

    Each bucket holds up to ``limit`` tokens and refills at ``limit / period`` per second
    (times ``scale``: tests use a large scale). A request takes a token; when none is left
    it reserves the next one and sleeps until it is due, so waiting never loops.
    """

    def __init__(
        self,
        limits: Mapping[str, RateLimit] = RATE_LIMITS,
        *,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self._limits = dict(limits)
        self._scale = scale
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], list[float]] = {}  # key -> [tokens, last]

    def reserve(self, method: str, path: str) -> float:
        """Take a token now; return how long the caller must wait before sending."""
        name, key = rate_class(method, path)
        rule = self._limits.get(name)
        if rule is None:
            return 0.0
        rate = rule.limit / rule.period * self._scale
        now = self._clock()
        bucket = self._buckets.setdefault((name, key), [float(rule.limit), now])
        bucket[0] = min(float(rule.limit), bucket[0] + (now - bucket[1]) * rate)
        bucket[1] = now
        bucket[0] -= 1.0
        return 0.0 if bucket[0] >= 0 else -bucket[0] / rate

    async def acquire(self, method: str, path: str) -> float:
        """Wait for a token; return the seconds waited."""
        wait = self.reserve(method, path)
        if wait > 0:
            log.debug("throttling %s %s for %.2fs", method, path, wait)
            await self._sleep(wait)
        return wait


# ----- client ----------------------------------------------------------------------------

_NO_BODY = object()
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
_RETRY_STATUS_ANY = frozenset({502, 503, 504})
_CONNECT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class RenderClient:
    """Render API client. Use as ``async with RenderClient(token=...) as render:``."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        token: str = "",
        *,
        max_retries: int = 5,
        timeout: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: SleepFn = asyncio.sleep,
        throttle: Throttle | bool = True,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_total_sleep: float = 60.0,
        user_agent: str = "opsloop-renderctl",
    ) -> None:
        if not token:
            raise ValueError("RenderClient needs a Render API token")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self._sleep = sleep
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_total_sleep = max_total_sleep
        if throttle is True:
            self._throttle: Throttle | None = Throttle(sleep=sleep)
        else:
            self._throttle = throttle or None
        self._http = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": user_agent,
            },
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:
        return f"RenderClient(base_url={self.base_url!r})"

    async def __aenter__(self) -> RenderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ----- transport with retries ---------------------------------------------------

    async def _request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = _NO_BODY) -> httpx.Response:
        """Send once or more (see the module docstring); return a 2xx/3xx response."""
        slept = 0.0
        attempt = 0
        while True:
            if self._throttle is not None:
                await self._throttle.acquire(method, path)
            failure, delay, response = await self._attempt(method, path, params, json, attempt)
            if failure is None:
                assert response is not None
                return response
            if delay is None or attempt >= self.max_retries or slept + delay > self._max_total_sleep:
                raise failure
            log.info("Render %s %s failed (%s); retry %d in %.2fs", method, path, failure.status, attempt + 1, delay)
            await self._sleep(delay)
            slept += delay
            attempt += 1

    async def _attempt(
        self, method: str, path: str, params: Mapping[str, Any] | None, json: Any, attempt: int
    ) -> tuple[RenderAPIError | None, float | None, httpx.Response | None]:
        """One send: (error or None, retry delay or None when not retryable, response)."""
        kwargs: dict[str, Any] = {"params": params}
        if json is not _NO_BODY:
            kwargs["json"] = json
        try:
            response = await self._http.request(method, path.lstrip("/"), **kwargs)
        except httpx.TransportError as exc:
            error = RenderConnectionError(0, self._redact(f"{type(exc).__name__}: {exc}"), None, method=method, path=path)
            retryable = isinstance(exc, _CONNECT_ERRORS) or method in _IDEMPOTENT
            return error, (self._backoff(attempt) if retryable else None), None
        if response.status_code < 400:
            return None, None, response
        return self._error(method, path, response), self._retry_delay(method, response, attempt), response

    def _retry_delay(self, method: str, response: httpx.Response, attempt: int) -> float | None:
        status = response.status_code
        if status == 429:
            hinted = _seconds(response.headers.get("Retry-After"))
            if hinted is None:
                hinted = _seconds(response.headers.get("Ratelimit-Reset"))
            return hinted if hinted is not None else self._backoff(attempt)
        if status in _RETRY_STATUS_ANY or (status >= 500 and method in _IDEMPOTENT):
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self._backoff_max, self._backoff_base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _error(self, method: str, path: str, response: httpx.Response) -> RenderAPIError:
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            pass
        message = ""
        error_id = None
        if isinstance(body, dict):
            message = str(body.get("message") or "")
            error_id = str(body["id"]) if body.get("id") is not None else None
        if not message:
            message = response.reason_phrase or f"HTTP {response.status_code}"
        return RenderAPIError(
            response.status_code,
            self._redact(message),
            response.headers.get("Render-Request-Id"),
            error_id=error_id,
            method=method,
            path=path,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    async def _json(self, method: str, path: str, **kwargs: Any) -> JSON:
        response = await self._request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise self._shape_error(method, path, response, "answer is not JSON") from exc

    def _shape_error(self, method: str, path: str, response: httpx.Response, what: str) -> RenderAPIError:
        return RenderAPIError(
            response.status_code,
            f"unexpected answer from Render: {what}",
            response.headers.get("Render-Request-Id"),
            method=method,
            path=path,
        )

    # ----- paging --------------------------------------------------------------------

    async def _page(
        self, path: str, item_key: str, params: Mapping[str, Any], limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None, int]:
        """One page: (unwrapped items, cursor of the last item, raw length)."""
        query = {k: v for k, v in params.items() if v is not None}
        query["limit"] = limit
        if cursor:
            query["cursor"] = cursor
        response = await self._request("GET", path, params=query)
        try:
            page = response.json()
        except ValueError as exc:
            raise self._shape_error("GET", path, response, "answer is not JSON") from exc
        if not isinstance(page, list) or not all(isinstance(e, dict) and item_key in e for e in page):
            raise self._shape_error("GET", path, response, f"expected a list of {{{item_key}, cursor}}")
        last = page[-1].get("cursor") if page else None
        return [entry[item_key] for entry in page], last, len(page)

    async def _paged(self, path: str, item_key: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a cursor-paged list, unwrapped, following every page."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page, last, count = await self._page(path, item_key, params or {}, PAGE_LIMIT, cursor)
            items.extend(page)
            if count < PAGE_LIMIT or not last:
                return items
            if last in seen:
                raise RenderAPIError(200, f"Render repeated cursor {last!r}; paging stopped", method="GET", path=path)
            seen.add(last)
            cursor = last

    # ----- owners and services -------------------------------------------------------

    async def list_owners(self) -> list[dict[str, Any]]:
        """Workspaces (owners) the token can act for."""
        return await self._paged("/owners", "owner")

    async def list_services(
        self,
        type: str | Sequence[str] | None = None,
        name: str | Sequence[str] | None = None,
        owner_id: str | Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Every service matching the filters (Render's comma-separated list filters)."""
        params = {"type": _csv(type), "name": _csv(name), "ownerId": _csv(owner_id)}
        return await self._paged("/services", "service", params)

    async def get_service(self, service_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/services/{_seg(service_id)}")

    async def create_service(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /services; returns ``{service, deployId?}`` as Render does."""
        return await self._json("POST", "/services", json=dict(body))

    async def update_service(self, service_id: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self._json("PATCH", f"/services/{_seg(service_id)}", json=dict(patch))

    # ----- environment variables -----------------------------------------------------

    async def list_env_vars(self, service_id: str) -> list[dict[str, Any]]:
        """``[{key, value}]`` set directly on the service."""
        return await self._paged(f"/services/{_seg(service_id)}/env-vars", "envVar")

    async def replace_env_vars(self, service_id: str, env_vars: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """PUT the whole list: keys not in ``env_vars`` are deleted by Render."""
        path = f"/services/{_seg(service_id)}/env-vars"
        response = await self._request("PUT", path, json=[dict(e) for e in env_vars])
        page = response.json()
        if not isinstance(page, list) or not all(isinstance(e, dict) and "envVar" in e for e in page):
            raise self._shape_error("PUT", path, response, "expected a list of {envVar, cursor}")
        return [entry["envVar"] for entry in page]

    async def set_env_var(self, service_id: str, key: str, value: str) -> dict[str, Any]:
        """Add or update one key; returns ``{key, value}``."""
        return await self._json("PUT", f"/services/{_seg(service_id)}/env-vars/{_seg(key)}", json={"value": value})

    # ----- Postgres, Key Value, env groups ---------------------------------------------

    async def list_postgres(self, name: str | Sequence[str] | None = None, owner_id: str | None = None) -> list[dict[str, Any]]:
        return await self._paged("/postgres", "postgres", {"name": _csv(name), "ownerId": owner_id})

    async def create_postgres(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST /postgres; the instance starts ``creating`` and becomes ``available``."""
        return await self._json("POST", "/postgres", json=dict(body))

    async def get_postgres(self, postgres_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/postgres/{_seg(postgres_id)}")

    async def postgres_connection_info(self, postgres_id: str) -> dict[str, Any]:
        """``{password, internalConnectionString, externalConnectionString, psqlCommand}`` (secrets)."""
        return await self._json("GET", f"/postgres/{_seg(postgres_id)}/connection-info")

    async def list_key_values(self, name: str | Sequence[str] | None = None, owner_id: str | None = None) -> list[dict[str, Any]]:
        return await self._paged("/key-value", "keyValue", {"name": _csv(name), "ownerId": owner_id})

    async def create_key_value(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "/key-value", json=dict(body))

    async def get_key_value(self, key_value_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/key-value/{_seg(key_value_id)}")

    async def key_value_connection_info(self, key_value_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/key-value/{_seg(key_value_id)}/connection-info")

    async def list_env_groups(self, name: str | Sequence[str] | None = None, owner_id: str | None = None) -> list[dict[str, Any]]:
        """Env groups (``envGroupMeta``: Render answers this list unwrapped, one page of up to 100)."""
        params = {k: v for k, v in {"name": _csv(name), "ownerId": owner_id, "limit": PAGE_LIMIT}.items() if v is not None}
        page = await self._json("GET", "/env-groups", params=params)
        if not isinstance(page, list):
            raise RenderAPIError(200, "unexpected answer from Render: expected a list of env groups", method="GET", path="/env-groups")
        return [g.get("envGroup", g) for g in page if isinstance(g, dict)]

    async def get_env_group(self, group_id: str) -> dict[str, Any]:
        """An env group with its ``envVars`` and ``serviceLinks``."""
        return await self._json("GET", f"/env-groups/{_seg(group_id)}")

    async def create_env_group(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._json("POST", "/env-groups", json=dict(body))

    async def set_env_group_var(self, group_id: str, key: str, value: str | None = None, *, generate: bool = False) -> dict[str, Any]:
        """Add or update one variable of a group (``generate``: Render makes the value); returns the group."""
        body: dict[str, Any] = {"generateValue": True} if generate else {"value": value}
        return await self._json("PUT", f"/env-groups/{_seg(group_id)}/env-vars/{_seg(key)}", json=body)

    async def link_env_group(self, group_id: str, service_id: str) -> dict[str, Any]:
        """Link a service to an env group: its variables reach the service on its next deploy."""
        return await self._json("POST", f"/env-groups/{_seg(group_id)}/services/{_seg(service_id)}")

    # ----- deploys -------------------------------------------------------------------

    async def list_deploys(self, service_id: str, limit: int = 20, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """One page of deploys, newest first, and the cursor of the next page (or None)."""
        if not 1 <= limit <= PAGE_LIMIT:
            raise ValueError(f"limit must be within 1..{PAGE_LIMIT}")
        items, last, count = await self._page(f"/services/{_seg(service_id)}/deploys", "deploy", {}, limit, cursor)
        return items, (last if count == limit else None)

    async def trigger_deploy(self, service_id: str, clear_cache: bool = False) -> dict[str, Any] | None:
        """Start a deploy: the deploy (201), or None when Render queued it (202)."""
        body = {"clearCache": "clear" if clear_cache else "do_not_clear"}
        response = await self._request("POST", f"/services/{_seg(service_id)}/deploys", json=body)
        if response.status_code == 202 or not response.content.strip():
            return None
        return response.json()

    async def get_deploy(self, service_id: str, deploy_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/services/{_seg(service_id)}/deploys/{_seg(deploy_id)}")

    async def cancel_deploy(self, service_id: str, deploy_id: str) -> dict[str, Any]:
        return await self._json("POST", f"/services/{_seg(service_id)}/deploys/{_seg(deploy_id)}/cancel")

    async def build_logs(self, service_id: str, deploy_id: str) -> list[str]:
        """The build log lines of one deploy, oldest first.

        Render's ``GET /logs`` has no deploy filter: it takes the owner, the resource, the
        log type and a time window, so the window is the deploy's own (created .. finished,
        or now while it runs), read forward and paged by ``nextStartTime/nextEndTime``.
        """
        deploy = await self.get_deploy(service_id, deploy_id)
        service = await self.get_service(service_id)
        params: dict[str, Any] = {
            "ownerId": service["ownerId"],
            "resource": service_id,
            "type": "build",
            "direction": "forward",
            "startTime": deploy.get("createdAt") or deploy.get("startedAt"),
            "endTime": deploy.get("finishedAt") or _utc_now(),
            "limit": PAGE_LIMIT,
        }
        lines: list[str] = []
        for _ in range(MAX_LOG_PAGES):
            page = await self._json("GET", "/logs", params={k: v for k, v in params.items() if v})
            lines.extend(str(entry.get("message", "")) for entry in page.get("logs", []))
            if not page.get("hasMore"):
                break
            params["startTime"], params["endTime"] = page["nextStartTime"], page["nextEndTime"]
        return lines


async def merge_env(client: RenderClient, service_id: str, env: Mapping[str, Any], clear: bool = False) -> dict[str, str]:
    """Set ``env`` on a service: merged into its variables, or replacing them if ``clear``."""
    result, _ = await change_env(client, service_id, env, clear)
    return result


async def change_env(client: RenderClient, service_id: str, env: Mapping[str, Any], clear: bool = False) -> tuple[dict[str, str], bool]:
    """Like :func:`merge_env`, and whether anything changed (a change needs a deploy to take effect).

    Render's ``PUT /env-vars`` replaces the whole list, so the current list is read first;
    when the result equals it no write is sent (writes are rate-limited).
    """
    desired = {_env_key(k): _env_value(k, v) for k, v in env.items()}
    current = {e["key"]: e["value"] for e in await client.list_env_vars(service_id)}
    merged = desired if clear else {**current, **desired}
    if merged == current:
        return current, False
    result = await client.replace_env_vars(service_id, [{"key": k, "value": v} for k, v in merged.items()])
    return {e["key"]: e["value"] for e in result}, True


# ----- helpers ---------------------------------------------------------------------------


def _env_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError("environment variable names must be non-empty strings")
    return key


def _env_value(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"environment variable {key}: value must be a string or a number")


def _csv(value: str | Sequence[str] | None) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    return ",".join(value) or None


def _seg(value: str) -> str:
    """One path segment, escaped (ids and env keys never contain '/', but never trust)."""
    return quote(str(value), safe="")


def _seconds(header: str | None) -> float | None:
    """A delay header as seconds: a number, or an HTTP date (Retry-After allows both)."""
    if header is None or not header.strip():
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
