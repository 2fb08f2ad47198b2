"""Check HTTP exchanges against Render's published OpenAPI document.

Why: the client and the local fake must speak Render's API as Render documents it, so
tests record their traffic and check every request and every answer here (the fake can
also check its own traffic, see ``app.create_fake_render_app(validate_openapi=True)``).

The document is OpenAPI 3.0; it is translated once into JSON Schema:

- ``nullable: true`` adds ``null`` to the allowed types;
- ``oneOf`` is checked as ``anyOf``: Render's variants carry no discriminator and overlap
  (every web-service ``serviceDetails`` also satisfies the background-worker schema, and
  ``staticSiteDetailsPOST`` requires nothing), so a strict ``oneOf`` rejects Render's own
  answers;
- ``$ref`` may point anywhere in the document (Render also points into ``#/paths/...``), so
  references resolve against the whole translated document;
- Draft 4 semantics (the base of OpenAPI 3.0: siblings of ``$ref`` are ignored), with the
  ``date-time`` format checked.

The document is found at ``<project root>/../shared/render/openapi.json`` or under the
directory named by ``OPSLOOP_RENDER_REFERENCE_DIR``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from jsonschema import Draft4Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from opsloop.render.reference import reference_dir

_DOC_URI = "urn:opsloop:render-openapi"
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def openapi_path() -> Path:
    return reference_dir() / "openapi.json"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _pointer(*tokens: str | int) -> str:
    return "".join("/" + _escape(str(t)) for t in tokens)


def _translate(node: Any) -> Any:
    """OpenAPI 3.0 schema dialect -> JSON Schema (see the module docstring)."""
    if isinstance(node, list):
        return [_translate(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _translate(v) for k, v in node.items() if not (k == "nullable" and isinstance(v, bool))}
    if "oneOf" in out and isinstance(out["oneOf"], list):
        variants = out.pop("oneOf")
        if "anyOf" in out:
            out = {"allOf": [out, {"anyOf": variants}]}
        else:
            out["anyOf"] = variants
    if node.get("nullable") is True:
        out = _allow_null(out)
    return out


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and "$ref" not in schema:
        schema = {**schema, "type": [kind, "null"]}
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        return schema
    return {"anyOf": [schema, {"type": "null"}]}


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("date-time")
    def _is_datetime(value: object) -> bool:
        return not isinstance(value, str) or bool(_RFC3339.match(value))

    return checker


@dataclass(frozen=True)
class Operation:
    """One documented (method, path template) with its merged, resolved parameters."""

    method: str
    template: str
    pointer: str
    spec: Mapping[str, Any]
    parameters: tuple[tuple[str, Mapping[str, Any]], ...]  # (pointer, parameter)


class OpenAPIChecker:
    """Validates requests and responses against one OpenAPI 3.0 document."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = _translate(dict(document))
        servers = self.document.get("servers") or [{"url": ""}]
        self.base_path = urlsplit(servers[0]["url"]).path.rstrip("/")
        resource = Resource.from_contents(self.document, default_specification=DRAFT4)
        self._registry: Registry = Registry().with_resource(_DOC_URI, resource)
        self._formats = _format_checker()
        self._routes = self._compile_routes()
        self._validators: dict[str, Draft4Validator] = {}

    @classmethod
    def load(cls, path: Path | None = None) -> OpenAPIChecker:
        """Load (and cache) the checker for ``path`` or the reference document."""
        return _load_cached(str(path or openapi_path()))

    # ----- document navigation -------------------------------------------------------

    def _node(self, pointer: str) -> Any:
        node: Any = self.document
        for raw in pointer.split("/")[1:]:
            token = raw.replace("%7B", "{").replace("%7D", "}").replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        return node

    def _resolve(self, pointer: str) -> tuple[str, Any]:
        """Follow ``$ref`` chains from ``pointer``; return the final pointer and node."""
        node = self._node(pointer)
        for _ in range(32):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return pointer, node
            ref = node["$ref"]
            if not ref.startswith("#"):
                raise ValueError(f"external $ref not supported: {ref}")
            pointer = ref[1:]
            node = self._node(pointer)
        raise ValueError(f"$ref cycle at {pointer}")

    def _compile_routes(self) -> list[tuple[int, re.Pattern[str], str]]:
        routes = []
        for template in self.document.get("paths", {}):
            parts = template.strip("/").split("/")
            literal = sum(1 for p in parts if not p.startswith("{"))
            regex = "^" + "".join("/[^/]+" if p.startswith("{") else "/" + re.escape(p) for p in parts) + "$"
            routes.append((literal, re.compile(regex), template))
        routes.sort(key=lambda r: -r[0])
        return routes

    def _strip_base(self, path: str) -> str:
        if self.base_path and (path == self.base_path or path.startswith(self.base_path + "/")):
            return path[len(self.base_path) :] or "/"
        return path

    def operation(self, method: str, path: str) -> Operation | None:
        """The documented operation for a concrete request path, or None."""
        path = self._strip_base(path)
        for _, regex, template in self._routes:
            if not regex.match(path):
                continue
            item_ptr = _pointer("paths", template)
            item = self._node(item_ptr)
            if method.lower() not in item:
                continue
            op_ptr = item_ptr + _pointer(method.lower())
            params = self._parameters(item_ptr, op_ptr)
            return Operation(method.upper(), template, op_ptr, self._node(op_ptr), params)
        return None

    def _parameters(self, item_ptr: str, op_ptr: str) -> tuple[tuple[str, Mapping[str, Any]], ...]:
        merged: dict[tuple[str, str], tuple[str, Mapping[str, Any]]] = {}
        for owner in (item_ptr, op_ptr):
            for index, _ in enumerate(self._node(owner).get("parameters", [])):
                ptr, param = self._resolve(owner + _pointer("parameters", index))
                merged[(param["in"], param["name"])] = (ptr, param)
        return tuple(merged.values())

    # ----- schema validation ---------------------------------------------------------

    def _validator(self, schema_pointer: str) -> Draft4Validator:
        validator = self._validators.get(schema_pointer)
        if validator is None:
            validator = Draft4Validator(
                {"$ref": f"{_DOC_URI}#{schema_pointer}"},
                registry=self._registry,
                format_checker=self._formats,
            )
            self._validators[schema_pointer] = validator
        return validator

    def _schema_errors(self, schema_pointer: str, value: Any, where: str) -> list[str]:
        errors = sorted(self._validator(schema_pointer).iter_errors(value), key=lambda e: list(e.absolute_path))
        return [f"{where}{_json_path(e.absolute_path)}: {_short(e)}" for e in errors]

    # ----- requests ------------------------------------------------------------------

    def check_request(
        self,
        method: str,
        path: str,
        query: str | Sequence[tuple[str, str]] = (),
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Problems with one request (empty list when it conforms)."""
        op = self.operation(method, path)
        if op is None:
            return [f"{method.upper()} {path}: not an operation of the document"]
        pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else list(query)
        problems = self._check_query(op, pairs)
        problems += self._check_request_body(op, body or b"")
        if headers is not None:
            problems += self._check_auth(headers)
        return [f"{op.method} {path}: {p}" for p in problems]

    def _check_query(self, op: Operation, pairs: list[tuple[str, str]]) -> list[str]:
        documented = {p["name"]: (ptr, p) for ptr, p in op.parameters if p["in"] == "query"}
        given: dict[str, list[str]] = {}
        for name, value in pairs:
            given.setdefault(name, []).append(value)
        problems = [f"query parameter {n!r} is not documented" for n in given if n not in documented]
        for name, (ptr, param) in documented.items():
            if name not in given:
                if param.get("required"):
                    problems.append(f"query parameter {name!r} is required")
                continue
            problems += self._check_query_value(ptr, param, given[name])
        return problems

    def _check_query_value(self, ptr: str, param: Mapping[str, Any], raw: list[str]) -> list[str]:
        schema_ptr, schema = self._resolve(ptr + "/schema")
        name = param["name"]
        if schema.get("type") == "array":
            explode = param.get("explode", param.get("style", "form") == "form")
            values = raw if explode else [v for item in raw for v in item.split(",")]
            _, item_schema = self._resolve(schema_ptr + "/items")
            value: Any = [_coerce(item_schema, v) for v in values]
        else:
            if len(raw) > 1:
                return [f"query parameter {name!r} given {len(raw)} times"]
            value = _coerce(schema, raw[0])
        return self._schema_errors(schema_ptr, value, f"query {name}")

    def _check_request_body(self, op: Operation, body: bytes) -> list[str]:
        spec = op.spec.get("requestBody")
        if spec is None:
            return ["the operation takes no body"] if body.strip() else []
        body_ptr, body_spec = self._resolve(op.pointer + "/requestBody")
        content = body_spec.get("content", {})
        if "application/json" not in content:
            return []
        if not body.strip():
            return ["request body is required"] if body_spec.get("required") else []
        try:
            value = json.loads(body)
        except ValueError as exc:
            return [f"request body is not JSON: {exc}"]
        schema_ptr = body_ptr + _pointer("content", "application/json", "schema")
        return self._schema_errors(schema_ptr, value, "request body")

    def _check_auth(self, headers: Mapping[str, str]) -> list[str]:
        lowered = {k.lower(): v for k, v in headers.items()}
        schemes = {name for entry in self.document.get("security", []) for name in entry}
        if "BearerAuth" in schemes and not lowered.get("authorization", "").startswith("Bearer "):
            return ["Authorization: Bearer <token> header missing"]
        return []

    # ----- responses -----------------------------------------------------------------

    def check_response(self, method: str, path: str, status: int, body: bytes, content_type: str | None = None) -> list[str]:
        """Problems with one answer to ``method path`` (empty list when it conforms)."""
        op = self.operation(method, path)
        if op is None:
            return [f"{method.upper()} {path}: not an operation of the document"]
        problems = self._check_response(op, status, body, content_type)
        return [f"{op.method} {path} -> {status}: {p}" for p in problems]

    def _check_response(self, op: Operation, status: int, body: bytes, content_type: str | None) -> list[str]:
        responses = op.spec.get("responses", {})
        key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
        if key is None:
            return [f"status {status} is not documented"]
        resp_ptr, resp = self._resolve(op.pointer + _pointer("responses", key))
        content = resp.get("content") or {}
        if "application/json" not in content:
            return [] if not body.strip() else ["documented without a body, but a body was sent"]
        if content_type is not None and not content_type.startswith("application/json"):
            return [f"content type {content_type!r} is not application/json"]
        try:
            value = json.loads(body)
        except ValueError as exc:
            return [f"body is not JSON: {exc}"]
        schema_ptr = resp_ptr + _pointer("content", "application/json", "schema")
        return self._schema_errors(schema_ptr, value, "body")

    # ----- httpx convenience ---------------------------------------------------------

    def check_exchange(self, request: httpx.Request, response: httpx.Response) -> list[str]:
        """Problems with one recorded httpx exchange (the response must have been read)."""
        method, path = request.method, request.url.path
        query = request.url.query.decode() if isinstance(request.url.query, bytes) else request.url.query
        problems = self.check_request(method, path, query, request.content, dict(request.headers))
        problems += self.check_response(method, path, response.status_code, response.content, response.headers.get("content-type"))
        return problems


@functools.lru_cache(maxsize=4)
def _load_cached(path: str) -> OpenAPIChecker:
    with open(path, encoding="utf-8") as handle:
        return OpenAPIChecker(json.load(handle))


def _coerce(schema: Mapping[str, Any], raw: str) -> Any:
    """Query strings carry text; turn it into the schema's scalar type when it parses."""
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return float(raw)
    except ValueError:
        return raw
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw


def _json_path(parts: Iterable[Any]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _short(error: ValidationError) -> str:
    """The error, and for anyOf/oneOf failures the closest variant's own error."""
    message = str(error.message)
    if len(message) > 200:
        message = message[:197] + "..."
    if error.context:
        variants: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            variants.setdefault(sub.schema_path[0] if sub.schema_path else None, []).append(sub)
        best = best_match(min(variants.values(), key=len))
        message += f" (closest: {_json_path(best.relative_path) or '.'}: {_short(best)})"
    return message
