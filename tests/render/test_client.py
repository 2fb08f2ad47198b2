"""Unit tests of RenderClient's retry, paging, error and throttle logic (httpx MockTransport)."""

from __future__ import annotations

import email.utils
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from opsloop.render.client import (
    RateLimit,
    RenderAPIError,
    RenderClient,
    RenderConnectionError,
    Throttle,
    merge_env,
    rate_class,
)

from .conftest import Sleeps

TOKEN = "rnd_unit_token_abcdef0123456789"
Handler = Callable[[httpx.Request], httpx.Response]


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport answering the given responses (or raising the exceptions) in order."""
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), seen


def client(transport: httpx.MockTransport, sleeps: Sleeps, **kw: object) -> RenderClient:
    return RenderClient("https://api.render.test/v1", TOKEN, transport=transport, sleep=sleeps, throttle=False, **kw)


def ok(body: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


SERVICE = {"id": "srv-1", "name": "a", "ownerId": "tea-1"}


def test_token_is_required() -> None:
    with pytest.raises(ValueError):
        RenderClient("https://api.render.test/v1", "")


async def test_bearer_auth_and_base_path(sleeps: Sleeps) -> None:
    transport, seen = scripted(ok(SERVICE))
    async with client(transport, sleeps) as render:
        assert await render.get_service("srv-1") == SERVICE
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert seen[0].url.path == "/v1/services/srv-1"
    assert TOKEN not in repr(render)


async def test_429_waits_retry_after_seconds(sleeps: Sleeps) -> None:
    transport, seen = scripted(ok({"message": "slow down"}, 429, **{"Retry-After": "3", "Ratelimit-Reset": "40"}), ok(SERVICE))
    async with client(transport, sleeps) as render:
        assert await render.get_service("srv-1") == SERVICE
    assert sleeps.delays == [3.0]
    assert len(seen) == 2


async def test_429_retry_after_as_http_date(sleeps: Sleeps) -> None:
    when = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    transport, _ = scripted(ok({}, 429, **{"Retry-After": when}), ok(SERVICE))
    async with client(transport, sleeps) as render:
        await render.get_service("srv-1")
    assert len(sleeps.delays) == 1 and 25 <= sleeps.delays[0] <= 30


async def test_429_falls_back_to_ratelimit_reset(sleeps: Sleeps) -> None:
    transport, _ = scripted(ok({}, 429, **{"Ratelimit-Reset": "5"}), ok(SERVICE))
    async with client(transport, sleeps) as render:
        await render.get_service("srv-1")
    assert sleeps.delays == [5.0]


async def test_total_sleep_is_capped(sleeps: Sleeps) -> None:
    transport, seen = scripted(ok({"message": "hourly limit"}, 429, **{"Retry-After": "3000"}))
    async with client(transport, sleeps, max_total_sleep=60) as render:
        with pytest.raises(RenderAPIError) as info:
            await render.create_service({"type": "web_service", "name": "x", "ownerId": "tea-1"})
    assert info.value.status == 429 and info.value.message == "hourly limit"
    assert sleeps.delays == [] and len(seen) == 1


async def test_5xx_backoff_grows_with_jitter_and_gives_up(sleeps: Sleeps) -> None:
    answers = [ok({"message": "boom"}, 500, **{"Render-Request-Id": f"req-{i}"}) for i in range(4)]
    transport, seen = scripted(*answers)
    async with client(transport, sleeps, max_retries=3, backoff_base=1.0) as render:
        with pytest.raises(RenderAPIError) as info:
            await render.list_env_vars("srv-1")
    assert len(seen) == 4
    assert info.value.status == 500 and info.value.request_id == "req-3" and info.value.message == "boom"
    for attempt, delay in enumerate(sleeps.delays):
        ceiling = 2.0**attempt
        assert ceiling / 2 <= delay <= ceiling


async def test_post_is_not_retried_on_500_but_is_on_503(sleeps: Sleeps) -> None:
    transport, seen = scripted(ok({"message": "boom"}, 500))
    async with client(transport, sleeps) as render:
        with pytest.raises(RenderAPIError):
            await render.trigger_deploy("srv-1")
    assert len(seen) == 1

    deploy = {"id": "dep-1", "status": "created"}
    transport, seen = scripted(ok({"message": "unavailable"}, 503), ok(deploy, 201))
    async with client(transport, sleeps) as render:
        assert await render.trigger_deploy("srv-1") == deploy
    assert len(seen) == 2


async def test_timeouts_retry_idempotent_requests_only(sleeps: Sleeps) -> None:
    transport, seen = scripted(httpx.ReadTimeout("slow"), ok(SERVICE))
    async with client(transport, sleeps) as render:
        assert await render.update_service("srv-1", {"name": "a"}) == SERVICE
    assert len(seen) == 2

    transport, seen = scripted(httpx.ReadTimeout("slow"))
    async with client(transport, sleeps) as render:
        with pytest.raises(RenderConnectionError) as info:
            await render.create_service({"type": "web_service", "name": "a", "ownerId": "tea-1"})
    assert info.value.status == 0 and len(seen) == 1

    transport, seen = scripted(httpx.ConnectError("refused"), ok({"service": SERVICE}, 201))
    async with client(transport, sleeps) as render:
        await render.create_service({"type": "web_service", "name": "a", "ownerId": "tea-1"})
    assert len(seen) == 2


async def test_error_message_never_contains_the_token(sleeps: Sleeps) -> None:
    transport, _ = scripted(ok({"id": "unauthorized", "message": f"invalid key {TOKEN}"}, 401))
    async with client(transport, sleeps) as render:
        with pytest.raises(RenderAPIError) as info:
            await render.list_owners()
    assert TOKEN not in str(info.value) and TOKEN not in info.value.message
    assert "***" in info.value.message and info.value.error_id == "unauthorized"


async def test_error_without_json_body_uses_reason(sleeps: Sleeps) -> None:
    transport, _ = scripted(httpx.Response(404, text="<html>nope</html>"))
    async with client(transport, sleeps) as render:
        with pytest.raises(RenderAPIError) as info:
            await render.get_service("srv-x")
    assert info.value.status == 404 and info.value.message == "Not Found"


def page_handler(total: int, key: str, requests: list[httpx.Request]) -> Handler:
    items = [{key: {"id": f"x-{i}"}, "cursor": f"c{i}"} for i in range(total)]

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        limit = int(request.url.params["limit"])
        cursor = request.url.params.get("cursor")
        start = int(cursor[1:]) + 1 if cursor else 0
        return ok(items[start : start + limit])

    return handler


async def test_paging_follows_every_cursor_and_unwraps(sleeps: Sleeps) -> None:
    requests: list[httpx.Request] = []
    transport = httpx.MockTransport(page_handler(250, "service", requests))
    async with client(transport, sleeps) as render:
        services = await render.list_services(type=["web_service", "static_site"], name="a")
    assert [s["id"] for s in services] == [f"x-{i}" for i in range(250)]
    assert [r.url.params.get("cursor") for r in requests] == [None, "c99", "c199"]
    assert all(r.url.params["limit"] == "100" for r in requests)
    assert requests[0].url.params["type"] == "web_service,static_site"


async def test_paging_stops_on_a_repeated_cursor(sleeps: Sleeps) -> None:
    full = [{"envVar": {"key": f"K{i}", "value": "v"}, "cursor": "same"} for i in range(100)]
    transport = httpx.MockTransport(lambda request: ok(full))
    async with client(transport, sleeps) as render:
        with pytest.raises(RenderAPIError, match="repeated cursor"):
            await render.list_env_vars("srv-1")


async def test_unwrapped_list_is_rejected(sleeps: Sleeps) -> None:
    transport, _ = scripted(ok([{"id": "srv-1"}]))
    async with client(transport, sleeps) as render:
        with pytest.raises(RenderAPIError, match="unexpected answer"):
            await render.list_services()


async def test_list_deploys_returns_next_cursor_only_for_full_pages(sleeps: Sleeps) -> None:
    requests: list[httpx.Request] = []
    transport = httpx.MockTransport(page_handler(5, "deploy", requests))
    async with client(transport, sleeps) as render:
        first, cursor = await render.list_deploys("srv-1", limit=3)
        second, end = await render.list_deploys("srv-1", limit=3, cursor=cursor)
        with pytest.raises(ValueError):
            await render.list_deploys("srv-1", limit=101)
    assert [d["id"] for d in first + second] == [f"x-{i}" for i in range(5)]
    assert cursor == "c2" and end is None


async def test_trigger_deploy_202_means_queued(sleeps: Sleeps) -> None:
    transport, seen = scripted(httpx.Response(202))
    async with client(transport, sleeps) as render:
        assert await render.trigger_deploy("srv-1", clear_cache=True) is None
    assert json.loads(seen[0].content) == {"clearCache": "clear"}


async def test_build_logs_reads_the_deploy_window_and_pages(sleeps: Sleeps) -> None:
    deploy = {"id": "dep-1", "createdAt": "2025-01-01T00:00:00Z", "finishedAt": "2025-01-01T00:01:00Z"}
    log = {"id": "l", "timestamp": "2025-01-01T00:00:01Z", "labels": []}
    transport, seen = scripted(
        ok(deploy),
        ok(SERVICE),
        ok({"hasMore": True, "nextStartTime": "2025-01-01T00:00:02Z", "nextEndTime": "2025-01-01T00:01:00Z", "logs": [{**log, "message": "one"}]}),
        ok({"hasMore": False, "nextStartTime": "x", "nextEndTime": "y", "logs": [{**log, "message": "two"}]}),
    )
    async with client(transport, sleeps) as render:
        assert await render.build_logs("srv-1", "dep-1") == ["one", "two"]
    first, second = seen[2].url.params, seen[3].url.params
    assert first["ownerId"] == "tea-1" and first["resource"] == "srv-1" and first["type"] == "build"
    assert first["startTime"] == deploy["createdAt"] and first["endTime"] == deploy["finishedAt"]
    assert second["startTime"] == "2025-01-01T00:00:02Z"


async def test_merge_env_writes_only_when_something_changes(sleeps: Sleeps) -> None:
    current = [{"envVar": {"key": "A", "value": "1"}, "cursor": "c"}]
    transport, seen = scripted(ok(current))
    async with client(transport, sleeps) as render:
        assert await merge_env(render, "srv-1", {"A": "1"}) == {"A": "1"}
    assert [r.method for r in seen] == ["GET"]

    transport, seen = scripted(ok(current), ok([*current, {"envVar": {"key": "B", "value": "2"}, "cursor": "d"}]))
    async with client(transport, sleeps) as render:
        assert await merge_env(render, "srv-1", {"B": 2}) == {"A": "1", "B": "2"}
    assert json.loads(seen[1].content) == [{"key": "A", "value": "1"}, {"key": "B", "value": "2"}]

    async with client(scripted()[0], sleeps) as render:
        with pytest.raises(ValueError):
            await merge_env(render, "srv-1", {"A": None}, clear=True)


def test_rate_classes_follow_renders_documented_limits() -> None:
    assert rate_class("GET", "/services/srv-1/deploys") == ("read", "")
    assert rate_class("POST", "/services") == ("create_service", "")
    assert rate_class("PATCH", "/v1/services/srv-1") == ("service_write", "srv-1")
    assert rate_class("POST", "/services/srv-1/deploys") == ("service_write", "srv-1")
    assert rate_class("PUT", "/services/srv-1/env-vars") == ("write", "")


def test_throttle_token_bucket_with_a_fake_clock() -> None:
    now = [0.0]
    throttle = Throttle({"read": RateLimit(2, 60), "service_write": RateLimit(1, 60)}, clock=lambda: now[0])
    assert throttle.reserve("GET", "/owners") == 0
    assert throttle.reserve("GET", "/owners") == 0
    assert throttle.reserve("GET", "/owners") == pytest.approx(30)  # 2 per 60 s: next token in 30 s
    assert throttle.reserve("GET", "/owners") == pytest.approx(60)  # queued behind the previous one
    assert throttle.reserve("PATCH", "/services/a") == 0
    assert throttle.reserve("PATCH", "/services/b") == 0  # per-service buckets
    assert throttle.reserve("PATCH", "/services/a") == pytest.approx(60)
    now[0] = 120.0
    assert throttle.reserve("GET", "/owners") == 0
    assert throttle.reserve("POST", "/services") == 0  # no rule for the class: not throttled


async def test_client_throttle_sleeps_before_sending(sleeps: Sleeps) -> None:
    transport, seen = scripted(ok(SERVICE), ok(SERVICE))
    throttle = Throttle({"read": RateLimit(1, 10)}, clock=lambda: 0.0, sleep=sleeps)
    async with RenderClient("https://api.render.test/v1", TOKEN, transport=transport, throttle=throttle) as render:
        await render.get_service("srv-1")
        await render.get_service("srv-1")
    assert sleeps.delays == [pytest.approx(10)] and len(seen) == 2
