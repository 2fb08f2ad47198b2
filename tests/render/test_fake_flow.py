"""The client against the fake over real HTTP: the flows renderctl and the monitor rely on.

Every test using the ``render`` fixture also checks, at teardown, that all its traffic
conformed to Render's OpenAPI document (client side and fake side).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from opsloop.devtools.render_fake.app import create_fake_render_app
from opsloop.render.client import RateLimit, RenderAPIError, RenderClient, merge_env

from .conftest import TOKEN, FakeServer, Recorder, Sleeps, owner_id, serve, static_site, stop, wait_deploy, web_service


async def test_create_service_env_merge_and_clear_then_deploy_goes_live(render: RenderClient, fake: FakeServer, recorder: Recorder) -> None:
    owners = await render.list_owners()
    assert [o["id"] for o in owners] == [owner_id(fake)]
    created = await render.create_service({**web_service("api"), "ownerId": owners[0]["id"], "envVars": [{"key": "A", "value": "1"}]})
    service = created["service"]
    assert service["name"] == "api" and service["type"] == "web_service" and created["deployId"].startswith("dep-")
    assert (await wait_deploy(render, service["id"], created["deployId"]))["status"] == "live"

    sid = service["id"]
    assert await merge_env(render, sid, {"B": "2"}, clear=False) == {"A": "1", "B": "2"}
    assert await merge_env(render, sid, {"A": "3"}, clear=False) == {"A": "3", "B": "2"}
    puts = sum(1 for r, _ in recorder.exchanges if r.method == "PUT")
    assert await merge_env(render, sid, {"A": "3"}, clear=False) == {"A": "3", "B": "2"}
    assert sum(1 for r, _ in recorder.exchanges if r.method == "PUT") == puts  # nothing changed: no write
    assert await merge_env(render, sid, {"C": "4"}, clear=True) == {"C": "4"}
    assert await render.list_env_vars(sid) == [{"key": "C", "value": "4"}]
    assert await render.set_env_var(sid, "D", "5") == {"key": "D", "value": "5"}

    deploy = await render.trigger_deploy(sid)
    assert deploy is not None and deploy["status"] == "created" and deploy["trigger"] == "api"
    assert (await wait_deploy(render, sid, deploy["id"]))["status"] == "live"
    deploys, cursor = await render.list_deploys(sid)
    assert [d["status"] for d in deploys] == ["live", "deactivated"] and cursor is None
    assert deploys[0]["id"] == deploy["id"]

    logs = await render.build_logs(sid, deploy["id"])
    assert "==> Running build command 'pip install -r requirements.txt'..." in logs
    assert logs[-1] == "==> Your service is live 🎉"
    assert sum(line.startswith("==> Cloning from") for line in logs) == 1  # only this deploy's window


async def test_listing_250_services_follows_every_page(render: RenderClient, fake: FakeServer, recorder: Recorder) -> None:
    bodies = [static_site(f"site-{i:03d}") if i % 5 == 0 else web_service(f"svc-{i:03d}") for i in range(250)]
    fake.control("services", {"services": [{**b, "ownerId": owner_id(fake)} for b in bodies]})

    services = await render.list_services()
    assert len({s["id"] for s in services}) == 250
    assert sorted(s["name"] for s in services) == sorted(b["name"] for b in bodies)
    pages = [r for r, _ in recorder.exchanges if r.url.path == "/v1/services"]
    assert len(pages) == 3 and all(r.url.params["limit"] == "100" for r in pages)

    static = await render.list_services(type="static_site")
    assert len(static) == 50 and {s["type"] for s in static} == {"static_site"}
    named = await render.list_services(name=["svc-001", "site-005"])
    assert sorted(s["name"] for s in named) == ["site-005", "svc-001"]


async def test_env_vars_and_deploys_are_paged(render: RenderClient, fake: FakeServer) -> None:
    created = await render.create_service({**static_site("paged"), "ownerId": owner_id(fake)})
    sid = created["service"]["id"]
    env = [{"key": f"K{i:03d}", "value": str(i)} for i in range(150)]
    assert len(await render.replace_env_vars(sid, env)) == 150
    assert await render.list_env_vars(sid) == env

    await wait_deploy(render, sid, created["deployId"])
    for _ in range(3):
        deploy = await render.trigger_deploy(sid)
        assert deploy is not None
        await wait_deploy(render, sid, deploy["id"])
    first, cursor = await render.list_deploys(sid, limit=2)
    second, cursor2 = await render.list_deploys(sid, limit=2, cursor=cursor)
    third, cursor3 = await render.list_deploys(sid, limit=2, cursor=cursor2)
    assert len(first) == 2 and len(second) == 2 and third == [] and cursor3 is None
    assert first[0]["status"] == "live" and {d["status"] for d in first[1:] + second} == {"deactivated"}


async def test_injected_429_with_retry_after_is_waited_out(render: RenderClient, fake: FakeServer, sleeps: Sleeps) -> None:
    fake.control("faults", {"status": 429, "count": 2, "path_prefix": "/v1/services", "retry_after": 7})
    assert await render.list_services() == []
    assert sleeps.delays == [7.0, 7.0]


async def test_injected_500_is_retried_with_backoff(render: RenderClient, fake: FakeServer, sleeps: Sleeps) -> None:
    created = await render.create_service({**static_site("flaky"), "ownerId": owner_id(fake)})
    fake.control("faults", {"status": 500, "count": 2, "method": "GET", "path_prefix": "/services/"})
    assert (await render.get_service(created["service"]["id"]))["name"] == "flaky"
    assert len(sleeps.delays) == 2 and 0.25 <= sleeps.delays[0] <= 0.5 and 0.5 <= sleeps.delays[1] <= 1.0


async def test_injected_500_on_create_is_not_repeated(render: RenderClient, fake: FakeServer, sleeps: Sleeps) -> None:
    fake.control("faults", {"status": 500, "count": 1, "method": "POST", "path_prefix": "/services"})
    with pytest.raises(RenderAPIError) as info:
        await render.create_service({**static_site("once"), "ownerId": owner_id(fake)})
    assert info.value.status == 500 and info.value.request_id and info.value.request_id.startswith("fake-")
    assert sleeps.delays == [] and await render.list_services() == []


async def test_persistent_5xx_surfaces_renders_error(fake: FakeServer, sleeps: Sleeps) -> None:
    fake.control("faults", {"status": 503, "count": 10, "path_prefix": "/owners"})
    async with RenderClient(fake.base_url, TOKEN, max_retries=2, sleep=sleeps, throttle=False) as render:
        with pytest.raises(RenderAPIError) as info:
            await render.list_owners()
    assert info.value.status == 503 and info.value.message == "service unavailable" and len(sleeps.delays) == 2


async def test_transport_timeout_is_retried(fake: FakeServer, sleeps: Sleeps) -> None:
    fake.control("faults", {"delay_seconds": 1.5, "count": 1, "path_prefix": "/owners"})
    async with RenderClient(fake.base_url, TOKEN, timeout=0.5, sleep=sleeps, throttle=False) as render:
        assert len(await render.list_owners()) == 1
    assert len(sleeps.delays) == 1


async def test_bearer_auth_is_required(fake: FakeServer) -> None:
    wrong = "rnd_wrong_token_should_never_leak"
    async with RenderClient(fake.base_url, wrong, throttle=False) as render:
        with pytest.raises(RenderAPIError) as info:
            await render.list_services()
    assert info.value.status == 401 and wrong not in str(info.value)
    async with httpx.AsyncClient() as anonymous_client:
        anonymous = await anonymous_client.get(f"{fake.base_url}/services", timeout=5)
    assert anonymous.status_code == 401 and anonymous.json() == {"message": "unauthorized"}


async def test_unknown_service_is_renders_404(render: RenderClient) -> None:
    with pytest.raises(RenderAPIError) as info:
        await render.get_service("srv-doesnotexist")
    assert info.value.status == 404 and info.value.message == "not found: srv-doesnotexist"


def test_rate_limit_headers_and_request_ids(fake: FakeServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    first = httpx.get(f"{fake.base_url}/services", headers=headers, timeout=5)
    second = httpx.get(f"{fake.base_url}/services", headers=headers, timeout=5)
    assert first.headers["Ratelimit-Limit"] == "400"
    assert int(first.headers["Ratelimit-Remaining"]) == int(second.headers["Ratelimit-Remaining"]) + 1
    assert 0 < int(first.headers["Ratelimit-Reset"]) <= 60
    assert first.headers["Render-Request-Id"] != second.headers["Render-Request-Id"]
    bad = httpx.get(f"{fake.base_url}/services", params={"limit": 101}, headers=headers, timeout=5)
    assert bad.status_code == 400 and "limit" in bad.json()["message"]


@pytest.fixture(scope="module")
def tight_fake() -> Iterator[FakeServer]:
    """A fake with tiny rate limits, slow builds and no auth."""
    limits = {"read": RateLimit(3, 60), "service_write": RateLimit(10, 60), "write": RateLimit(30, 60), "create_service": RateLimit(20, 3600)}
    server = serve(create_fake_render_app(build_seconds=3.0, rate_limits=limits))
    yield server
    stop(server)


async def test_renders_own_rate_limit_answers_429_and_client_gives_up(tight_fake: FakeServer, sleeps: Sleeps) -> None:
    tight_fake.control("reset")
    async with RenderClient(tight_fake.base_url, "any-token", sleep=sleeps, throttle=False) as render:
        for _ in range(3):
            await render.list_owners()
        with pytest.raises(RenderAPIError) as info:
            await render.list_owners()
    assert info.value.status == 429
    assert len(sleeps.delays) == 1 and 50 <= sleeps.delays[0] <= 60  # waited Retry-After once, then the cap


async def test_second_deploy_is_queued_then_cancelled(tight_fake: FakeServer, sleeps: Sleeps) -> None:
    tight_fake.control("reset")
    async with RenderClient(tight_fake.base_url, "any-token", sleep=sleeps, throttle=False) as render:
        owner = tight_fake.state.owners[0]["id"]
        created = await render.create_service({**static_site("slow"), "ownerId": owner})
        sid = created["service"]["id"]
        assert await render.trigger_deploy(sid) is None  # 202: queued behind the running one
        deploys, _ = await render.list_deploys(sid)
        assert deploys[0]["status"] == "queued"
        cancelled = await render.cancel_deploy(sid, created["deployId"])
        assert cancelled["status"] == "canceled" and cancelled["finishedAt"]
        deploys, _ = await render.list_deploys(sid)
        assert deploys[0]["status"] in {"created", "build_in_progress"}  # the queued one started
        with pytest.raises(RenderAPIError) as info:
            await render.cancel_deploy(sid, created["deployId"])
        assert info.value.status == 400


BROKEN_SITES = [
    pytest.param(
        {"build": "", "publish": "dist"},
        ["==> Empty build command; skipping build", "==> Publish directory dist does not exist!"],
        id="empty-build-command",
    ),
    pytest.param(
        {"build": "npm run build", "publish": "build"},
        ["==> Running build command 'npm run build'...", "==> Publish directory build does not exist!"],
        id="wrong-publish-path",
    ),
    pytest.param(
        {"root_dir": "frontend"},
        ['Service Root Directory "/opt/render/project/src/frontend" is missing.'],
        id="missing-root-dir",
    ),
]


@pytest.mark.parametrize(("config", "expected"), BROKEN_SITES)
async def test_static_site_misconfiguration_fails_with_renders_log_lines(
    render: RenderClient, fake: FakeServer, config: dict[str, str], expected: list[str]
) -> None:
    created = await render.create_service({**static_site("site", **config), "ownerId": owner_id(fake)})
    sid, did = created["service"]["id"], created["deployId"]
    deploy = await wait_deploy(render, sid, did)
    assert deploy["status"] == "build_failed" and deploy["finishedAt"]
    logs = await render.build_logs(sid, did)
    for line in expected:
        assert line in logs
    assert logs.index(expected[-1]) < len(logs) - 1 and logs[-1] == "==> Build failed 😞"


async def test_fixing_a_static_site_makes_the_next_deploy_live(render: RenderClient, fake: FakeServer) -> None:
    created = await render.create_service({**static_site("dash", build="", publish=".web/build/client"), "ownerId": owner_id(fake)})
    sid = created["service"]["id"]
    assert (await wait_deploy(render, sid, created["deployId"]))["status"] == "build_failed"
    updated = await render.update_service(
        sid, {"serviceDetails": {"buildCommand": "pip install -r requirements.txt && reflex export --frontend-only --no-zip"}}
    )
    assert updated["serviceDetails"]["publishPath"] == ".web/build/client"
    deploy = await render.trigger_deploy(sid)
    assert deploy is not None
    assert (await wait_deploy(render, sid, deploy["id"]))["status"] == "live"
    assert "==> Your site is live 🎉" in await render.build_logs(sid, deploy["id"])


async def test_update_refuses_fields_the_type_does_not_have(render: RenderClient, fake: FakeServer) -> None:
    created = await render.create_service({**static_site("typed"), "ownerId": owner_id(fake)})
    with pytest.raises(RenderAPIError) as info:
        await render.update_service(created["service"]["id"], {"serviceDetails": {"startCommand": "x"}})
    assert info.value.status == 400 and "startCommand" in info.value.message


def test_logs_endpoint_pages_by_time(fake: FakeServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    owner = owner_id(fake)
    body = {**static_site("logs"), "ownerId": owner}
    created = httpx.post(f"{fake.base_url}/services", json=body, headers=headers, timeout=5).json()
    sid, did = created["service"]["id"], created["deployId"]
    deploy_url = f"{fake.base_url}/services/{sid}/deploys/{did}"
    deadline = time.monotonic() + 10
    while (deploy := httpx.get(deploy_url, headers=headers, timeout=5).json())["status"] != "live":
        assert time.monotonic() < deadline, deploy
        time.sleep(0.02)
    params = {"ownerId": owner, "resource": sid, "type": "build", "limit": "2", "startTime": deploy["createdAt"], "endTime": deploy["finishedAt"]}
    pages: dict[str, list[list[str]]] = {}
    for direction in ("forward", "backward"):
        query, pages[direction] = {**params, "direction": direction}, []
        for _ in range(20):
            page = httpx.get(f"{fake.base_url}/logs", params=query, headers=headers, timeout=5).json()
            pages[direction].append([entry["message"] for entry in page["logs"]])
            if not page["hasMore"]:
                break
            query.update(startTime=page["nextStartTime"], endTime=page["nextEndTime"])
    forward = [line for page in pages["forward"] for line in page]
    backward = [line for page in pages["backward"] for line in page]
    assert all(len(page) <= 2 for page in pages["forward"]) and len(pages["forward"]) >= 3
    assert forward[0].startswith("==> Cloning from") and forward[-1] == "==> Your site is live 🎉"
    assert backward == forward[::-1]
    missing = httpx.get(f"{fake.base_url}/logs", params={"resource": sid}, headers=headers, timeout=5)
    assert missing.status_code == 400


async def test_every_service_type_round_trips(render: RenderClient, fake: FakeServer) -> None:
    owner = owner_id(fake)
    native = {"buildCommand": "make", "startCommand": "./run"}
    bodies = [
        {**web_service("private"), "type": "private_service"},
        {
            "type": "background_worker",
            "name": "worker",
            "repo": "https://github.com/example/opsloop",
            "serviceDetails": {"runtime": "docker", "envSpecificDetails": {"dockerCommand": "./work"}},
        },
        {
            "type": "cron_job",
            "name": "nightly",
            "repo": "https://github.com/example/opsloop",
            "serviceDetails": {"runtime": "python", "schedule": "0 3 * * *", "envSpecificDetails": native},
        },
        {
            "type": "web_service",
            "name": "nginx",
            "image": {"ownerId": owner, "imagePath": "docker.io/library/nginx:latest"},
            "serviceDetails": {"runtime": "image"},
        },
    ]
    created = {b["name"]: await render.create_service({**b, "ownerId": owner}) for b in bodies}
    services = {n: c["service"] for n, c in created.items()}
    assert services["private"]["serviceDetails"]["url"] == "private:10000"
    assert services["worker"]["serviceDetails"]["envSpecificDetails"]["dockerfilePath"] == "./Dockerfile"
    assert services["nightly"]["id"].startswith("crn-") and services["nightly"]["serviceDetails"]["schedule"] == "0 3 * * *"
    assert services["nginx"]["imagePath"] == "docker.io/library/nginx:latest"
    for name, result in created.items():
        deploy = await wait_deploy(render, services[name]["id"], result["deployId"])
        assert deploy["status"] == "live", name
    image_deploy = await render.get_deploy(services["nginx"]["id"], created["nginx"]["deployId"])
    assert "image" in image_deploy and "commit" not in image_deploy
    assert (await render.build_logs(services["nginx"]["id"], image_deploy["id"]))[0].startswith("==> Pulling image")
    updated = await render.update_service(services["nightly"]["id"], {"serviceDetails": {"schedule": "*/5 * * * *"}})
    assert updated["serviceDetails"]["schedule"] == "*/5 * * * *"
    assert {s["type"] for s in await render.list_services(type=["cron_job", "background_worker"])} == {"cron_job", "background_worker"}
    with pytest.raises(RenderAPIError) as info:
        await render.create_service({**web_service("private"), "type": "private_service", "ownerId": owner})
    assert info.value.status == 409


def test_env_var_keys_and_service_deletion(fake: FakeServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=fake.base_url, headers=headers, timeout=5) as http:
        sid = http.post("/services", json={**static_site("gone"), "ownerId": owner_id(fake)}).json()["service"]["id"]
        assert http.put(f"/services/{sid}/env-vars/TOKEN", json={"generateValue": True}).status_code == 200
        value = http.get(f"/services/{sid}/env-vars/TOKEN").json()["value"]
        assert len(value) >= 40
        assert http.delete(f"/services/{sid}/env-vars/TOKEN").status_code == 204
        assert http.get(f"/services/{sid}/env-vars/TOKEN").status_code == 404
        assert http.put(f"/services/{sid}/env-vars", json=[{"key": "A"}]).status_code == 400
        assert http.delete(f"/services/{sid}").status_code == 204
        assert http.get(f"/services/{sid}").json() == {"message": f"not found: {sid}"}
        no_repo = {"type": "static_site", "name": "x", "ownerId": owner_id(fake)}
        assert http.post("/services", json=no_repo).status_code == 400
    if fake.state.checker is not None:  # only the deliberately invalid env list breaks the document
        problems = fake.problems()
        assert len(problems) == 1 and "env-vars: request body[0]" in problems[0]
