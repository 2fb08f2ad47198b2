"""The few settings an agent reads, from its environment (and `.env`, as the app does).

Agents never import the app's `Settings`: an agent is its own process, configured by its own
keys (its report is `opsloop.shared.config_report.validate_config(<its service>)`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opsloop.shared.config_report import raw_environment
from opsloop.shared.http_server import HttpLimits

DEFAULT_OPSLOOP_URL = "http://127.0.0.1:3000"
DEFAULT_MAX_BODY_BYTES = 1_048_576
DEFAULT_REPEAT_WINDOW_S = 60.0


def with_scheme(value: str | None) -> str | None:
    """Render's `fromService … hostport` gives `host:port`: services talk plain HTTP inside."""
    if value and not value.startswith(("http://", "https://")):
        return "http://" + value
    return value


@dataclass(frozen=True)
class AgentConfig:
    opsloop_url: str  # OPSLOOP_URL: where to register, heartbeat (and ship logs, by default)
    logging_url: str | None  # LOGGING_URL: where to ship logs, when not to opsloop
    internal_key: str  # INTERNAL_KEY: sent to opsloop, and required of its calls
    max_body_bytes: int  # MAX_BODY_BYTES: the largest task body accepted
    http: HttpLimits  # OPSLOOP_HTTP_*: bounded request heads, keep-alive
    log_repeat_window_s: float  # OPSLOOP_LOG_REPEAT_WINDOW_S
    env: Mapping[str, str]  # everything it saw, for an agent's own keys (e.g. ECHO_AGENT_URL)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AgentConfig:
        """From the process's environment and `.env`; or from `environ` alone (tests)."""
        env = raw_environment() if environ is None else {k: v for k, v in environ.items() if v != ""}
        return cls(
            opsloop_url=with_scheme(env.get("OPSLOOP_URL")) or DEFAULT_OPSLOOP_URL,
            logging_url=with_scheme(env.get("LOGGING_URL")),
            internal_key=env.get("INTERNAL_KEY", ""),
            max_body_bytes=int(env.get("MAX_BODY_BYTES") or DEFAULT_MAX_BODY_BYTES),
            http=HttpLimits.from_env(env),
            log_repeat_window_s=float(env.get("OPSLOOP_LOG_REPEAT_WINDOW_S") or DEFAULT_REPEAT_WINDOW_S),
            env=env,
        )

    def url(self, key: str, default: str) -> str:
        """An agent's own URL key (its public address), with the scheme added when missing."""
        return with_scheme(self.env.get(key)) or default
