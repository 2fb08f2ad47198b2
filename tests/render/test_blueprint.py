"""render.yaml: valid against Render's schema; plan -> apply -> plan again is all noop against
the fake; secrets are masked and never pushed; apply stops at the first failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opsloop.backend.render.blueprint import (
    MASK,
    BlueprintError,
    apply,
    blueprint_from_dict,
    load_blueprint,
    plan,
    plan_against,
    validate_render_yaml,
)
from opsloop.backend.render.client import RenderClient
from opsloop.backend.render.openapi_check import project_root

from .conftest import FakeServer, Recorder, owner_id, require_reference, wait_deploy, web_service

RENDER_YAML = project_root() / "render.yaml"
REPO = "https://github.com/example/opsloop"
SECRETS = ("BASIC_AUTH_PASS", "INTERNAL_KEY", "RENDER_API_TOKEN", "DATABASE_URL")


def test_render_yaml_is_valid_against_renders_schema() -> None:
    require_reference()
    data = yaml.safe_load(RENDER_YAML.read_text(encoding="utf-8"))
    assert validate_render_yaml(data) == []
    names = {s["name"]: s for s in data["services"]}
    assert names["opsloop"]["healthCheckPath"] == "/health"
    assert names["opsloop-dashboard"]["runtime"] == "static"
    assert names["opsloop-dashboard"]["staticPublishPath"] == ".web/build/client"
    assert [d["name"] for d in data["databases"]] == ["opsloop-db"]


def test_schema_rejects_what_render_would_reject(tmp_path: Path) -> None:
    require_reference()
    data = yaml.safe_load(RENDER_YAML.read_text(encoding="utf-8"))
    data["services"][0]["staticPublishPath"] = "dist"  # not a field of a python web service
    data["services"][1]["runtime"] = "static-site"
    assert len(validate_render_yaml(data)) >= 1
    broken = tmp_path / "render.yaml"
    broken.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(BlueprintError) as info:
        load_blueprint(broken)
    assert info.value.problems


def test_blueprint_maps_render_yaml_to_api_fields() -> None:
    blueprint = load_blueprint(RENDER_YAML, repo=REPO, branch="main")
    services = {s.name: s for s in blueprint.services}
    assert {s.type for s in blueprint.services} == {"web_service", "static_site"}
    site = {f.label: (f.actual, f.value) for f in services["opsloop-dashboard"].fields}
    assert site["staticPublishPath"] == (("serviceDetails", "publishPath"), ".web/build/client")
    app = {f.label: f for f in services["opsloop"].fields}
    assert app["startCommand"].actual == ("serviceDetails", "envSpecificDetails", "startCommand")
    assert app["region"].patch is None  # Render cannot move a service
    assert any("opsloop-db" in s for s in blueprint.skipped)


def test_blueprint_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(BlueprintError, match="cannot read"):
        load_blueprint(tmp_path / "missing.yaml")
    with pytest.raises(BlueprintError, match="unique"):
        blueprint_from_dict({"services": [{"type": "web", "name": "a", "runtime": "python"}] * 2})
    with pytest.raises(BlueprintError, match="has no value"):
        blueprint_from_dict({"services": [{"type": "web", "name": "a", "runtime": "python", "envVars": [{"key": "K"}]}]})


async def test_plan_apply_plan_again_is_all_noop(render: RenderClient, fake: FakeServer, recorder: Recorder) -> None:
    blueprint = load_blueprint(RENDER_YAML, repo=REPO, branch="main")
    owner = owner_id(fake)
    first = await plan_against(render, blueprint, owner)
    assert [s.action for s in first.services] == ["create"] * 3
    assert [s.name for s in first.services] == ["opsloop", "opsloop-dashboard", "opsloop-echo-agent"]  # referenced first

    result = await apply(render, first, owner)
    assert result.ok, result.to_dict()
    assert [(s.service, s.action) for s in result.steps] == [
        ("opsloop", "create"),
        ("opsloop-dashboard", "create"),
        ("opsloop-echo-agent", "create"),
        ("opsloop-echo-agent", "env"),  # its own address: known once it exists
    ]

    second = await plan_against(render, blueprint, owner)
    assert second.noop, second.to_dict()
    assert all(s.changes == [] for s in second.services)
    warnings = " ".join(w for s in second.services for w in s.warnings)
    assert all(secret in warnings for secret in SECRETS)  # still to be set by hand, never pushed

    services = {s["name"]: s for s in await render.list_services()}
    app_env = {e["key"]: e["value"] for e in await render.list_env_vars(services["opsloop"]["id"])}
    echo_env = {e["key"]: e["value"] for e in await render.list_env_vars(services["opsloop-echo-agent"]["id"])}
    assert echo_env["ECHO_AGENT_URL"] == f"{services['opsloop-echo-agent']['slug']}:10000"
    assert echo_env["OPSLOOP_URL"] == f"{services['opsloop']['slug']}:10000"
    assert app_env["BASIC_AUTH_USER"] == "operator"
    assert not set(SECRETS) & (set(app_env) | set(echo_env))
    sent = [json.loads(r.content) for r, _ in recorder.exchanges if r.method in ("POST", "PUT") and r.content]
    assert not any(secret in json.dumps(body) for body in sent for secret in SECRETS)

    site = services["opsloop-dashboard"]
    deploys, _ = await render.list_deploys(site["id"])
    assert (await wait_deploy(render, site["id"], deploys[-1]["id"]))["status"] == "live"  # the fake builds reflex export


async def test_plan_shows_field_changes_and_masks_secrets(render: RenderClient, fake: FakeServer) -> None:
    data = yaml.safe_load(RENDER_YAML.read_text(encoding="utf-8"))
    data["services"][0]["envVars"].append({"key": "SESSION_SECRET", "value": "plain-in-yaml-value"})
    data["services"][0]["envVars"].append({"key": "SIGNING_KEY", "generateValue": True})
    blueprint = blueprint_from_dict(data, repo=REPO, branch="main")
    owner = owner_id(fake)
    assert (await apply(render, await plan_against(render, blueprint, owner), owner)).ok

    services = {s["name"]: s for s in await render.list_services()}
    app_id = services["opsloop"]["id"]
    await render.update_service(app_id, {"serviceDetails": {"envSpecificDetails": {"startCommand": "python old.py"}}})
    await render.set_env_var(app_id, "SESSION_SECRET", "changed-on-render-value")
    await render.set_env_var(app_id, "BASIC_AUTH_USER", "somebody")
    await render.set_env_var(app_id, "INTERNAL_KEY", "set-by-hand-secret-value")
    generated = {e["key"]: e["value"] for e in await render.list_env_vars(app_id)}["SIGNING_KEY"]

    drift = await plan_against(render, blueprint, owner)
    app = next(s for s in drift.services if s.name == "opsloop")
    assert app.action == "update"
    assert [s.action for s in drift.services if s.name != "opsloop"] == ["noop", "noop"]
    changes = {c.field: (c.old, c.new) for c in app.changes}
    assert changes == {
        "startCommand": ("python old.py", data["services"][0]["startCommand"]),
        "env.SESSION_SECRET": (MASK, MASK),
        "env.BASIC_AUTH_USER": ("somebody", "operator"),
    }
    shown = json.dumps(drift.to_dict())
    for secret in ("plain-in-yaml-value", "changed-on-render-value", "set-by-hand-secret-value", generated):
        assert secret not in shown and secret not in repr(drift)

    assert (await apply(render, drift, owner)).ok
    assert (await plan_against(render, blueprint, owner)).noop
    env = {e["key"]: e["value"] for e in await render.list_env_vars(app_id)}
    assert env["SIGNING_KEY"] == generated  # generated once, never regenerated
    assert env["INTERNAL_KEY"] == "set-by-hand-secret-value"  # sync: false keys are left alone
    assert env["SESSION_SECRET"] == "plain-in-yaml-value"


async def test_apply_stops_at_the_first_failure_and_reports(render: RenderClient, fake: FakeServer) -> None:
    blueprint = load_blueprint(RENDER_YAML, repo=REPO, branch="main")
    owner = owner_id(fake)
    taken = {**web_service("opsloop-dashboard"), "ownerId": owner}
    fake.control("services", {"services": [taken]})  # a web service holds the static site's name

    planned = await plan_against(render, blueprint, owner)
    site = next(s for s in planned.services if s.name == "opsloop-dashboard")
    assert site.action == "create" and any("web_service named opsloop-dashboard exists" in w for w in site.warnings)
    result = await apply(render, planned, owner)
    assert not result.ok
    assert [(s.service, s.ok) for s in result.steps] == [("opsloop", True), ("opsloop-dashboard", False)]
    assert result.failed is not None and "409" in result.failed.detail
    assert result.not_attempted == ["opsloop-echo-agent"]
    assert result.to_dict()["failed"]["service"] == "opsloop-dashboard"
    assert sorted(s["name"] for s in await render.list_services()) == ["opsloop", "opsloop-dashboard"]


def test_plan_is_pure_and_reads_renders_env_shapes() -> None:
    blueprint = blueprint_from_dict(
        {
            "services": [
                {"type": "web", "name": "api", "runtime": "python", "buildCommand": "b", "startCommand": "s", "envVars": [{"key": "A", "value": 1}]}
            ]
        },
        repo=REPO,
    )
    actual = [
        {
            "id": "srv-1",
            "name": "api",
            "type": "web_service",
            "slug": "api",
            "repo": REPO,
            "serviceDetails": {"runtime": "python", "envSpecificDetails": {"buildCommand": "b", "startCommand": "s"}},
        }
    ]
    assert plan(blueprint, actual, {"srv-1": [{"key": "A", "value": "1"}]}).noop
    assert plan(blueprint, actual, {"srv-1": {"A": "1"}}).noop
    changed = plan(blueprint, actual, {"srv-1": {"A": "2"}})
    assert [c.to_dict() for c in changed.services[0].changes] == [{"field": "env.A", "old": "2", "new": "1"}]
