"""Configuration: `infra/config.schema.json` is the source of truth, `Settings` is its typed view.

Every process validates its environment against the schema at boot (`require_valid_config`)
and refuses to start with a report naming each missing or malformed key. Reports never carry a
value, only key names and rule names, so they are safe to print, log and return over HTTP.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema
from dotenv import dotenv_values
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
    required, optional = [], []
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


class Settings(BaseSettings):
    """Typed settings. Field names and defaults mirror infra/config.schema.json (a test compares them)."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", env_ignore_empty=True)

    BASIC_AUTH_USER: str | None = None
    BASIC_AUTH_PASS: str | None = Field(default=None, repr=False)
    INTERNAL_KEY: str | None = Field(default=None, repr=False)
    SESSION_SECRET: str | None = Field(default=None, repr=False)
    DATABASE_URL: str | None = Field(default=None, repr=False)
    POSTGRES_URL: str | None = Field(default=None, repr=False)
    REDIS_URL: str | None = Field(default=None, repr=False)
    OPSLOOP_URL: str = "http://127.0.0.1:3000"
    LOGGING_URL: str | None = None
    ECHO_AGENT_URL: str = "http://127.0.0.1:3001"
    WS_ALLOWED_ORIGINS: str = "http://127.0.0.1:3000,http://localhost:3000"
    DISPATCH_CONCURRENCY: int = 64
    LOG_RETENTION_DAYS: int = 30
    MAX_BODY_BYTES: int = 1048576
    OPSLOOP_HTTP_MAX_HEADER_BYTES: int = 65536
    OPSLOOP_HTTP_MAX_HEADERS: int = 100
    OPSLOOP_HTTP_MAX_URL_BYTES: int = 8192
    OPSLOOP_HTTP_HEADER_TIMEOUT_S: float = 5
    OPSLOOP_HTTP_KEEPALIVE_S: float = 5
    OPSLOOP_LOG_REPEAT_WINDOW_S: float = 60
    RENDER_API_TOKEN: str | None = Field(default=None, repr=False)
    RENDER_API_BASE_URL: str = "https://api.render.com/v1"
    RENDER_OWNER_ID: str | None = None
    RENDER_MONITOR_SERVICES: str | None = None
    RENDER_MONITOR_INTERVAL_MS: int = 60000
    RENDER_STATIC_SITE_ROOT_DIR: str = ""
    RENDER_STATIC_SITE_PUBLISH_PATH: str = ".web/build/client"
    RENDER_STATIC_SITE_BUILD_COMMAND: str = "pip install -r requirements.txt && reflex export --frontend-only --no-zip"
    OPSLOOP_DISPATCH: Literal["0", "1"] = "1"
    OPSLOOP_LEASE_S: float = 15
    OPSLOOP_AGENT_WAIT_S: float = 300
    OPSLOOP_SSE_HEARTBEAT_S: float = 15
    OPSLOOP_STREAM_QUEUE: int = 2000
    OPSLOOP_RENDER_FIX_MAX: int = 3
    OPSLOOP_RENDER_FIX_WINDOW_S: float = 3600
    OPSLOOP_RENDER_REPO: str | None = None
    OPSLOOP_RENDER_BRANCH: str | None = None
    OPSLOOP_PUBLIC_URL: str | None = None
    OPSLOOP_DATA_DIR: str | None = None
    OPSLOOP_TRUSTED_PROXIES: str = ""
    OPSLOOP_SESSION_MAX_AGE_S: float = 43200
    OPSLOOP_IGNORE_DOTENV: Literal["0", "1"] = "0"

    @field_validator("OPSLOOP_URL", "LOGGING_URL", "ECHO_AGENT_URL")
    @classmethod
    def _with_scheme(cls, value: str | None) -> str | None:
        """Render's `fromService … hostport` gives `host:port`: services talk plain HTTP inside."""
        if value and not value.startswith(("http://", "https://")):
            return "http://" + value
        return value

    @property
    def database_url(self) -> str | None:
        """DATABASE_URL, else the earlier system's POSTGRES_URL, normalised for psycopg."""
        url = self.DATABASE_URL or self.POSTGRES_URL
        if not url:
            return None
        for prefix in ("postgresql+psycopg://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql://" + url[len(prefix) :]
        return url

    @property
    def allowed_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.WS_ALLOWED_ORIGINS.split(",") if o.strip()]

    @property
    def monitored_services(self) -> list[str]:
        return [s.strip() for s in (self.RENDER_MONITOR_SERVICES or "").split(",") if s.strip()]


@functools.cache
def get_settings() -> Settings:
    """Process-wide settings (read once; tests clear the cache after changing the environment).

    OPSLOOP_IGNORE_DOTENV=1 (test processes) keeps a developer's .env out, as `raw_environment` does."""
    if os.environ.get("OPSLOOP_IGNORE_DOTENV") == "1":
        return Settings(_env_file=None)
    return Settings()
