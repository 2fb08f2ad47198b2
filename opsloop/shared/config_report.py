"""The configuration report: every process (the app and each agent) checks its environment
against `infra/config.schema.json` at boot and refuses to start naming each bad key.

Shared by the app and the agents (the agents never import the app's `Settings`). Reports never
carry a value, only key names and rule names, so they are safe to print, log and return over HTTP.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # opsloop/shared/ -> the checkout
SCHEMA_PATH = PROJECT_ROOT / "infra" / "config.schema.json"
ENV_FILE = PROJECT_ROOT / ".env"

SERVICES = ("app", "echo-agent")


@functools.cache
def load_schema() -> dict[str, Any]:
    """The config schema as a dict (read once)."""
    return json.loads(SCHEMA_PATH.read_text())


def raw_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The key/value pairs a process sees: `.env` first, the real environment over it.

    Same precedence as pydantic-settings, so the report and `Settings` agree. Empty strings
    count as absent, as an unset variable would.
    """
    merged: dict[str, str] = {}
    if ENV_FILE.exists() and os.environ.get("OPSLOOP_IGNORE_DOTENV") != "1":
        merged.update({k: v for k, v in dotenv_values(ENV_FILE).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return {k: v for k, v in merged.items() if v != ""}


def service_keys(service: str) -> tuple[list[str], list[str]]:
    """(required, optional) key names for one service, in schema order."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
    required: list[str] = []
    optional: list[str] = []
    for key, spec in load_schema()["properties"].items():
        if service not in spec.get("x-services", []):
            continue
        (required if service in spec.get("x-required-by", []) else optional).append(key)
    return required, optional


def secret_keys() -> frozenset[str]:
    """Keys whose values must never leave the process."""
    return frozenset(k for k, s in load_schema()["properties"].items() if s.get("x-secret"))


def _ajv_message(error: jsonschema.ValidationError) -> str:
    """An ajv-style message that never quotes the offending value (it may be a secret)."""
    v = error.validator_value
    return {
        "required": f"must have required property '{v[0] if isinstance(v, list) else v}'",
        "minLength": f"must NOT have fewer than {v} characters",
        "maxLength": f"must NOT have more than {v} characters",
        "pattern": f'must match pattern "{v}"',
        "type": f"must be {v}",
        "format": f'must match format "{v}"',
    }.get(str(error.validator), f"must satisfy {error.validator}")


@dataclass
class ConfigReport:
    """The `/config/validate` answer for one service."""

    service: str
    required: dict[str, str] = field(default_factory=dict)
    optional: dict[str, str] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "status": "ok" if self.ok else "error",
            "required": self.required,
            "optional": self.optional,
            "errors": self.errors,
        }

    def summary(self) -> str:
        """One line per problem, naming the key and the rule, for boot failures and the CLI."""
        lines = []
        for err in self.errors:
            key = err["params"].get("missingProperty") or err["instancePath"].lstrip("/")
            lines.append(f"  {key}: {err['message']}")
        return "\n".join(lines)


def validate_config(service: str, environ: Mapping[str, str] | None = None) -> ConfigReport:
    """Check one service's keys against the schema; the report names keys, never values."""
    env = raw_environment(environ)
    required, optional = service_keys(service)
    props = load_schema()["properties"]
    sub_schema = {
        "type": "object",
        "properties": {k: props[k] for k in required + optional},
        "required": required,
    }
    report = ConfigReport(service=service)
    report.required = {k: "present" if k in env else "missing" for k in required}
    report.optional = {k: "present" if k in env else "absent" for k in optional}
    validator = jsonschema.Draft202012Validator(sub_schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    instance = {k: env[k] for k in required + optional if k in env}
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
        if error.validator == "required":
            missing = error.message.split("'")[1]
            params: dict[str, Any] = {"missingProperty": missing}
            path, message = "", f"must have required property '{missing}'"
        else:
            params = {"limit" if "Length" in str(error.validator) else str(error.validator): error.validator_value}
            path, message = "/" + "/".join(str(p) for p in error.path), _ajv_message(error)
        report.errors.append({"instancePath": path, "message": message, "keyword": error.validator, "params": params})
    return report


def require_valid_config(service: str) -> None:
    """Refuse to start: print every bad key to stderr and exit 2, without a traceback."""
    report = validate_config(service)
    if not report.ok:
        sys.stderr.write(
            f"opsloop {service}: configuration invalid, refusing to start:\n{report.summary()}\n"
            "See infra/config.schema.json and .env.example; `opsloop config doctor` prints the full report.\n"
        )
        raise SystemExit(2)
