"""What applying render.yaml would change on Render: per resource, create / update / noop.

Why separate from applying: the operator (CLI, dashboard) sees the whole plan first, field by
field with secrets masked, and ``apply`` refuses before changing anything when the plan says it
cannot finish (a ``sync: false`` value nobody gave, a service to create without a repository).

``plan`` is pure: it compares a :class:`~.blueprint.Blueprint` with an :class:`Actual` snapshot;
``plan_against`` reads the snapshot from Render (reads only, connection info included: values of
``fromDatabase`` / Key Value references are compared without ever being shown).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from .blueprint import (
    INTERNAL_PORT,
    MASK,
    REF_TYPES,
    Action,
    Blueprint,
    BlueprintError,
    DesiredGroup,
    DesiredService,
    EnvSpec,
    Ref,
)
from .client import RenderClient

NO_REPO = "no repository to create it from: add `repo:` to render.yaml or set OPSLOOP_RENDER_REPO (a local path is not a repository Render can pull)"


@dataclass(frozen=True)
class Change:
    """One field-level difference, already masked for display."""

    field: str
    old: Any
    new: Any

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class EnvAction:
    """What apply does with one env key: set a value, let Render generate one, or resolve a reference."""

    key: str
    kind: Literal["value", "generate", "ref"]
    value: str | None = field(default=None, repr=False)
    ref: Ref | None = None


@dataclass
class ServicePlan:
    name: str
    type: str
    action: Action
    service_id: str | None = None
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    create_body: dict[str, Any] | None = field(default=None, repr=False)
    patch: dict[str, Any] | None = field(default=None, repr=False)
    env_actions: list[EnvAction] = field(default_factory=list, repr=False)
    link_groups: list[str] = field(default_factory=list)
    kind: str = "service"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "type": self.type,
            "action": self.action,
            "serviceId": self.service_id,
            "changes": [c.to_dict() for c in self.changes],
            "warnings": list(self.warnings),
        }


@dataclass
class Actual:
    """What is on Render now, by name; ``env`` and ``connections`` are secrets (never shown)."""

    services: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)  # by service name
    databases: dict[str, dict[str, Any]] = field(default_factory=dict)
    key_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # envGroup with envVars, serviceLinks
    connections: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)  # (kind, name) -> info


@dataclass
class Plan:
    services: list[ServicePlan]
    skipped: list[str]
    resources: list[ServicePlan] = field(default_factory=list)  # databases, Key Value, env groups (in apply order)
    missing: list[str] = field(default_factory=list)  # sync: false values nobody gave: "owner: KEY"
    blocked: list[str] = field(default_factory=list)  # other reasons apply cannot start
    actual: Actual = field(default_factory=Actual, repr=False)
    blueprint: Blueprint | None = field(default=None, repr=False)

    @property
    def noop(self) -> bool:
        return all(s.action == "noop" for s in [*self.resources, *self.services])

    @property
    def known_services(self) -> dict[str, dict[str, Any]]:
        return self.actual.services

    def refusal(self) -> BlueprintError | None:
        """Why apply must not start (it would stop half-way), or None."""
        problems = [f"{m}: sync: false value missing (give it in the environment or --env-file)" for m in self.missing] + self.blocked
        return BlueprintError("render.yaml cannot be applied; nothing was changed", problems) if problems else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "noop": self.noop,
            "services": [s.to_dict() for s in self.services],
            "resources": [r.to_dict() for r in self.resources],
            "skipped": list(self.skipped),
            "missing": list(self.missing),
            "blocked": list(self.blocked),
        }


# ----- references ------------------------------------------------------------------------


def connection_values(kind: str, info: Mapping[str, Any]) -> dict[str, str]:
    """Every property a ``fromDatabase`` / Key Value reference can name, from connection info."""
    url = str(info.get("internalConnectionString") or "")
    parts = urlsplit(url)
    port = str(parts.port or (5432 if kind == "database" else 6379))
    host = parts.hostname or ""
    values = {"connectionString": url, "host": host, "port": port, "hostport": f"{host}:{port}"}
    if kind == "database":
        values |= {"user": parts.username or "", "password": str(info.get("password") or parts.password or ""), "database": parts.path.lstrip("/")}
    return values


def resolve(ref: Ref, actual: Actual) -> str | None:
    """The value of a reference, or None while its target does not exist (or lacks the key)."""
    if ref.kind in ("database", "keyvalue"):
        info = actual.connections.get((ref.kind, ref.name))
        return None if info is None else connection_values(ref.kind, info).get(str(ref.property))
    target = actual.services.get(ref.name)
    if target is None or target.get("type") not in REF_TYPES.get(str(ref.service_type), {target.get("type")}):
        return None
    env = actual.env.get(ref.name, {})
    if ref.env_var_key:
        return env.get(ref.env_var_key)
    host = str(target.get("slug") or target["name"])
    port = env.get("PORT") or INTERNAL_PORT  # where the service listens: its PORT, else Render's default
    return {"host": host, "port": port, "hostport": f"{host}:{port}"}[str(ref.property)]


# ----- plan --------------------------------------------------------------------------------


def plan(blueprint: Blueprint, actual: Actual, secrets: Mapping[str, str] | None = None) -> Plan:
    """Per resource: ``create``, ``update`` (field by field) or ``noop``. ``secrets`` are the
    operator's ``sync: false`` values by key (never shown)."""
    given = dict(secrets or {})
    out = Plan([], list(blueprint.skipped), actual=actual, blueprint=blueprint)
    for db in blueprint.databases:
        out.resources.append(_plan_simple("database", db.name, "postgres", actual.databases.get(db.name), db.body, db.warnings))
    for kv in blueprint.key_values:
        out.resources.append(_plan_simple("keyvalue", kv.name, "key_value", actual.key_values.get(kv.name), kv.body, kv.warnings))
    for group in blueprint.groups:
        out.resources.append(_plan_group(group, actual, given, out.missing))
    planned = {s.name for s in blueprint.services}
    for desired in dependency_order(blueprint.services):
        sp = _plan_service(desired, actual, planned, given, out.missing)
        if sp.action == "create" and not desired.has_source:
            out.blocked.append(f"{desired.name}: {NO_REPO}")
            sp.warnings.append(NO_REPO)
        out.services.append(sp)
    return out


def _plan_simple(kind: str, name: str, type_: str, current: Mapping[str, Any] | None, body: Mapping[str, Any], warnings: list[str]) -> ServicePlan:
    if current is None:
        changes = [Change(k, None, v) for k, v in body.items() if k != "name"]
        return ServicePlan(name, type_, "create", None, changes, list(warnings), create_body=dict(body), kind=kind)
    notes = list(warnings)
    for key in ("plan", "region", "version"):
        have = current.get(key)
        if key in body and have is not None and str(have) != str(body[key]):
            notes.append(f"{key}: is {have!r} on Render, render.yaml says {body[key]!r}; change it in Render")
    return ServicePlan(name, type_, "noop", str(current["id"]), [], notes, kind=kind)


def _plan_group(group: DesiredGroup, actual: Actual, given: Mapping[str, str], missing: list[str]) -> ServicePlan:
    current_group = actual.groups.get(group.name)
    current = {e["key"]: e["value"] for e in (current_group or {}).get("envVars") or []}
    changes, actions = _plan_env(group.name, group.env, current, actual, set(), given, missing, [])
    if current_group is None:
        return ServicePlan(group.name, "env_group", "create", None, changes, [], env_actions=actions, kind="envGroup")
    action: Action = "update" if actions else "noop"
    return ServicePlan(group.name, "env_group", action, str(current_group["id"]), changes, [], env_actions=actions, kind="envGroup")


def dependency_order(services: Sequence[DesiredService]) -> list[DesiredService]:
    """Referenced services first (stable); what remains in a cycle keeps file order."""
    names = {s.name for s in services}
    deps = {s.name: {e.ref.name for e in s.env if e.ref and e.ref.kind == "service" and e.ref.name in names} - {s.name} for s in services}
    ordered: list[DesiredService] = []
    remaining = list(services)
    while remaining:
        done = {s.name for s in ordered}
        ready = [s for s in remaining if deps[s.name] <= done] or remaining[:1]
        ordered.append(ready[0])
        remaining.remove(ready[0])
    return ordered


def _plan_service(desired: DesiredService, actual: Actual, planned: set[str], given: Mapping[str, str], missing: list[str]) -> ServicePlan:
    current = actual.services.get(desired.name)
    warnings = list(desired.warnings)
    if current is not None and current.get("type") != desired.type:
        warnings.append(f"a {current.get('type')} named {desired.name} exists; Render refuses a second service of that name")
        current = None
    current_env = actual.env.get(desired.name, {}) if current else {}
    env_changes, env_actions = _plan_env(desired.name, desired.env, current_env, actual, planned, given, missing, warnings)
    linked = _linked_groups(actual, current)
    links = [g for g in desired.groups if g not in linked]
    link_changes = [Change(f"envGroup.{g}", None, "linked") for g in links]
    if current is None:
        shown = [f for f in desired.fields] + [_FieldView(k, v) for k, v in desired.create_defaults.items() if k in ("repo", "branch")]
        changes = [Change(f.label, None, f.value) for f in shown] + env_changes + link_changes
        body = _create_body(desired)
        return ServicePlan(
            desired.name, desired.type, "create", None, changes, warnings, create_body=body, env_actions=env_actions, link_groups=links
        )
    changes, patch = _field_changes(desired, current, warnings)
    changes += env_changes + link_changes
    action: Action = "update" if (patch or env_actions or links) else "noop"
    return ServicePlan(
        desired.name, desired.type, action, str(current["id"]), changes, warnings, patch=patch or None, env_actions=env_actions, link_groups=links
    )


@dataclass(frozen=True)
class _FieldView:
    label: str
    value: Any


def _linked_groups(actual: Actual, service: Mapping[str, Any] | None) -> set[str]:
    if service is None:
        return set()
    sid = service["id"]
    return {name for name, g in actual.groups.items() if any(link.get("id") == sid for link in g.get("serviceLinks") or [])}


def _field_changes(desired: DesiredService, current: Mapping[str, Any], warnings: list[str]) -> tuple[list[Change], dict[str, Any]]:
    changes: list[Change] = []
    patch: dict[str, Any] = {}
    for spec in desired.fields:
        old = _get(current, spec.actual)
        if old == spec.value:
            continue
        if spec.patch is None:
            warnings.append(f"{spec.label}: is {old!r} on Render, render.yaml says {spec.value!r}; change it in Render")
            continue
        changes.append(Change(spec.label, old, spec.value))
        _put(patch, spec.patch, spec.value)
    return changes, patch


def _plan_env(
    owner: str,
    specs: Sequence[EnvSpec],
    current: Mapping[str, str],
    actual: Actual,
    planned: set[str],
    given: Mapping[str, str],
    missing: list[str],
    warnings: list[str],
) -> tuple[list[Change], list[EnvAction]]:
    changes: list[Change] = []
    actions: list[EnvAction] = []
    for spec in specs:
        label, old = f"env.{spec.key}", current.get(spec.key)
        shown_old = MASK if (old is not None and spec.masked) else old
        if spec.secret:
            if spec.key in given and given[spec.key] != old:
                changes.append(Change(label, shown_old, MASK))
                actions.append(EnvAction(spec.key, "value", value=given[spec.key]))
            elif spec.key not in given and old is None:
                missing.append(f"{owner}: {spec.key}")
            continue
        if spec.generate:
            if old is None:
                changes.append(Change(label, None, MASK))
                actions.append(EnvAction(spec.key, "generate"))
            continue
        if spec.ref is not None:
            if spec.ref.kind == "service" and spec.ref.name not in planned and spec.ref.name not in actual.services:
                warnings.append(f"env {spec.key}: service {spec.ref.name} is neither on Render nor in render.yaml")
                continue
            resolved = resolve(spec.ref, actual)
            if resolved is None or resolved != old:
                new = MASK if spec.masked else (resolved if resolved is not None else spec.ref.describe())
                changes.append(Change(label, shown_old, new))
                actions.append(EnvAction(spec.key, "ref", ref=spec.ref))
            continue
        if spec.value != old:
            changes.append(Change(label, shown_old, MASK if spec.masked else spec.value))
            actions.append(EnvAction(spec.key, "value", value=spec.value))
    return changes, actions


def _create_body(desired: DesiredService) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(json.dumps(desired.create_defaults))
    body.update({"type": desired.type, "name": desired.name})
    for spec in desired.fields:
        _put(body, spec.create, spec.value)
    return body


def _get(obj: Mapping[str, Any], path: Sequence[str]) -> Any:
    node: Any = obj
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _put(obj: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = obj
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


# ----- reading Render ------------------------------------------------------------------------


async def fetch_actual(client: RenderClient, blueprint: Blueprint, owner_id: str | None = None) -> Actual:
    """The resources render.yaml names, as they are on Render (with env and connection info)."""
    actual = Actual()
    names = {s.name for s in blueprint.services}
    names |= {e.ref.name for s in blueprint.services for e in s.env if e.ref and e.ref.kind == "service"}
    services = await client.list_services(name=sorted(names), owner_id=owner_id) if names else []
    for s in services:
        if s["name"] in names:
            actual.services[s["name"]] = s
            actual.env[s["name"]] = {e["key"]: e["value"] for e in await client.list_env_vars(s["id"])}
    if blueprint.databases:
        wanted = [d.name for d in blueprint.databases]
        for db in await client.list_postgres(name=wanted, owner_id=owner_id):
            if db["name"] in wanted:
                actual.databases[db["name"]] = db
                actual.connections[("database", db["name"])] = await client.postgres_connection_info(db["id"])
    if blueprint.key_values:
        wanted = [k.name for k in blueprint.key_values]
        for kv in await client.list_key_values(name=wanted, owner_id=owner_id):
            if kv["name"] in wanted:
                actual.key_values[kv["name"]] = kv
                actual.connections[("keyvalue", kv["name"])] = await client.key_value_connection_info(kv["id"])
    if blueprint.groups:
        wanted = [g.name for g in blueprint.groups]
        for group in await client.list_env_groups(name=wanted, owner_id=owner_id):
            if group["name"] in wanted:
                actual.groups[group["name"]] = await client.get_env_group(group["id"])
    return actual


async def plan_against(client: RenderClient, blueprint: Blueprint, owner_id: str | None = None, secrets: Mapping[str, str] | None = None) -> Plan:
    """``plan`` against what is on Render now."""
    return plan(blueprint, await fetch_actual(client, blueprint, owner_id), secrets)
