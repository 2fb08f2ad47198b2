"""renderctl through the REST API of a real `opsloop serve`, against the fake Render run as a
process: create → env merge and clear → deploy → live, each a task with events; Render's
errors surfaced (4xx with Render's message, 502 for Render's own failures); 429 recovered;
render.yaml plan → apply → apply again (a no-op); the blueprint path stays in the repository."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.support.processes import Proc, app_instance

from .conftest import static_site, web_service
from .procs import FakeProc, client, events_of, kinds, tasks_of, wait_deploy_status


@pytest.fixture
def http(app_proc: Proc) -> Iterator[httpx.Client]:
    with client(app_proc) as c:
        yield c


def test_create_env_merge_clear_deploy_live_each_a_task_with_events(http: httpx.Client, database_url: str) -> None:
    resp = http.post("/render/services", json={"service": static_site("api-site"), "env": {"A": "1", "API_TOKEN": "s3cret"}})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    service = body["service"]
    sid = service["id"]
    assert service["name"] == "api-site" and service["type"] == "static_site" and service["ownerId"].startswith("tea-")
    assert body["env"] == {"A": "1", "API_TOKEN": "***"}  # secret-looking values never come back
    first = wait_deploy_status(http, sid)
    assert first["status"] == "live"

    resp = http.patch(f"/render/services/{sid}/env", json={"env": {"B": "2"}})
    assert resp.status_code == 200, resp.text
    changed = resp.json()
    assert changed["env"] == {"A": "1", "API_TOKEN": "***", "B": "2"} and changed["changed"] is True
    assert changed["deploy"]["id"].startswith("dep-")  # an env change is deployed, as in Render's dashboard
    assert wait_deploy_status(http, sid, changed["deploy"]["id"])["status"] == "live"
    resp = http.patch(f"/render/services/{sid}/env", json={"env": {"C": "3"}, "clear": True, "deploy": False})
    assert resp.json() == {"env": {"C": "3"}, "changed": True, "deploy": None}
    same = http.patch(f"/render/services/{sid}/env", json={"env": {"C": "3"}}).json()
    assert same["changed"] is False and same["deploy"] is None  # nothing changed: nothing to deploy

    resp = http.post(f"/render/deploy/{sid}", json={"clearCache": True})
    assert resp.status_code == 202, resp.text
    deploy = resp.json()["deploy"]
    assert deploy["id"].startswith("dep-") and deploy["trigger"] == "api"
    assert wait_deploy_status(http, sid, deploy["id"])["status"] == "live"
    page = http.get(f"/render/services/{sid}/deploys", params={"limit": 1}).json()
    assert [d["id"] for d in page["deploys"]] == [deploy["id"]] and page["next_cursor"]
    older = http.get(f"/render/services/{sid}/deploys", params={"limit": 1, "cursor": page["next_cursor"]}).json()
    assert older["deploys"][0]["id"] == changed["deploy"]["id"] and older["deploys"][0]["status"] == "deactivated"

    # Every change was a task run by the render agent, with an event per step.
    created = tasks_of(database_url, "render.create", "payload->'service'->>'name' = 'api-site'")
    envs = tasks_of(database_url, "render.env", "payload->>'serviceId' = %(sid)s", {"sid": sid})
    deploys = tasks_of(database_url, "render.deploy", "payload->>'serviceId' = %(sid)s", {"sid": sid})
    assert [len(created), len(envs), len(deploys)] == [1, 3, 1]
    for task in [*created, *envs, *deploys]:
        assert task["status"] == "done" and task["agent_slug"] == "render" and task["source"] == "api"
        assert task["result"]["agent"] == {"slug": "render", "channel": "local"}
    assert kinds(database_url, created[0]["id"])[-3:] == ["render.create.requested", "render.created", "done"]
    assert {"render.env.requested", "render.env.updated", "render.deploy.created"} <= set(kinds(database_url, envs[0]["id"]))
    assert "render.deploy.created" not in kinds(database_url, envs[1]["id"])
    assert {"render.deploy.requested", "render.deploy.created"} <= set(kinds(database_url, deploys[0]["id"]))
    for task in [*created, *envs]:
        for event in events_of(database_url, task["id"]):
            assert "s3cret" not in str(event["data"])  # keys are recorded, values are not
        answer = http.get(f"/task/{task['id']}").text  # the payload itself carries env values sealed
        assert "s3cret" not in answer and "API_TOKEN" in http.get(f"/task/{created[0]['id']}").text

    listed = http.get("/render/services", params={"type": "static_site", "name": "api-site"}).json()["services"]
    assert [s["id"] for s in listed] == [sid]
    agents = {a["slug"]: a for a in http.get("/agents").json()["agents"]}
    assert agents["render"]["url"] == "local://render" and "render.autofix" in agents["render"]["task_types"]


def test_render_errors_are_surfaced_not_500(http: httpx.Client, fake_proc: FakeProc, database_url: str) -> None:
    resp = http.post("/render/deploy/srv-doesnotexist0000")
    assert resp.status_code == 404, resp.text
    assert "not found: srv-doesnotexist0000" in resp.json()["error"] and resp.json()["taskId"]
    failed = tasks_of(database_url, "render.deploy", "payload->>'serviceId' = 'srv-doesnotexist0000'")
    assert failed[0]["status"] == "error" and failed[0]["attempts"] == 1
    assert "render.error" in kinds(database_url, failed[0]["id"])

    assert http.post("/render/deploy/not a service id").status_code == 400
    assert http.patch("/render/services/srv-x1/env", json={"env": {"A": 1}}).status_code == 400
    assert http.patch("/render/services/srv-x1/env", json={"env": {}, "clear": True}).status_code == 400
    assert http.post("/render/services", json={"env": {}}).status_code == 400
    assert http.post("/render/services", json={"service": {**static_site("nul"), "name": "a\u0000b"}}).status_code == 400
    duplicate = http.post("/render/services", json={"service": web_service("dup-svc")})
    assert duplicate.status_code == 201, duplicate.text
    again = http.post("/render/services", json={"service": web_service("dup-svc")})
    assert again.status_code == 409 and "already exists" in again.json()["error"]
    invalid = http.post("/render/services", json={"service": {"type": "static_site", "name": "no-repo"}})
    assert invalid.status_code == 400 and "repo" in invalid.json()["error"]

    sid = duplicate.json()["service"]["id"]
    wait_deploy_status(http, sid)
    fake_proc.control("faults", {"status": 500, "count": 1, "path_prefix": f"/services/{sid}/deploys", "method": "POST"})
    broken = http.post(f"/render/deploy/{sid}")
    assert broken.status_code == 502 and "internal server error" in broken.json()["error"]

    fake_proc.control("faults", {"status": 429, "count": 2, "path_prefix": "/services", "method": "GET", "retry_after": 0.2})
    assert http.get("/render/services", params={"name": "dup-svc"}).status_code == 200  # waited out, then answered


def test_blueprint_plan_apply_and_apply_again(http: httpx.Client, database_url: str) -> None:
    plan = http.post("/render/blueprint/apply", json={"dryRun": True})
    assert plan.status_code == 200, plan.text
    body = plan.json()["plan"]
    assert body["path"] == "render.yaml" and not body["noop"]
    assert body["missing"] == ["opsloop: BASIC_AUTH_PASS", "opsloop: RENDER_API_TOKEN"] and body["secretKeys"] == [
        "BASIC_AUTH_PASS",
        "RENDER_API_TOKEN",
    ]
    refused = http.post("/render/blueprint/apply", json={})
    assert refused.status_code == 400 and "nothing was changed" in refused.json()["error"]
    assert refused.json()["problems"][0].startswith("opsloop: BASIC_AUTH_PASS: sync: false value missing")
    assert http.get("/render/services", params={"name": "opsloop"}).json()["services"] == []

    operator = {"BASIC_AUTH_PASS": "deployed-operator-pass", "RENDER_API_TOKEN": "rnd_deployed_token_0123"}
    plan = http.post("/render/blueprint/apply", json={"dryRun": True, "env": operator}).json()["plan"]
    assert plan["missing"] == [] and [(r["kind"], r["action"]) for r in plan["resources"]] == [("database", "create")]
    assert {s["name"]: s["action"] for s in plan["services"]} == {"opsloop": "create", "opsloop-dashboard": "create", "opsloop-echo-agent": "create"}
    changes = {c["field"]: c["new"] for s in plan["services"] for c in s["changes"]}
    assert changes["staticPublishPath"] == ".web/build/client" and changes["repo"] == "https://github.com/example/opsloop"
    assert changes["env.BASIC_AUTH_PASS"] == changes["env.INTERNAL_KEY"] == changes["env.DATABASE_URL"] == "***"
    assert "deployed-operator-pass" not in json.dumps(plan)

    applied = http.post("/render/blueprint/apply", json={"env": operator})
    assert applied.status_code == 200, applied.text
    result = applied.json()
    assert result["ok"] and [s["service"] for s in result["result"]["steps"] if s["action"] == "create"] == [
        "opsloop-db",
        "opsloop",
        "opsloop-dashboard",
        "opsloop-echo-agent",
    ]
    names = {s["name"] for s in http.get("/render/services", params={"name": "opsloop,opsloop-dashboard,opsloop-echo-agent"}).json()["services"]}
    assert names == {"opsloop", "opsloop-dashboard", "opsloop-echo-agent"}
    task = tasks_of(database_url, "render.apply")[-1]
    assert task["status"] == "done" and {"render.plan", "render.apply.step", "render.apply.done"} <= set(kinds(database_url, task["id"]))
    assert "deployed-operator-pass" not in json.dumps(task["payload"]) and task["payload"]["envKeys"] == sorted(operator)
    assert all("deployed-operator-pass" not in json.dumps(e["data"]) for e in events_of(database_url, task["id"]))

    again = http.post("/render/blueprint/apply", json={"env": operator}).json()
    assert again["ok"] and again["plan"]["noop"] and {s["action"] for s in again["result"]["steps"]} <= {"noop"}
    assert http.post("/render/blueprint/apply", json={"dryRun": True}).json()["plan"]["noop"]  # sync: false values stay once set

    for bad in ("../SPEC.md", "/etc/passwd", "opsloop/../../x.yaml", "README.md", "missing.yaml"):
        resp = http.post("/render/blueprint/apply", json={"dryRun": True, "path": bad})
        assert resp.status_code == 400, (bad, resp.text)
        assert http.post("/render/blueprint/apply", json={"path": bad}).status_code == 400


def test_without_a_token_every_render_route_says_so(database_url: str) -> None:
    app = app_instance(database_url, name="render-api-no-token").start()
    try:
        with client(app) as http:
            for method, path in [
                ("GET", "/render/services"),
                ("POST", "/render/services"),
                ("PATCH", "/render/services/srv-a1/env"),
                ("POST", "/render/deploy/srv-a1"),
                ("GET", "/render/services/srv-a1/deploys"),
                ("POST", "/render/blueprint/apply"),
            ]:
                resp = http.request(method, path, json={})
                assert resp.status_code == 503, (method, path, resp.text)
                assert "RENDER_API_TOKEN" in resp.json()["error"]
    finally:
        app.stop()
