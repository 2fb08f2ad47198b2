"""Conformance with Render's OpenAPI document: the checker itself, and a scenario touching
every operation the client uses, whose recorded traffic must all validate."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from opsloop.devtools.render_fake.openapi_check import OpenAPIChecker
from opsloop.render.client import RenderAPIError, RenderClient, merge_env

from .conftest import TOKEN, FakeServer, Recorder, owner_id, require_reference, static_site, wait_deploy, web_service


@pytest.fixture
def checker() -> OpenAPIChecker:
    require_reference()
    return OpenAPIChecker.load()


def test_checker_accepts_valid_and_names_what_is_wrong(checker: OpenAPIChecker) -> None:
    assert checker.check_request("GET", "/v1/services", "type=web_service,static_site&limit=100&cursor=abc") == []
    problems = checker.check_request("GET", "/v1/services", "type=website&limit=0&page=2")
    assert any("'page' is not documented" in p for p in problems)
    assert any("'website' is not one of" in p for p in problems)
    assert any("less than the minimum of 1" in p for p in problems)

    assert checker.check_request("GET", "/v1/logs", "resource=srv-1") == ["GET /v1/logs: query parameter 'ownerId' is required"]
    body = json.dumps({"type": "web_service", "name": "x"}).encode()
    assert any("'ownerId' is a required property" in p for p in checker.check_request("POST", "/v1/services", "", body))
    assert checker.check_request("POST", "/v1/services/srv-1/deploys", "", b"") == ["POST /v1/services/srv-1/deploys: request body is required"]
    assert checker.check_request("GET", "/v1/services", "", None, {}) == ["GET /v1/services: Authorization: Bearer <token> header missing"]
    assert "not an operation" in checker.check_request("GET", "/v1/nowhere")[0]


def test_checker_checks_answers(checker: OpenAPIChecker) -> None:
    assert checker.check_response("POST", "/v1/services/srv-1/deploys", 202, b"") == []
    assert "without a body" in checker.check_response("POST", "/v1/services/srv-1/deploys", 202, b"{}")[0]
    assert "status 418 is not documented" in checker.check_response("GET", "/v1/services/srv-1", 418, b"{}")[0]
    unwrapped = json.dumps([{"id": "srv-1"}]).encode()
    assert any("'service' is a required property" in p for p in checker.check_response("GET", "/v1/services", 200, unwrapped))
    deploy = {"id": "dep-1", "status": "running", "createdAt": "yesterday"}
    problems = checker.check_response("GET", "/v1/services/s/deploys/d", 200, json.dumps(deploy).encode())
    assert any("'running' is not one of" in p for p in problems)
    assert any("'yesterday' is not a 'date-time'" in p for p in problems)


def test_checker_accepts_renders_recorded_services() -> None:
    """The OpenAPI 3.0 translation (oneOf, $ref into #/paths) must accept Render's own answers."""
    reference = require_reference()
    checker = OpenAPIChecker.load()
    name = "internal_provider_staticsite_resource_testdata_static_site_cassette.yaml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    cassette = yaml.load((reference / "cassettes" / name).read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
    checked = 0
    for interaction in cassette["interactions"]:
        request, response = interaction["request"], interaction["response"]
        url = httpx.URL(request["url"])
        if request["method"] == "GET" and url.path.startswith("/v1/services/") and url.path.count("/") == 3:
            assert checker.check_response("GET", url.path, response["code"], response["body"].encode()) == []
            checked += 1
    assert checked > 0


async def test_every_client_operation_conforms(render: RenderClient, fake: FakeServer, recorder: Recorder, checker: OpenAPIChecker) -> None:
    owner = (await render.list_owners())[0]["id"]
    assert owner == owner_id(fake)
    web = await render.create_service(
        {
            **web_service("api", healthCheckPath="/health", plan="starter", region="ohio"),
            "ownerId": owner,
            "envVars": [{"key": "A", "value": "1"}, {"key": "SECRET", "generateValue": True}],
        }
    )
    site = await render.create_service({**static_site("site"), "ownerId": owner})
    wid, sid = web["service"]["id"], site["service"]["id"]
    await render.update_service(wid, {"serviceDetails": {"healthCheckPath": "/ready", "preDeployCommand": "migrate"}})
    await render.update_service(sid, {"rootDir": "", "serviceDetails": {"publishPath": "dist"}})
    await merge_env(render, wid, {"B": "2"})
    await render.set_env_var(wid, "C", "3")
    assert [s["id"] for s in await render.list_services(type=["web_service"], name="api", owner_id=owner)] == [wid]
    assert (await render.get_service(wid))["serviceDetails"]["envSpecificDetails"]["preDeployCommand"] == "migrate"
    await wait_deploy(render, wid, web["deployId"])
    deploy = await render.trigger_deploy(wid, clear_cache=True)
    assert deploy is not None
    await wait_deploy(render, wid, deploy["id"])
    await render.list_deploys(wid, limit=1)
    assert await render.build_logs(wid, deploy["id"])
    with pytest.raises(RenderAPIError):
        await render.cancel_deploy(wid, deploy["id"])  # finished: Render answers 400
    with pytest.raises(RenderAPIError):
        await render.get_service("srv-missing")

    operations = {checker.operation(r.method, r.url.path).spec["operationId"] for r, _ in recorder.exchanges}
    assert operations >= {
        "list-owners",
        "create-service",
        "update-service",
        "update-env-vars-for-service",
        "update-env-var",
        "get-env-vars-for-service",
        "list-services",
        "retrieve-service",
        "create-deploy",
        "retrieve-deploy",
        "list-deploys",
        "cancel-deploy",
        "list-logs",
    }
    assert {response.status_code for _, response in recorder.exchanges} >= {200, 201, 400, 404}
    assert recorder.problems() == []  # also asserted by the fixture, for every test using it
    assert fake.problems() == []


def test_the_fake_reports_requests_that_break_the_document(fake: FakeServer) -> None:
    require_reference()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.get(f"{fake.base_url}/services", params={"limit": 500, "sort": "name"}, headers=headers, timeout=5)
    assert answer.status_code == 400
    problems = fake.problems()
    assert any("'sort' is not documented" in p for p in problems)
    assert any("greater than the maximum of 100" in p for p in problems)
