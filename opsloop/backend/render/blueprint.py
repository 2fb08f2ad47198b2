"""render.yaml (Render's Blueprint format) as desired state: load, plan, apply.

Why: opsloop's own deployment is described once, in Render's own format (so Render's
Blueprint sync can read the same file), and opsloop shows what would change and carries
it out through the Render API, where every change is visible and recorded by the caller.

Rules (what "desired state" means here):

- Services only. ``databases``, env groups, Key Value instances and ``projects`` are
  reported as skipped: Render's Blueprint sync manages them, the services API cannot.
- Only fields written in render.yaml are managed; a field left out is left as it is.
  Fields the API cannot change (region, instance count) are reported, not changed.
- Env vars are merged: keys on Render that render.yaml does not name are left alone.
- ``sync: false`` keys are secrets: never sent (no placeholder values); the plan only says
  when one still needs a value on Render. ``generateValue: true`` keys are generated once.
- Values shown in a plan are masked as ``"***"`` for secrets, generated values and keys
  whose names look secret (``*PASS*``, ``*TOKEN*``, ``*_KEY``, ...).
- ``fromService`` resolves from the referenced service: ``host`` -> its slug (Render's
  internal host name), ``port`` -> 10000, ``hostport`` -> ``slug:10000``, ``envVarKey`` ->
  that service's variable. Services are created in dependency order; a reference that
  cannot be resolved yet (a cycle) is set as soon as its target exists.
- ``fromDatabase`` / ``fromGroup`` cannot be resolved through the services API: noted in the
  plan when the key is missing on Render, never pushed.
- ``apply`` runs the plan in order, stops at the first failure and reports what was done.
  With ``deploy=True`` an updated service is redeployed so the change takes effect (a new
  service deploys by itself).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator

from .client import RenderAPIError, RenderClient
from .openapi_check import reference_dir

MASK = "***"
INTERNAL_PORT = "10000"
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|PRIVATE|CREDENTIAL|DSN|DATABASE_URL|(^|_)KEY($|_)", re.IGNORECASE)
_YAML_TYPES = {"web": "web_service", "pserv": "private_service", "worker": "background_worker", "cron": "cron_job"}
_REF_TYPES = {
    "web": {"web_service", "static_site"},
    "static": {"static_site"},
    "pserv": {"private_service"},
    "worker": {"background_worker"},
    "cron": {"cron_job"},
}
_NOT_SERVICES = ("databases", "envVarGroups", "projects", "ungrouped")

Action = Literal["create", "update", "noop"]


class BlueprintError(ValueError):
    """render.yaml cannot be used (unreadable, invalid against Render's schema, ...)."""

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems = list(problems)
        detail = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(message + detail)


# ----- desired state ----------------------------------------------------------------------


@dataclass(frozen=True)
class FromService:
    """A ``fromService`` reference."""

    name: str
    type: str
    property: str | None = None
    env_var_key: str | None = None

    def describe(self) -> str:
        return f"<from service {self.name}: {self.env_var_key or self.property}>"


@dataclass(frozen=True)
class EnvSpec:
    """One env var of render.yaml."""

    key: str
    value: str | None = None
    generate: bool = False
    secret: bool = False  # sync: false
    from_service: FromService | None = None
    external: str | None = None  # fromDatabase / fromGroup, described

    @property
    def masked(self) -> bool:
        return self.secret or self.generate or self.external is not None or bool(_SECRET_NAME.search(self.key))


@dataclass(frozen=True)
class FieldSpec:
    """A managed field: where it is in Render's service, the create body and the PATCH."""

    label: str
    actual: tuple[str, ...]
    create: tuple[str, ...]
    patch: tuple[str, ...] | None
    value: Any


@dataclass
class DesiredService:
    name: str
    type: str  # Render API type: static_site, web_service, ...
    fields: list[FieldSpec]
    env: list[EnvSpec]
    create_defaults: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Blueprint:
    services: list[DesiredService]
    skipped: list[str]
    path: Path | None = None


def schema_path() -> Path:
    return reference_dir() / "render-yaml.schema.json"


def validate_render_yaml(data: Any, schema_file: Path | None = None) -> list[str]:
    """Problems of a parsed render.yaml against Render's JSON Schema (empty: valid)."""
    with open(schema_file or schema_path(), encoding="utf-8") as handle:
        schema = json.load(handle)
    validator = Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


def load_blueprint(
    path: str | Path,
    *,
    validate: bool = True,
    schema_file: Path | None = None,
    repo: str | None = None,
    branch: str | None = None,
) -> Blueprint:
    """Read render.yaml; check it against Render's schema when the schema is available.

    ``repo``/``branch`` stand for "the repository holding render.yaml" (what Render's own
    Blueprint sync uses) for services that do not name one; creating a service through the
    API needs a repository.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BlueprintError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise BlueprintError(f"{path}: a Blueprint is a mapping with services: [...]")
    schema = schema_file or schema_path()
    if validate and schema.exists():
        problems = validate_render_yaml(data, schema)
        if problems:
            raise BlueprintError(f"{path} is not valid against Render's Blueprint schema", problems)
    blueprint = blueprint_from_dict(data, repo=repo, branch=branch)
    blueprint.path = path
    return blueprint


def blueprint_from_dict(data: Mapping[str, Any], *, repo: str | None = None, branch: str | None = None) -> Blueprint:
    services: list[DesiredService] = []
    skipped = [
        f"{section}.{_name(item)}: managed by Render's Blueprint sync, not by opsloop apply"
        for section in _NOT_SERVICES
        for item in _items(data.get(section))
    ]
    for raw in data.get("services") or []:
        if raw.get("type") in ("redis", "keyvalue"):
            skipped.append(f"services.{raw.get('name')}: Key Value is managed by Render's Blueprint sync")
            continue
        services.append(_desired(raw, repo, branch))
    names = [s.name for s in services]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise BlueprintError("service names must be unique", [f"duplicate: {n}" for n in duplicates])
    return Blueprint(services=services, skipped=skipped)


def _items(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


def _name(item: Any) -> str:
    return str(item.get("name", "?")) if isinstance(item, dict) else "?"


# ----- render.yaml -> API fields ------------------------------------------------------------


def _api_type(raw: Mapping[str, Any]) -> str:
    if raw.get("runtime") == "static" or raw.get("env") == "static":
        return "static_site"
    kind = _YAML_TYPES.get(str(raw.get("type")))
    if kind is None:
        raise BlueprintError(f"service {raw.get('name')}: unsupported type {raw.get('type')!r}")
    return kind


def _desired(raw: Mapping[str, Any], repo: str | None, branch: str | None) -> DesiredService:
    kind = _api_type(raw)
    name = str(raw["name"])
    fields, handled = _common_fields(raw, repo, branch)
    if kind == "static_site":
        more, more_handled = _static_fields(raw)
    else:
        more, more_handled = _server_fields(raw, kind)
    fields += more
    handled |= more_handled | {"type", "name", "runtime", "envVars"}
    warnings = [f"{key}: not managed by opsloop apply" for key in raw if key not in handled]
    if raw.get("runtime") == "image":
        warnings.append("image-backed services cannot be created by opsloop apply")
    env = [_env_spec(name, item) for item in raw.get("envVars") or []]
    return DesiredService(name, kind, fields, [e for e in env if e is not None], _create_defaults(raw, kind), warnings)


def _field(
    label: str, path: tuple[str, ...], value: Any, *, create: tuple[str, ...] | None = None, patch: tuple[str, ...] | Literal[False] | None = False
) -> FieldSpec:
    """A field at ``path`` in all three shapes unless told otherwise (patch=None: immutable)."""
    return FieldSpec(label, path, create or path, path if patch is False else patch, value)


def _common_fields(raw: Mapping[str, Any], repo: str | None, branch: str | None) -> tuple[list[FieldSpec], set[str]]:
    fields: list[FieldSpec] = []
    repo_value = raw.get("repo") or repo
    if repo_value:
        fields.append(_field("repo", ("repo",), str(repo_value)))
    branch_value = raw.get("branch") or branch
    if branch_value:
        fields.append(_field("branch", ("branch",), str(branch_value)))
    if "rootDir" in raw:
        fields.append(_field("rootDir", ("rootDir",), str(raw["rootDir"])))
    if "autoDeploy" in raw:
        fields.append(_field("autoDeploy", ("autoDeploy",), "yes" if raw["autoDeploy"] else "no"))
    if "buildFilter" in raw:
        bf = raw["buildFilter"] or {}
        value = {"paths": list(bf.get("paths") or []), "ignoredPaths": list(bf.get("ignoredPaths") or [])}
        fields.append(_field("buildFilter", ("buildFilter",), value))
    return fields, {"repo", "branch", "rootDir", "autoDeploy", "buildFilter"}


def _static_fields(raw: Mapping[str, Any]) -> tuple[list[FieldSpec], set[str]]:
    fields = []
    if "buildCommand" in raw:
        fields.append(_field("buildCommand", ("serviceDetails", "buildCommand"), str(raw["buildCommand"])))
    if "staticPublishPath" in raw:
        fields.append(_field("staticPublishPath", ("serviceDetails", "publishPath"), str(raw["staticPublishPath"])))
    previews = raw.get("previews") or {}
    if "generation" in previews:
        fields.append(_field("previews.generation", ("serviceDetails", "previews", "generation"), previews["generation"]))
    if "pullRequestPreviewsEnabled" in raw:
        value = "yes" if raw["pullRequestPreviewsEnabled"] else "no"
        fields.append(_field("pullRequestPreviewsEnabled", ("serviceDetails", "pullRequestPreviewsEnabled"), value))
    handled = {"buildCommand", "staticPublishPath", "pullRequestPreviewsEnabled"} | ({"previews"} if set(previews) <= {"generation"} else set())
    return fields, handled


def _server_fields(raw: Mapping[str, Any], kind: str) -> tuple[list[FieldSpec], set[str]]:
    details = ("serviceDetails",)
    esd = ("serviceDetails", "envSpecificDetails")
    fields: list[FieldSpec] = []
    runtime = raw.get("runtime")
    if runtime and runtime != "image":
        fields.append(_field("runtime", (*details, "runtime"), runtime))
    if "plan" in raw:
        fields.append(_field("plan", (*details, "plan"), str(raw["plan"]).replace(" ", "_")))
    if "region" in raw:
        fields.append(_field("region", (*details, "region"), raw["region"], patch=None))
    if "numInstances" in raw and kind != "cron_job":
        fields.append(_field("numInstances", (*details, "numInstances"), raw["numInstances"], patch=None))
    if "healthCheckPath" in raw and kind == "web_service":
        fields.append(_field("healthCheckPath", (*details, "healthCheckPath"), raw["healthCheckPath"]))
    if "maxShutdownDelaySeconds" in raw and kind != "cron_job":
        fields.append(_field("maxShutdownDelaySeconds", (*details, "maxShutdownDelaySeconds"), raw["maxShutdownDelaySeconds"]))
    if "schedule" in raw and kind == "cron_job":
        fields.append(_field("schedule", (*details, "schedule"), raw["schedule"]))
    commands = ("buildCommand", "startCommand") if runtime != "docker" else ("dockerCommand", "dockerContext", "dockerfilePath")
    for key in commands:
        if key in raw:
            fields.append(_field(key, (*esd, key), str(raw[key])))
    if "preDeployCommand" in raw and kind != "cron_job":
        fields.append(
            _field(
                "preDeployCommand",
                (*esd, "preDeployCommand"),
                str(raw["preDeployCommand"]),
                create=(*details, "preDeployCommand"),
                patch=(*details, "preDeployCommand"),
            )
        )
    handled = {
        "plan",
        "region",
        "numInstances",
        "healthCheckPath",
        "maxShutdownDelaySeconds",
        "schedule",
        "buildCommand",
        "startCommand",
        "dockerCommand",
        "dockerContext",
        "dockerfilePath",
        "preDeployCommand",
    }
    return fields, handled


def _create_defaults(raw: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """What Render requires on create that render.yaml may leave out."""
    if kind == "static_site":
        return {}
    if raw.get("runtime") not in ("docker", "image"):
        return {"serviceDetails": {"envSpecificDetails": {"buildCommand": "", "startCommand": ""}}}
    return {}


def _env_spec(service: str, item: Mapping[str, Any]) -> EnvSpec | None:
    if "fromGroup" in item:
        return None  # a whole group, not a key: skipped with the group
    key = str(item["key"])
    if "fromDatabase" in item:
        ref = item["fromDatabase"]
        return EnvSpec(key, external=f"database {ref['name']} ({ref['property']})")
    if "fromService" in item:
        ref = item["fromService"]
        if ref.get("type") in ("redis", "keyvalue", "dpg"):
            return EnvSpec(key, external=f"{ref['type']} {ref['name']} ({ref.get('property')})")
        return EnvSpec(key, from_service=FromService(ref["name"], ref["type"], ref.get("property"), ref.get("envVarKey")))
    if item.get("sync") is False:
        return EnvSpec(key, secret=True)
    if item.get("generateValue"):
        return EnvSpec(key, generate=True)
    if "value" not in item:
        raise BlueprintError(f"service {service}: env var {key} has no value, generateValue, sync: false or reference")
    return EnvSpec(key, value=str(item["value"]))


# ----- plan ---------------------------------------------------------------------------------


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
    """What apply does with one env key."""

    key: str
    kind: Literal["value", "generate", "ref"]
    value: str | None = None
    ref: FromService | None = None


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "action": self.action,
            "serviceId": self.service_id,
            "changes": [c.to_dict() for c in self.changes],
            "warnings": list(self.warnings),
        }


@dataclass
class Plan:
    services: list[ServicePlan]
    skipped: list[str]
    known_services: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # by name
    known_env: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)  # by service name

    @property
    def noop(self) -> bool:
        return all(s.action == "noop" for s in self.services)

    def to_dict(self) -> dict[str, Any]:
        return {"noop": self.noop, "services": [s.to_dict() for s in self.services], "skipped": list(self.skipped)}


def plan(
    blueprint: Blueprint,
    actual_services: Sequence[Mapping[str, Any]],
    actual_env: Mapping[str, Any],
) -> Plan:
    """Per service: ``create``, ``update`` (field by field) or ``noop``.

    ``actual_services`` are Render's service objects; ``actual_env`` maps a service id to
    its variables (``{key: value}`` or Render's ``[{key, value}]``).
    """
    by_name = {str(s["name"]): dict(s) for s in actual_services}
    env_by_name = {name: _env_dict(actual_env.get(s["id"])) for name, s in by_name.items()}
    planned = {d.name for d in blueprint.services}
    plans = [_plan_service(d, by_name, env_by_name, planned) for d in _dependency_order(blueprint.services)]
    return Plan(plans, list(blueprint.skipped), by_name, env_by_name)


def _env_dict(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    return {str(e["key"]): str(e["value"]) for e in value}


def _dependency_order(services: Sequence[DesiredService]) -> list[DesiredService]:
    """Referenced services first (stable); what remains in a cycle keeps file order."""
    names = {s.name for s in services}
    deps = {s.name: {e.from_service.name for e in s.env if e.from_service and e.from_service.name in names} - {s.name} for s in services}
    ordered: list[DesiredService] = []
    remaining = list(services)
    while remaining:
        done = {s.name for s in ordered}
        ready = [s for s in remaining if deps[s.name] <= done] or remaining[:1]
        ordered.append(ready[0])
        remaining.remove(ready[0])
    return ordered


def _plan_service(
    desired: DesiredService,
    by_name: Mapping[str, dict[str, Any]],
    env_by_name: Mapping[str, dict[str, str]],
    planned: set[str],
) -> ServicePlan:
    actual = by_name.get(desired.name)
    warnings = list(desired.warnings)
    if actual is not None and actual.get("type") != desired.type:
        warnings.append(f"a {actual.get('type')} named {desired.name} exists; Render refuses a second service of that name")
        actual = None
    current_env = env_by_name.get(desired.name, {}) if actual else {}
    env_changes, env_actions, env_warnings = _plan_env(desired, current_env, by_name, env_by_name, planned)
    warnings += env_warnings
    if actual is None:
        changes = [Change(f.label, None, f.value) for f in desired.fields] + env_changes
        return ServicePlan(desired.name, desired.type, "create", None, changes, warnings, create_body=_create_body(desired), env_actions=env_actions)
    changes, patch = _field_changes(desired, actual, warnings)
    changes += env_changes
    action: Action = "update" if (patch or env_actions) else "noop"
    return ServicePlan(desired.name, desired.type, action, str(actual["id"]), changes, warnings, patch=patch or None, env_actions=env_actions)


def _field_changes(desired: DesiredService, actual: Mapping[str, Any], warnings: list[str]) -> tuple[list[Change], dict[str, Any]]:
    changes: list[Change] = []
    patch: dict[str, Any] = {}
    for spec in desired.fields:
        old = _get(actual, spec.actual)
        if old == spec.value:
            continue
        if spec.patch is None:
            warnings.append(f"{spec.label}: is {old!r} on Render, render.yaml says {spec.value!r}; change it in Render")
            continue
        changes.append(Change(spec.label, old, spec.value))
        _put(patch, spec.patch, spec.value)
    return changes, patch


def _plan_env(
    desired: DesiredService,
    current: Mapping[str, str],
    by_name: Mapping[str, dict[str, Any]],
    env_by_name: Mapping[str, dict[str, str]],
    planned: set[str],
) -> tuple[list[Change], list[EnvAction], list[str]]:
    changes: list[Change] = []
    actions: list[EnvAction] = []
    warnings: list[str] = []
    for spec in desired.env:
        label, old = f"env.{spec.key}", current.get(spec.key)
        shown_old = MASK if (old is not None and spec.masked) else old
        if spec.secret or spec.external:
            if old is None:
                source = spec.external or "sync: false"
                warnings.append(f"env {spec.key}: no value on Render yet ({source}); set it in the Render dashboard")
            continue
        if spec.generate:
            if old is None:
                changes.append(Change(label, None, MASK))
                actions.append(EnvAction(spec.key, "generate"))
            continue
        if spec.from_service is not None:
            resolved = _resolve(spec.from_service, by_name, env_by_name)
            if resolved is None and spec.from_service.name not in planned:
                warnings.append(f"env {spec.key}: service {spec.from_service.name} is neither on Render nor in render.yaml")
                continue
            if resolved is None or resolved != old:
                new = MASK if spec.masked else (resolved if resolved is not None else spec.from_service.describe())
                changes.append(Change(label, shown_old, new))
                actions.append(EnvAction(spec.key, "ref", ref=spec.from_service))
            continue
        if spec.value != old:
            changes.append(Change(label, shown_old, MASK if spec.masked else spec.value))
            actions.append(EnvAction(spec.key, "value", value=spec.value))
    return changes, actions, warnings


def _resolve(ref: FromService, by_name: Mapping[str, Mapping[str, Any]], env_by_name: Mapping[str, Mapping[str, str]]) -> str | None:
    """The value of a fromService reference, or None while its target does not exist."""
    target = by_name.get(ref.name)
    if target is None or target.get("type") not in _REF_TYPES.get(ref.type, {target.get("type")}):
        return None
    if ref.env_var_key:
        return env_by_name.get(ref.name, {}).get(ref.env_var_key)
    slug = str(target.get("slug") or target["name"])
    values = {"host": slug, "port": INTERNAL_PORT, "hostport": f"{slug}:{INTERNAL_PORT}"}
    if ref.property not in values:
        raise BlueprintError(f"fromService {ref.name}: property {ref.property!r} is not supported")
    return values[ref.property]


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


# ----- apply --------------------------------------------------------------------------------


@dataclass
class StepResult:
    service: str
    action: str
    ok: bool
    service_id: str | None = None
    detail: str = ""
    deploy_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "action": self.action,
            "ok": self.ok,
            "serviceId": self.service_id,
            "detail": self.detail,
            "deployId": self.deploy_id,
        }


@dataclass
class ApplyResult:
    steps: list[StepResult] = field(default_factory=list)
    not_attempted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and not self.not_attempted

    @property
    def failed(self) -> StepResult | None:
        return next((s for s in self.steps if not s.ok), None)

    def to_dict(self) -> dict[str, Any]:
        failed = self.failed
        return {
            "ok": self.ok,
            "steps": [s.to_dict() for s in self.steps],
            "failed": failed.to_dict() if failed else None,
            "notAttempted": list(self.not_attempted),
        }


@dataclass
class _Deferred:
    service: str
    service_id: str
    key: str
    ref: FromService


class _Applier:
    """Carries one plan out; keeps what it learns (new services) for later references."""

    def __init__(self, client: RenderClient, plan_: Plan, owner_id: str, deploy: bool) -> None:
        self.client = client
        self.plan = plan_
        self.owner_id = owner_id
        self.deploy = deploy
        self.services = dict(plan_.known_services)
        self.env = {k: dict(v) for k, v in plan_.known_env.items()}
        self.deferred: list[_Deferred] = []
        self.result = ApplyResult()

    async def run(self) -> ApplyResult:
        for index, sp in enumerate(self.plan.services):
            try:
                self.result.steps.append(await self._step(sp))
                await self._settle_deferred(final=False)
            except (RenderAPIError, BlueprintError) as exc:
                self.result.steps.append(StepResult(sp.name, sp.action, False, sp.service_id, str(exc)))
                self.result.not_attempted = [s.name for s in self.plan.services[index + 1 :]]
                return self.result
        try:
            await self._settle_deferred(final=True)
        except (RenderAPIError, BlueprintError) as exc:
            self.result.steps.append(StepResult("references", "env", False, None, str(exc)))
        return self.result

    async def _step(self, sp: ServicePlan) -> StepResult:
        if sp.action == "noop":
            return StepResult(sp.name, "noop", True, sp.service_id, "up to date")
        if sp.action == "create":
            return await self._create(sp)
        return await self._update(sp)

    async def _value_of(self, ref: FromService) -> str | None:
        if ref.env_var_key and ref.name in self.services and ref.name not in self.env:
            target_id = str(self.services[ref.name]["id"])
            self.env[ref.name] = {e["key"]: e["value"] for e in await self.client.list_env_vars(target_id)}
        return _resolve(ref, self.services, self.env)

    async def _create(self, sp: ServicePlan) -> StepResult:
        body = json.loads(json.dumps(sp.create_body or {}))
        body["ownerId"] = self.owner_id
        env_vars, later = await self._env_entries(sp.env_actions)
        if env_vars:
            body["envVars"] = env_vars
        created = await self.client.create_service(body)
        service = created["service"]
        self.services[sp.name] = service
        self.env.pop(sp.name, None)
        self.deferred += [_Deferred(sp.name, str(service["id"]), key, ref) for key, ref in later]
        detail = f"created; {len(later)} reference(s) to set later" if later else "created"
        return StepResult(sp.name, "create", True, str(service["id"]), detail, created.get("deployId"))

    async def _update(self, sp: ServicePlan) -> StepResult:
        assert sp.service_id is not None
        done = []
        if sp.patch:
            self.services[sp.name] = await self.client.update_service(sp.service_id, sp.patch)
            done.append("fields")
        if sp.env_actions:
            current = {e["key"]: e["value"] for e in await self.client.list_env_vars(sp.service_id)}
            entries, later = await self._env_entries(sp.env_actions)
            merged = {k: {"key": k, "value": v} for k, v in current.items()}
            merged.update({e["key"]: e for e in entries})
            await self.client.replace_env_vars(sp.service_id, list(merged.values()))
            self.env.pop(sp.name, None)
            self.deferred += [_Deferred(sp.name, sp.service_id, key, ref) for key, ref in later]
            done.append("env")
        deploy_id = await self._redeploy(sp.service_id) if self.deploy else None
        return StepResult(sp.name, "update", True, sp.service_id, "updated " + " and ".join(done), deploy_id)

    async def _env_entries(self, actions: Sequence[EnvAction]) -> tuple[list[dict[str, Any]], list[tuple[str, FromService]]]:
        entries: list[dict[str, Any]] = []
        later: list[tuple[str, FromService]] = []
        for action in actions:
            if action.kind == "value":
                entries.append({"key": action.key, "value": action.value})
            elif action.kind == "generate":
                entries.append({"key": action.key, "generateValue": True})
            else:
                assert action.ref is not None
                value = await self._value_of(action.ref)
                if value is None:
                    later.append((action.key, action.ref))
                else:
                    entries.append({"key": action.key, "value": value})
        return entries, later

    async def _settle_deferred(self, *, final: bool) -> None:
        """Set references whose target now exists; at the end, all must be set."""
        pending = []
        touched: set[str] = set()
        for item in self.deferred:
            value = await self._value_of(item.ref)
            if value is None:
                if final:
                    raise BlueprintError(f"env {item.key} of {item.service}: {item.ref.name} still does not exist")
                pending.append(item)
                continue
            await self.client.set_env_var(item.service_id, item.key, value)
            self.result.steps.append(StepResult(item.service, "env", True, item.service_id, f"set {item.key} from {item.ref.name}"))
            touched.add(item.service_id)
        self.deferred = pending
        if self.deploy:
            for service_id in sorted(touched):
                await self._redeploy(service_id)

    async def _redeploy(self, service_id: str) -> str | None:
        deploy = await self.client.trigger_deploy(service_id)
        return str(deploy["id"]) if deploy else None


async def apply(client: RenderClient, plan_: Plan, owner_id: str, *, deploy: bool = True) -> ApplyResult:
    """Carry a plan out in order; stop at the first failure and report what was done."""
    return await _Applier(client, plan_, owner_id, deploy).run()


async def fetch_actual(
    client: RenderClient, blueprint: Blueprint, owner_id: str | None = None
) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """The services render.yaml names (and references) as they are on Render, with env."""
    names = {s.name for s in blueprint.services}
    names |= {e.from_service.name for s in blueprint.services for e in s.env if e.from_service}
    services = [s for s in await client.list_services(name=sorted(names), owner_id=owner_id) if s["name"] in names]
    env = {s["id"]: {e["key"]: e["value"] for e in await client.list_env_vars(s["id"])} for s in services}
    return services, env


async def plan_against(client: RenderClient, blueprint: Blueprint, owner_id: str | None = None) -> Plan:
    """``plan`` against what is on Render now."""
    services, env = await fetch_actual(client, blueprint, owner_id)
    return plan(blueprint, services, env)
