"""Configuration: `infra/config.schema.json` is the source of truth, `Settings` is its typed view.

Every process validates its environment against the schema at boot (`require_valid_config`, in
`opsloop.shared.config_report`, which the agents use too) and refuses to start with a report
naming each missing or malformed key.
"""

from __future__ import annotations

import functools
import os
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from opsloop.shared.config_report import (
    ENV_FILE,
    PROJECT_ROOT,
    SCHEMA_PATH,
    SERVICES,
    ConfigReport,
    load_schema,
    raw_environment,
    require_valid_config,
    secret_keys,
    service_keys,
    validate_config,
)

__all__ = [
    "ENV_FILE",
    "PROJECT_ROOT",
    "SCHEMA_PATH",
    "SERVICES",
    "ConfigReport",
    "Settings",
    "get_settings",
    "load_schema",
    "raw_environment",
    "require_valid_config",
    "secret_keys",
    "service_keys",
    "validate_config",
]


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
        return Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings init option, not a field
    return Settings()
