"""The local Render's datastores and env groups: ``/postgres``, ``/key-value``, ``/env-groups``.

Why: a Blueprint apply creates databases and groups before the services that use them, so the
local Render must answer those routes in Render's shapes (held to Render's OpenAPI document like
the rest of the fake).

- Postgres: given a PostgreSQL server (``postgres_url``, an admin URL), each instance is a real
  database with its own login role and a random 32-character password, so a deployed service
  really connects to it; without a server the instance is simulated (its host is Render's
  internal name and nothing answers there). ``creating`` becomes ``available`` once the
  database exists. ``reset`` drops what was created.
- Key Value: simulated (no Redis server here): the instance and its connection info exist.
- Env groups: variables (``generateValue`` supported), links to services; a linked group's
  variables reach the service's processes on its next deploy (``env_for``).
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.responses import JSONResponse, Response

_ID = "0123456789abcdefghijklmnopqrstuv"
_PASSWORD = string.ascii_letters + string.digits
POSTGRES_VERSIONS = {"11", "12", "13", "14", "15", "16", "17", "18"}
KEY_VALUE_PLANS = {"free", "starter", "standard", "pro", "pro_plus", "custom"}


def _id(prefix: str) -> str:
    return f"{prefix}-" + "".join(secrets.choice(_ID) for _ in range(20))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ident(text: str) -> str:
    """A safe PostgreSQL identifier made of the given text (lowercase letters, digits, _)."""
    cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in text.lower()).strip("_") or "db"
    return cleaned if cleaned[0].isalpha() else f"d_{cleaned}"


@dataclass
class Resources:
    """State and handlers; ``error(status, message)`` builds the fake's error exception."""

    owner_of: Callable[[str], dict[str, Any]]
    error: Callable[[int, str], Exception]
    postgres_url: str | None = None
    settle_seconds: float = 0.1
    postgres: dict[str, dict[str, Any]] = field(default_factory=dict)
    connections: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    key_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    services: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    _created: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (database, role) on the server
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)

    def routes(self) -> list[tuple[str, str, Any]]:
        pid, kid, gid, sid, key = r"(?P<pid>[^/]+)", r"(?P<kid>[^/]+)", r"(?P<gid>[^/]+)", r"(?P<sid>[^/]+)", r"(?P<key>[^/]+)"
        return [
            ("GET", "/postgres", self.list_postgres),
            ("POST", "/postgres", self.create_postgres),
            ("GET", f"/postgres/{pid}", self.get_postgres),
            ("GET", f"/postgres/{pid}/connection-info", self.postgres_info),
            ("GET", "/key-value", self.list_key_values),
            ("POST", "/key-value", self.create_key_value),
            ("GET", f"/key-value/{kid}", self.get_key_value),
            ("GET", f"/key-value/{kid}/connection-info", self.key_value_info),
            ("GET", "/env-groups", self.list_groups),
            ("POST", "/env-groups", self.create_group),
            ("GET", f"/env-groups/{gid}", self.get_group),
            ("PUT", f"/env-groups/{gid}/env-vars/{key}", self.put_group_var),
            ("POST", f"/env-groups/{gid}/services/{sid}", self.link_group),
        ]

    # ----- Postgres ----------------------------------------------------------------------

    async def list_postgres(self, call: Any) -> Response:
        names, owners = set(call.many("name")), set(call.many("ownerId"))
        items = [(i, p) for i, p in self.postgres.items() if (not names or p["name"] in names) and (not owners or p["owner"]["id"] in owners)]
        return JSONResponse(call.page(items, "postgres"))

    async def create_postgres(self, call: Any) -> Response:
        body = self._body(call)
        name, plan, version = (self._str(body, k) for k in ("name", "plan", "version"))
        if version not in POSTGRES_VERSIONS:
            raise self.error(400, f"version must be one of {', '.join(sorted(POSTGRES_VERSIONS))}")
        owner = self.owner_of(self._str(body, "ownerId"))
        pid = _id("dpg") + "-a"
        database = f"{_ident(str(body.get('databaseName') or name))}_{''.join(secrets.choice('abcdefghijklmnopqrstuvwxyz') for _ in range(4))}"
        user = _ident(str(body.get("databaseUser") or name))
        if self.postgres_url:
            user = f"{user}_{database.rsplit('_', 1)[1]}"  # one server holds many instances: roles stay apart
        now = _now()
        self.postgres[pid] = {
            "id": pid,
            "ipAllowList": list(body.get("ipAllowList") or []),
            "createdAt": now,
            "updatedAt": now,
            "dashboardUrl": f"https://dashboard.render.com/d/{pid}",
            "databaseName": database,
            "databaseUser": user,
            "highAvailabilityEnabled": False,
            "name": name,
            "owner": owner,
            "project": None,
            "plan": plan,
            "region": str(body.get("region") or "oregon"),
            "readReplicas": [],
            "role": "primary",
            "status": "creating",
            "version": version,
            "suspended": "not_suspended",
            "suspenders": [],
            "diskAutoscalingEnabled": False,
        }
        self._spawn(self._make_database(pid, database, user))
        return JSONResponse(self.postgres[pid], status_code=201)

    async def _make_database(self, pid: str, database: str, user: str) -> None:
        password = "".join(secrets.choice(_PASSWORD) for _ in range(32))
        host, port = pid, 5432
        if self.postgres_url:
            import psycopg
            from psycopg import sql

            async with await psycopg.AsyncConnection.connect(self.postgres_url, autocommit=True) as conn:
                await conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(user), sql.Literal(password)))
                self._created.append(("", user))
                await conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), sql.Identifier(user)))
                self._created.append((database, user))
            server = urlsplit(self.postgres_url)
            host, port, query = server.hostname or "", server.port or 5432, server.query  # a unix socket: ?host=/dir
        else:
            await asyncio.sleep(self.settle_seconds)
            query = ""
        where = f"{host}:{port}" if host else ""
        url = f"postgresql://{quote(user)}:{password}@{where}/{database}" + (f"?{query}" if query else "")
        self.connections[pid] = {
            "password": password,
            "internalConnectionString": url,
            "externalConnectionString": url,
            "psqlCommand": f"PGPASSWORD={password} psql -h {host} -p {port} -U {user} {database}",
        }
        self.postgres[pid]["status"] = "available"
        self.postgres[pid]["updatedAt"] = _now()

    async def get_postgres(self, call: Any) -> Response:
        return JSONResponse(self._get(self.postgres, call.params["pid"]))

    async def postgres_info(self, call: Any) -> Response:
        pid = self._get(self.postgres, call.params["pid"])["id"]
        if pid not in self.connections:
            raise self.error(400, f"{pid} is still being created")
        return JSONResponse(self.connections[pid])

    # ----- Key Value -----------------------------------------------------------------------

    async def list_key_values(self, call: Any) -> Response:
        names, owners = set(call.many("name")), set(call.many("ownerId"))
        items = [(i, k) for i, k in self.key_values.items() if (not names or k["name"] in names) and (not owners or k["owner"]["id"] in owners)]
        return JSONResponse(call.page(items, "keyValue"))

    async def create_key_value(self, call: Any) -> Response:
        body = self._body(call)
        name, plan = self._str(body, "name"), self._str(body, "plan")
        if plan not in KEY_VALUE_PLANS:
            raise self.error(400, f"plan must be one of {', '.join(sorted(KEY_VALUE_PLANS))}")
        kid = _id("red")
        now = _now()
        self.key_values[kid] = {
            "id": kid,
            "createdAt": now,
            "updatedAt": now,
            "status": "available",
            "region": str(body.get("region") or "oregon"),
            "plan": plan,
            "name": name,
            "owner": self.owner_of(self._str(body, "ownerId")),
            "options": {"maxmemoryPolicy": str(body.get("maxmemoryPolicy") or "allkeys_lru")},
            "ipAllowList": list(body.get("ipAllowList") or []),
            "version": "8.1.4",
            "dashboardUrl": f"https://dashboard.render.com/r/{kid}",
        }
        return JSONResponse(self.key_values[kid], status_code=201)

    async def get_key_value(self, call: Any) -> Response:
        return JSONResponse(self._get(self.key_values, call.params["kid"]))

    async def key_value_info(self, call: Any) -> Response:
        kid = self._get(self.key_values, call.params["kid"])["id"]
        url = f"redis://{kid}:6379"
        return JSONResponse({"internalConnectionString": url, "externalConnectionString": url, "cliCommand": f"redis-cli -u {url}"})

    # ----- env groups ------------------------------------------------------------------------

    async def list_groups(self, call: Any) -> Response:
        names, owners = set(call.many("name")), set(call.many("ownerId"))
        meta = [self._meta(g) for g in self.groups.values() if (not names or g["name"] in names) and (not owners or g["ownerId"] in owners)]
        return JSONResponse(meta[: call.limit()])

    async def create_group(self, call: Any) -> Response:
        body = self._body(call)
        name = self._str(body, "name")
        owner = self.owner_of(self._str(body, "ownerId"))
        env = _env_list(body.get("envVars"), self.error)
        gid = _id("evg")
        now = _now()
        self.groups[gid] = {"id": gid, "name": name, "ownerId": owner["id"], "createdAt": now, "updatedAt": now, "serviceLinks": [], "env": env}
        for sid in body.get("serviceIds") or []:
            self._link(self.groups[gid], str(sid))
        return JSONResponse(self._full(self.groups[gid]), status_code=201)

    async def get_group(self, call: Any) -> Response:
        return JSONResponse(self._full(self._get(self.groups, call.params["gid"])))

    async def put_group_var(self, call: Any) -> Response:
        group = self._get(self.groups, call.params["gid"])
        body = self._body(call)
        key = call.params["key"]
        group["env"][key] = _generated() if body.get("generateValue") is True else self._str(body, "value")
        group["updatedAt"] = _now()
        return JSONResponse(self._full(group))

    async def link_group(self, call: Any) -> Response:
        group = self._get(self.groups, call.params["gid"])
        self._link(group, call.params["sid"])
        return JSONResponse(self._full(group))

    def _link(self, group: dict[str, Any], sid: str) -> None:
        service = self.services.get(sid)
        if service is None:
            raise self.error(404, f"not found: {sid}")
        if all(link["id"] != sid for link in group["serviceLinks"]):
            kind = {"static_site": "static", "web_service": "web", "private_service": "pserv", "background_worker": "worker", "cron_job": "cron"}
            group["serviceLinks"].append({"id": sid, "name": service["name"], "type": kind[service["type"]]})
            group["updatedAt"] = _now()

    def env_for(self, service_id: str) -> dict[str, str]:
        """Variables a service gets from the groups linked to it (its own win over these)."""
        out: dict[str, str] = {}
        for group in self.groups.values():
            if any(link["id"] == service_id for link in group["serviceLinks"]):
                out |= group["env"]
        return out

    # ----- plumbing --------------------------------------------------------------------------

    def _meta(self, group: Mapping[str, Any]) -> dict[str, Any]:
        return {k: group[k] for k in ("id", "name", "ownerId", "createdAt", "updatedAt", "serviceLinks")}

    def _full(self, group: Mapping[str, Any]) -> dict[str, Any]:
        return {**self._meta(group), "envVars": [{"key": k, "value": v} for k, v in group["env"].items()], "secretFiles": []}

    def _get(self, table: Mapping[str, dict[str, Any]], key: str) -> dict[str, Any]:
        if key not in table:
            raise self.error(404, f"not found: {key}")
        return table[key]

    def _body(self, call: Any) -> dict[str, Any]:
        body = call.json()
        if not isinstance(body, dict):
            raise self.error(400, "body must be a JSON object")
        return body

    def _str(self, body: Mapping[str, Any], key: str) -> str:
        value = body.get(key)
        if not isinstance(value, str) or not value:
            raise self.error(400, f"{key} is required")
        return value

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reset(self) -> None:
        """Forget everything; drop the databases and roles made on the server."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.postgres.clear()
        self.connections.clear()
        self.key_values.clear()
        self.groups.clear()
        if self.postgres_url and self._created:
            import psycopg
            from psycopg import sql

            async with await psycopg.AsyncConnection.connect(self.postgres_url, autocommit=True) as conn:
                for database, _ in reversed(self._created):
                    if database:
                        await conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
                for _, role in {(None, r) for _, r in self._created}:
                    await conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        self._created.clear()


def _generated() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _env_list(entries: Any, error: Callable[[int, str], Exception]) -> dict[str, str]:
    if not isinstance(entries, list):
        raise error(400, "envVars must be a list")
    env: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str) or not entry["key"]:
            raise error(400, "each env var needs a key")
        if entry.get("generateValue") is True:
            env[entry["key"]] = _generated()
        elif isinstance(entry.get("value"), str):
            env[entry["key"]] = entry["value"]
        else:
            raise error(400, f"env var {entry['key']}: value must be a string (or generateValue: true)")
    return env
