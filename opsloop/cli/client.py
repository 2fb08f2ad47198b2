"""A small REST client for operator commands (`seed`, `smoke`) against a local or remote opsloop.

Where: `--url`, else OPSLOOP_URL (environment or `.env`), else http://127.0.0.1:3000. Who:
BASIC_AUTH_USER / BASIC_AUTH_PASS from the environment or `.env`, read through the same settings
loader as the app, so a `.env` written by `opsloop dev` just works. Every failure becomes one
`ClientError` line naming the request and the server's `error`, never a traceback.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import httpx

from opsloop.cli.output import redact

DEFAULT_URL = "http://127.0.0.1:3000"


class ClientError(RuntimeError):
    """One line an operator can act on; `status` and `reason` (the server's `error`) when it answered."""

    def __init__(self, message: str, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(redact(message))
        self.status = status
        self.reason = redact(reason) if reason else None


def _server_error(resp: httpx.Response) -> str:
    """The server's `{error}` when it sent one, else the start of the body."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:200] or resp.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return str(body)[:200]


class Client:
    """Basic-Auth JSON calls with one-line errors; `stream()` opens an SSE response."""

    def __init__(self, url: str, user: str, password: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.auth = (user, password)
        self.http = httpx.Client(base_url=self.url, auth=self.auth, timeout=timeout)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Client:
        """Base URL and credentials from `--url`, the environment or `.env` (settings loader)."""
        from opsloop.backend.config import get_settings

        settings = get_settings()
        url = getattr(args, "url", None) or settings.OPSLOOP_URL or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            url = "http://" + url
        if not settings.BASIC_AUTH_USER or not settings.BASIC_AUTH_PASS:
            raise ClientError("no credentials: set BASIC_AUTH_USER and BASIC_AUTH_PASS (environment or .env)")
        return cls(url, settings.BASIC_AUTH_USER, settings.BASIC_AUTH_PASS)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None, auth: bool = True) -> httpx.Response:
        """The response of a 2xx; anything else raises `ClientError` with one line."""
        where = f"{method} {self.url}{path}"
        try:
            resp = self.http.request(method, path, json=json, params=params, auth=self.auth if auth else None)
        except httpx.ConnectError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else (str(exc) or type(exc).__name__)
            raise ClientError(f"cannot reach opsloop at {self.url}: {reason} (is it running? start it with `opsloop dev`, or pass --url)") from None
        except httpx.TimeoutException:
            raise ClientError(f"{where}: no answer within {self.http.timeout.read}s") from None
        except httpx.HTTPError as exc:
            raise ClientError(f"{where}: {type(exc).__name__}: {exc}") from None
        if resp.status_code == 401:
            raise ClientError(f"{where} → 401 Unauthorized: check BASIC_AUTH_USER / BASIC_AUTH_PASS", 401)
        if resp.status_code >= 400:
            reason = _server_error(resp)
            raise ClientError(f"{where} → {resp.status_code}: {reason}", resp.status_code, reason)
        return resp

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body).json()

    def health(self) -> dict[str, Any]:
        """`GET /health` without credentials (it is public); 503 raises with the server's reason."""
        return self.request("GET", "/health", auth=False).json()

    def live_agents(self) -> dict[str, list[str]]:
        """Task type → slugs of the live agents that handle it (an authenticated call: checks credentials too)."""
        out: dict[str, list[str]] = {}
        for agent in self.get("/agents")["agents"]:
            if agent.get("live"):
                for task_type in agent.get("task_types") or []:
                    out.setdefault(task_type, []).append(agent["slug"])
        return out

    def pages(self, path: str, key: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every row of a keyset-paged list (`{key: [...], next_cursor}`)."""
        cursor = None
        while True:
            body = self.get(path, **params, cursor=cursor)
            yield from body[key]
            cursor = body.get("next_cursor")
            if not cursor:
                return
