"""render.yaml: valid against Render's schema; plan -> apply -> plan again is all noop against
the fake (database, generated and copied keys, the operator's `sync: false` values); secrets are
masked; apply refuses before any change when it could not finish, and stops at the first failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opsloop.render.blueprint import MASK, BlueprintError, blueprint_from_dict, load_blueprint, validate_render_yaml
from opsloop.render.blueprint_apply import apply
from opsloop.render.blueprint_plan import Actual, connection_values, plan, plan_against
from opsloop.render.client import RenderClient
from opsloop.render.reference import project_root

from .conftest import FakeServer, Recorder, owner_id, require_reference, wait_deploy, web_service

RENDER_YAML = project_root() / "render.yaml"
REPO = "https://github.com/example/opsloop"
OPERATOR = {"BASIC_AUTH_PASS": "operator-password-0123", "RENDER_API_TOKEN": "rnd_operator_token_0123456789"}


def test_render_yaml_is_valid_against_renders_schema() -> None:
    require_reference()
    data = yaml.safe_load(RENDER_YAML.read_text(encoding="utf-8"))
    assert validate_render_yaml(data) == []
    names = {s["name"]: s for s in data["services"]}
    assert names["opsloop"]["healthCheckPath"] == "/health"
    assert names["opsloop-dashboard"]["runtime"] == "static"
    assert names["opsloop-dashboard"]["staticPublishPath"] == ".web/build/client"
    assert [d["name"] for d in data["databases"]] == ["opsloop-db"]
    asked = sorted(e["key"] for s in data["services"] for e in s.get("envVars", []) if e.get("sync") is False)
    assert asked == ["BASIC_AUTH_PASS", "RENDER_API_TOKEN"]  # nothing else is copied by hand


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
    assert "repo" not in app  # the default repository is for creating only
    assert services["opsloop"].create_defaults["repo"] == REPO
    assert [d.name for d in blueprint.databases] == ["opsloop-db"]
    assert blueprint.databases[0].body == {
        "name": "opsloop-db",
        "plan": "basic_256mb",
        "version": "16",
        "region": "oregon",
        "databaseName": "opsloop",
        "databaseUser": "opsloop",
    }
    assert sorted(blueprint.secret_keys()) == [("opsloop", "BASIC_AUTH_PASS"), ("opsloop", "RENDER_API_TOKEN")]


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
    first = await plan_against(render, blueprint, owner, OPERATOR)
    assert [(r.kind, r.action) for r in first.resources] == [("database", "create")]
    assert [s.action for s in first.services] == ["create"] * 3
    assert [s.name for s in first.services] == ["opsloop", "opsloop-dashboard", "opsloop-echo-agent"]  # referenced first
    assert first.missing == [] and first.refusal() is None
    shown = json.dumps(first.to_dict())
    assert not any(value in shown for value in OPERATOR.values())

    result = await apply(render, first, owner, poll_s=0.02)
    assert result.ok, result.to_dict()
    assert [(s.service, s.action) for s in result.steps] == [
        ("opsloop-db", "create"),
        ("opsloop", "create"),
        ("opsloop-dashboard", "create"),
        ("opsloop-echo-agent", "create"),
        ("opsloop-echo-agent", "env"),  # its own address: known once it exists
        ("opsloop-echo-agent", "deploy"),  # one deploy with everything (the first one is cancelled)
    ]

    second = await plan_against(render, blueprint, owner, OPERATOR)
    assert second.noop, second.to_dict()
    assert all(s.changes == [] for s in [*second.services, *second.resources])

    services = {s["name"]: s for s in await render.list_services()}
    app_env = {e["key"]: e["value"] for e in await render.list_env_vars(services["opsloop"]["id"])}
    echo_env = {e["key"]: e["value"] for e in await render.list_env_vars(services["opsloop-echo-agent"]["id"])}
    assert echo_env["ECHO_AGENT_URL"] == f"{services['opsloop-echo-agent']['slug']}:10000"
    assert echo_env["OPSLOOP_URL"] == f"{services['opsloop']['slug']}:10000"
    assert app_env["BASIC_AUTH_USER"] == "operator"
    assert app_env["BASIC_AUTH_PASS"] == OPERATOR["BASIC_AUTH_PASS"] and app_env["RENDER_API_TOKEN"] == OPERATOR["RENDER_API_TOKEN"]
    assert len(app_env["INTERNAL_KEY"]) >= 32 and echo_env["INTERNAL_KEY"] == app_env["INTERNAL_KEY"]  # generated once, copied
    assert len(app_env["SESSION_SECRET"]) >= 32
    (db,) = await render.list_postgres()
    assert app_env["DATABASE_URL"] == (await render.postgres_connection_info(db["id"]))["internalConnectionString"]

    third = await plan_against(render, blueprint, owner, OPERATOR)
    assert {s.action for s in (await apply(render, third, owner)).steps} == {"noop"}  # nothing regenerated, nothing deployed
    again = {e["key"]: e["value"] for e in await render.list_env_vars(services["opsloop"]["id"])}
    assert again["INTERNAL_KEY"] == app_env["INTERNAL_KEY"] and again["SESSION_SECRET"] == app_env["SESSION_SECRET"]

    for name, count in (("opsloop", 1), ("opsloop-echo-agent", 2), ("opsloop-dashboard", 1)):
        deploys, _ = await render.list_deploys(services[name]["id"])
        for d in deploys:
            await wait_deploy(render, services[name]["id"], d["id"])
        statuses = [d["status"] for d in (await render.list_deploys(services[name]["id"]))[0]]
        # one deploy per service per apply; the echo agent's creation deploy, which lacked its own
        # address, was cancelled if it still ran (or had already finished) when the one with it started
        assert len(statuses) == count and statuses[0] == "live" and set(statuses[1:]) <= {"canceled", "deactivated"}, (name, statuses)


async def test_a_missing_sync_false_value_refuses_before_any_change(render: RenderClient, fake: FakeServer) -> None:
    blueprint = load_blueprint(RENDER_YAML, repo=REPO, branch="main")
    owner = owner_id(fake)
    planned = await plan_against(render, blueprint, owner, {"BASIC_AUTH_PASS": OPERATOR["BASIC_AUTH_PASS"]})
    assert planned.missing == ["opsloop: RENDER_API_TOKEN"]
    with pytest.raises(BlueprintError) as info:
        await apply(render, planned, owner)
    assert info.value.problems == ["opsloop: RENDER_API_TOKEN: sync: false value missing (give it in the environment or --env-file)"]
    assert await render.list_services() == [] and await render.list_postgres() == []


def test_a_service_to_create_needs_a_repository_and_a_guess_never_replaces_one() -> None:
    data = {"services": [{"type": "web", "name": "api", "runtime": "python", "buildCommand": "b", "startCommand": "s"}]}
    nothing = plan(blueprint_from_dict(data), Actual(), {})
    assert nothing.blocked and "OPSLOOP_RENDER_REPO" in nothing.blocked[0] and nothing.refusal() is not None

    existing = {
        "id": "srv-1",
        "name": "api",
        "type": "web_service",
        "slug": "api",
        "repo": "https://github.com/someone/real",
        "branch": "prod",
        "serviceDetails": {"runtime": "python", "envSpecificDetails": {"buildCommand": "b", "startCommand": "s"}},
    }
    guessed = plan(blueprint_from_dict(data, repo="https://github.com/example/fork", branch="main"), Actual(services={"api": existing}), {})
    assert guessed.noop and guessed.blocked == []  # the existing repository is left alone

    written = {"services": [{**data["services"][0], "repo": "https://github.com/example/new"}]}
    moved = plan(blueprint_from_dict(written), Actual(services={"api": existing}), {})
    assert [c.field for c in moved.services[0].changes] == ["repo"]  # render.yaml says so: managed


def test_top_level_previews_and_unknown_sections_are_reported() -> None:
    blueprint = blueprint_from_dict({"previews": {"generation": "automatic"}, "projects": [], "services": []})
    assert blueprint.skipped == [
        "previews: preview environments are not managed by opsloop apply",
        "projects: projects and environments are not managed by opsloop apply",
    ]
    with pytest.raises(BlueprintError, match="does not define"):
        blueprint_from_dict({"services": [{"type": "web", "name": "a", "runtime": "python", "envVars": [{"fromGroup": "nope"}]}]})


async def test_env_groups_key_value_and_port_references(render: RenderClient, fake: FakeServer) -> None:
    data = {
        "envVarGroups": [{"name": "shared", "envVars": [{"key": "COLOR", "value": "blue"}, {"key": "SHARED_SECRET", "generateValue": True}]}],
        "services": [
            {"type": "keyvalue", "name": "cache", "plan": "starter", "ipAllowList": []},
            {
                "type": "web",
                "name": "api",
                "runtime": "python",
                "buildCommand": "b",
                "startCommand": "s",
                "envVars": [
                    {"key": "PORT", "value": "8080"},
                    {"key": "SELF", "fromService": {"type": "web", "name": "api", "property": "hostport"}},
                    {"key": "CACHE_URL", "fromService": {"type": "keyvalue", "name": "cache", "property": "connectionString"}},
                    {"fromGroup": "shared"},
                ],
            },
        ],
    }
    blueprint = blueprint_from_dict(data, repo=REPO)
    owner = owner_id(fake)
    planned = await plan_against(render, blueprint, owner)
    assert [(r.kind, r.name, r.action) for r in planned.resources] == [("keyvalue", "cache", "create"), ("envGroup", "shared", "create")]
    result = await apply(render, planned, owner, poll_s=0.02)
    assert result.ok, result.to_dict()
    assert [(s.service, s.action) for s in result.steps][-2:] == [("api", "link"), ("api", "deploy")]
    assert sum(s.action == "deploy" for s in result.steps) == 1

    (api,) = await render.list_services(name="api")
    env = {e["key"]: e["value"] for e in await render.list_env_vars(api["id"])}
    assert env["SELF"] == f"{api['slug']}:8080"  # where it listens: its PORT, not always 10000
    (kv,) = await render.list_key_values()
    assert env["CACHE_URL"] == (await render.key_value_connection_info(kv["id"]))["internalConnectionString"]
    (group,) = await render.list_env_groups()
    full = await render.get_env_group(group["id"])
    assert [link["id"] for link in full["serviceLinks"]] == [api["id"]]
    assert (await plan_against(render, blueprint, owner)).noop

    data["envVarGroups"][0]["envVars"] += [{"key": "COLOR", "value": "red"}, {"key": "TOKEN_SALT", "generateValue": True}]
    data["envVarGroups"][0]["envVars"].pop(0)
    changed = blueprint_from_dict(data, repo=REPO)
    group_plan = (await plan_against(render, changed, owner)).resources[1]
    assert group_plan.action == "update" and [c.to_dict() for c in group_plan.changes] == [
        {"field": "env.COLOR", "old": "blue", "new": "red"},
        {"field": "env.TOKEN_SALT", "old": None, "new": MASK},
    ]
    result = await apply(render, await plan_against(render, changed, owner), owner, poll_s=0.02)
    assert [(s.service, s.action) for s in result.steps if s.action != "noop"] == [("shared", "update"), ("api", "deploy")]  # linked: redeployed
    salt = {e["key"]: e["value"] for e in (await render.get_env_group(group["id"]))["envVars"]}["TOKEN_SALT"]
    assert len(salt) >= 32 and (await plan_against(render, changed, owner)).noop


async def test_plan_shows_field_changes_and_masks_secrets(render: RenderClient, fake: FakeServer) -> None:
    data = yaml.safe_load(RENDER_YAML.read_text(encoding="utf-8"))
    data["services"][0]["envVars"].append({"key": "PLAIN_SECRET", "value": "plain-in-yaml-value"})
    data["services"][0]["envVars"].append({"key": "SIGNING_KEY", "generateValue": True})
    blueprint = blueprint_from_dict(data, repo=REPO, branch="main")
    owner = owner_id(fake)
    assert (await apply(render, await plan_against(render, blueprint, owner, OPERATOR), owner, poll_s=0.02)).ok

    services = {s["name"]: s for s in await render.list_services()}
    app_id = services["opsloop"]["id"]
    await render.update_service(app_id, {"serviceDetails": {"envSpecificDetails": {"startCommand": "python old.py"}}})
    await render.set_env_var(app_id, "PLAIN_SECRET", "changed-on-render-value")
    await render.set_env_var(app_id, "BASIC_AUTH_USER", "somebody")
    await render.set_env_var(app_id, "BASIC_AUTH_PASS", "set-by-hand-secret-value")
    generated = {e["key"]: e["value"] for e in await render.list_env_vars(app_id)}["SIGNING_KEY"]

    drift = await plan_against(render, blueprint, owner)  # no operator values this time
    app = next(s for s in drift.services if s.name == "opsloop")
    assert app.action == "update" and drift.missing == []  # sync: false keys on Render stay as they are
    assert [s.action for s in drift.services if s.name != "opsloop"] == ["noop", "noop"]
    changes = {c.field: (c.old, c.new) for c in app.changes}
    assert changes == {
        "startCommand": ("python old.py", data["services"][0]["startCommand"]),
        "env.PLAIN_SECRET": (MASK, MASK),
        "env.BASIC_AUTH_USER": ("somebody", "operator"),
    }
    shown = json.dumps(drift.to_dict())
    for secret in ("plain-in-yaml-value", "changed-on-render-value", "set-by-hand-secret-value", generated):
        assert secret not in shown and secret not in repr(drift)

    result = await apply(render, drift, owner)
    assert result.ok and [(s.service, s.action) for s in result.steps if s.action != "noop"] == [("opsloop", "update"), ("opsloop", "deploy")]
    assert (await plan_against(render, blueprint, owner)).noop
    env = {e["key"]: e["value"] for e in await render.list_env_vars(app_id)}
    assert env["SIGNING_KEY"] == generated  # generated once, never regenerated
    assert env["BASIC_AUTH_PASS"] == "set-by-hand-secret-value"  # sync: false keys are left alone unless given
    assert env["PLAIN_SECRET"] == "plain-in-yaml-value"

    given = await plan_against(render, blueprint, owner, {"BASIC_AUTH_PASS": "a-new-operator-password"})
    assert {c.field: (c.old, c.new) for c in given.services[0].changes} == {"env.BASIC_AUTH_PASS": (MASK, MASK)}


async def test_apply_stops_at_the_first_failure_and_reports(render: RenderClient, fake: FakeServer) -> None:
    blueprint = load_blueprint(RENDER_YAML, repo=REPO, branch="main")
    owner = owner_id(fake)
    taken = {**web_service("opsloop-dashboard"), "ownerId": owner}
    fake.control("services", {"services": [taken]})  # a web service holds the static site's name

    planned = await plan_against(render, blueprint, owner, OPERATOR)
    site = next(s for s in planned.services if s.name == "opsloop-dashboard")
    assert site.action == "create" and any("web_service named opsloop-dashboard exists" in w for w in site.warnings)
    result = await apply(render, planned, owner, poll_s=0.02)
    assert not result.ok
    assert [(s.service, s.ok) for s in result.steps] == [("opsloop-db", True), ("opsloop", True), ("opsloop-dashboard", False)]
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
    actual = {
        "id": "srv-1",
        "name": "api",
        "type": "web_service",
        "slug": "api",
        "repo": REPO,
        "serviceDetails": {"runtime": "python", "envSpecificDetails": {"buildCommand": "b", "startCommand": "s"}},
    }
    assert plan(blueprint, Actual(services={"api": actual}, env={"api": {"A": "1"}})).noop
    changed = plan(blueprint, Actual(services={"api": actual}, env={"api": {"A": "2"}}))
    assert [c.to_dict() for c in changed.services[0].changes] == [{"field": "env.A", "old": "2", "new": "1"}]


def test_from_database_properties_come_from_the_connection_info() -> None:
    info = {"password": "p" * 32, "internalConnectionString": f"postgresql://opsloop:{'p' * 32}@dpg-abc-a/opsloop_x1y2"}
    assert connection_values("database", info) == {
        "connectionString": info["internalConnectionString"],
        "host": "dpg-abc-a",
        "port": "5432",
        "hostport": "dpg-abc-a:5432",
        "user": "opsloop",
        "password": "p" * 32,
        "database": "opsloop_x1y2",
    }
    assert connection_values("keyvalue", {"internalConnectionString": "redis://red-abc:6379"})["hostport"] == "red-abc:6379"
    spec = blueprint_from_dict(
        {
            "databases": [{"name": "db"}],
            "services": [
                {
                    "type": "web",
                    "name": "api",
                    "runtime": "python",
                    "envVars": [{"key": f"DB_{p.upper()}", "fromDatabase": {"name": "db", "property": p}} for p in ("host", "user", "password")],
                }
            ],
        }
    )
    assert all(e.masked for e in spec.services[0].env)  # values from a database are never shown
