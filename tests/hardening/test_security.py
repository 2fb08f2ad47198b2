"""Security properties of a running opsloop, with distinctive secret values so a leak is findable:

- no configured secret in the built frontend (every file the dashboard serves), in logs (the
  `logs` table and the processes' log files), in error answers, or in `/config/validate`;
- login attempts are rate-limited, and the session cookie is HttpOnly and SameSite;
- CORS allows only the configured origins;
- request bodies above MAX_BODY_BYTES get 413, whether announced by Content-Length or chunked.
"""

from __future__ import annotations

import base64
import gzip
import secrets
from collections.abc import Iterator

import httpx
import pytest

from opsloop.cli.frontend import BUILD_DIR, build_frontend
from tests.support.dashboard import dashboard_process
from tests.support.processes import USER, Proc, app_instance, echo_agent, free_port, wait_for
from tests.support.tasks import create, query, wait_status

SECRETS = {
    "BASIC_AUTH_PASS": "pw-" + secrets.token_hex(12),
    "INTERNAL_KEY": "ik-" + secrets.token_hex(16),
    "SESSION_SECRET": "ss-" + secrets.token_hex(20),
    "RENDER_API_TOKEN": "rnd_" + secrets.token_hex(12),
}
PASSWORD = SECRETS["BASIC_AUTH_PASS"]
KEY = SECRETS["INTERNAL_KEY"]
ALLOWED = "http://127.0.0.1:3000"
FOREIGN = "http://evil.example"
MAX_BODY = 64 * 1024
ENV = {
    **SECRETS,
    "WS_ALLOWED_ORIGINS": f"{ALLOWED},http://localhost:3000",
    "MAX_BODY_BYTES": str(MAX_BODY),
    "RENDER_API_BASE_URL": "http://127.0.0.1:9/v1",  # a closed local port: nothing leaves the machine
}


def secret_values() -> dict[str, bytes]:
    """Each secret, and the Basic credential built from the password (header or `?auth=`)."""
    values = {k: v.encode() for k, v in SECRETS.items()}
    values["basic credential"] = base64.b64encode(f"{USER}:{PASSWORD}".encode())
    return values


def leaks(blob: bytes) -> list[str]:
    return [name for name, value in secret_values().items() if value in blob]


def start_app(database_url: str, name: str, **extra: str) -> Proc:
    return app_instance(database_url, name=name, **ENV, **extra).start()


@pytest.fixture(scope="module")
def app(database_url: str) -> Iterator[Proc]:
    proc = start_app(database_url, "security-app")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def echo(database_url: str, app: Proc) -> Iterator[Proc]:
    proc = echo_agent(database_url, app.url, name="security-echo", **ENV).start()
    with operator(app) as c:
        wait_for(lambda: any(a["slug"] == "echo" and a["url"] == proc.url for a in c.get("/agents").json()["agents"]), 15, what="echo agent")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def dashboard(database_url: str) -> Iterator[Proc]:
    """The dashboard, rebuilt with the secrets in the build's environment (a stale build made with
    other values would prove nothing), then served with them."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in SECRETS.items():
            mp.setenv(key, value)
        build_frontend(force=True)
    proc = dashboard_process(database_url, name="security-dashboard", port=free_port(), **ENV).start(timeout=120)
    yield proc
    proc.stop()


def operator(proc: Proc) -> httpx.Client:
    return httpx.Client(base_url=proc.url, auth=(USER, PASSWORD), timeout=10, follow_redirects=False)


def service(proc: Proc) -> httpx.Client:
    return httpx.Client(base_url=proc.url, headers={"X-Internal-Key": KEY}, timeout=10)


# -- secrets -----------------------------------------------------------------------------------


def test_built_frontend_has_no_secret(dashboard: Proc) -> None:
    files = sorted(p for p in BUILD_DIR.rglob("*") if p.is_file())
    assert len(files) > 20, f"only {len(files)} built files under {BUILD_DIR}"
    found: dict[str, list[str]] = {}
    with httpx.Client(base_url=dashboard.url, timeout=10) as c:
        for path in files:
            rel = "/" + path.relative_to(BUILD_DIR).as_posix()
            resp = c.get(rel)
            assert resp.status_code == 200, f"the dashboard does not serve {rel}: {resp.status_code}"
            served = resp.content
            if rel.endswith(".gz"):
                served = gzip.decompress(served)
            on_disk = gzip.decompress(path.read_bytes()) if rel.endswith(".gz") else path.read_bytes()
            if hit := leaks(served) + leaks(on_disk):
                found[rel] = hit
        for page in ("/", "/login", "/dashboard/tasks"):  # the pages as a browser gets them
            if hit := leaks(c.get(page, follow_redirects=True).content):
                found[page] = hit
    assert not found, f"secrets in the served frontend: {found}"


@pytest.fixture(scope="module")
def activity(app: Proc, echo: Proc, dashboard: Proc) -> str:
    """Traffic that touches every credential: Basic and key calls, a task through the agent, the
    config matrix (the app calls the agent with the key), logins right and wrong, refusals."""
    with operator(app) as c, service(app) as s:
        task = create(c, "echo", {"hello": "security"})
        wait_status(c, task["id"])
        assert c.get("/config/matrix").status_code == 200
        assert s.get("/tasks").status_code == 200
        assert c.post("/auth/login", data={"username": USER, "password": PASSWORD}).status_code == 303
        assert c.post("/auth/login", data={"username": USER, "password": PASSWORD + "x"}).status_code == 303
        assert httpx.get(app.url + "/tasks", auth=(USER, PASSWORD[:-1])).status_code == 401
        assert httpx.post(echo.url + "/echo", json={}, auth=(USER, PASSWORD)).status_code == 403
        with httpx.stream("GET", app.url + "/logs/stream", params={"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}) as r:
            assert r.status_code == 200

        def agent_logged() -> bool:
            return bool(c.get("/logs", params={"traceId": task["traceId"], "q": "ECHO_RESPONSE"}).json()["logs"])

        wait_for(agent_logged, 15, what="the echo agent's log lines")
    with operator(dashboard) as d:
        assert d.post("/auth/login", data={"username": USER, "password": PASSWORD}).status_code == 303
        assert d.get("/config/validate").status_code == 200
    return task["traceId"]


def test_no_secret_in_logs(activity: str, app: Proc, echo: Proc, dashboard: Proc) -> None:
    rows = query(app.env["DATABASE_URL"], "SELECT id, service, message, coalesce(data::text, '') AS data FROM logs")
    assert any(r["message"] == "ECHO_RESPONSE" for r in rows)
    in_table = {r["id"]: hit for r in rows if (hit := leaks(f"{r['service']} {r['message']} {r['data']}".encode()))}
    assert not in_table, f"secrets in log rows: {in_table}"
    for proc in (app, echo, dashboard):
        assert proc.log_path.exists()
        assert not leaks(proc.log_path.read_bytes()), f"a secret in {proc.log_path}"


def test_no_secret_in_error_answers(app: Proc, echo: Proc) -> None:
    """Errors of every kind, each sent with real credentials (so an echoed header would show)."""
    with operator(app) as c, service(app) as s:
        answers = [
            c.get("/task/not-a-uuid"),
            c.post("/task", json={}),
            c.post("/task", json={"type": "no-such-type", "source": "security"}),
            c.get("/tasks", params={"limit": "0"}),
            c.post("/log", content=b"{not json", headers={"content-type": "application/json"}),
            c.post("/agents/register", json={"slug": "x", "url": "http://127.0.0.1:9", "taskTypes": ["x"]}),
            c.get("/no/such/route"),
            c.delete("/health"),
            c.post("/log", content=b"x" * (MAX_BODY + 1), headers={"content-type": "application/json"}),
            s.patch(f"/task/{create(c, 'echo')['id']}", json={"ifVersion": 999, "status": "done"}),
            httpx.get(app.url + "/tasks", auth=(USER, PASSWORD + "x")),
            httpx.get(app.url + "/tasks", headers={"X-Internal-Key": KEY + "x"}),
            httpx.post(echo.url + "/echo", json={}, auth=(USER, PASSWORD)),
            httpx.post(echo.url + "/echo", content=b"{bad", headers={"X-Internal-Key": KEY}),
            httpx.post(echo.url + "/echo", json={"traceId": 5}, headers={"X-Internal-Key": KEY}),
        ]
    statuses = sorted({r.status_code for r in answers})
    assert statuses == [400, 401, 403, 404, 405, 409, 413, 422], statuses
    for r in answers:
        raw = r.content + b"".join(k + b": " + v for k, v in r.headers.raw)
        assert not leaks(raw), f"{r.request.method} {r.request.url.path} → {r.status_code} carries {leaks(raw)}"
        assert set(r.json()) == {"error"}, f"{r.request.method} {r.request.url.path} → {r.text}"


def test_config_reports_name_keys_never_values(app: Proc, echo: Proc, dashboard: Proc) -> None:
    with operator(app) as c, service(echo) as agent, operator(dashboard) as d:
        reports = [c.get("/config/validate"), c.get("/config/matrix"), agent.get("/config/validate"), d.get("/config/validate")]
    for r in reports:
        assert r.status_code == 200, r.text
        assert not leaks(r.content), f"{r.request.url} carries {leaks(r.content)}"
    app_report = reports[0].json()
    assert app_report["required"]["BASIC_AUTH_PASS"] == "present"
    assert app_report["optional"]["SESSION_SECRET"] == "present"
    assert app_report["optional"]["RENDER_API_TOKEN"] == "present"


# -- sessions ----------------------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite(app: Proc) -> None:
    with httpx.Client(base_url=app.url, timeout=10) as c:
        plain = c.post("/auth/login", data={"username": USER, "password": PASSWORD, "next": "/dashboard/tasks"})
        behind_tls = c.post("/auth/login", data={"username": USER, "password": PASSWORD}, headers={"X-Forwarded-Proto": "https"})
    assert plain.status_code == 303 and plain.headers["location"] == "/dashboard/tasks"
    cookie = plain.headers["set-cookie"].lower()
    assert cookie.startswith("opsloop_session=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert "secure" in behind_tls.headers["set-cookie"].lower()  # behind TLS (proxy from loopback): Secure too


def test_login_attempts_are_rate_limited(database_url: str) -> None:
    """Ten wrong passwords from one address, then 429 with Retry-After, even for the right one."""
    proc = start_app(database_url, "security-ratelimit")
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as c:
            first = c.post("/auth/login", data={"username": USER, "password": PASSWORD})
            assert first.status_code == 303 and "opsloop_session=" in first.headers["set-cookie"]
            wrong = [c.post("/auth/login", data={"username": USER, "password": f"guess-{i}"}) for i in range(10)]
            assert all(r.status_code == 303 and "error=1" in r.headers["location"] for r in wrong)
            assert all("set-cookie" not in r.headers for r in wrong)
            blocked = c.post("/auth/login", data={"username": USER, "password": PASSWORD})
        assert blocked.status_code == 429, blocked.text
        assert 0 < int(blocked.headers["retry-after"]) <= 60
        assert "set-cookie" not in blocked.headers
        assert "Too many failed logins" in blocked.json()["error"]
    finally:
        proc.stop()


# -- CORS --------------------------------------------------------------------------------------


def preflight(url: str, origin: str) -> httpx.Response:
    headers = {"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    return httpx.options(url + "/tasks", headers=headers, timeout=10)


def assert_cors_only_configured(proc: Proc) -> None:
    allowed = preflight(proc.url, ALLOWED)
    assert allowed.status_code == 200 and allowed.headers.get("access-control-allow-origin") == ALLOWED
    foreign = preflight(proc.url, FOREIGN)
    assert foreign.headers.get("access-control-allow-origin") is None, f"preflight from {FOREIGN} allowed: {dict(foreign.headers)}"
    assert foreign.status_code >= 400
    simple = httpx.get(proc.url + "/tasks", headers={"Origin": FOREIGN}, auth=(USER, PASSWORD), timeout=10)
    assert simple.headers.get("access-control-allow-origin") is None
    # the hot routes (served ahead of the middleware stack) answer browsers like any route
    for path, body in (("/log", {"service": "cors", "message": "from a page"}), ("/task", {"type": "no-such-type"})):
        mine = httpx.post(proc.url + path, json=body, headers={"Origin": ALLOWED}, auth=(USER, PASSWORD), timeout=10)
        assert mine.headers.get("access-control-allow-origin") == ALLOWED, (path, mine.status_code, dict(mine.headers))
        theirs = httpx.post(proc.url + path, json=body, headers={"Origin": FOREIGN}, auth=(USER, PASSWORD), timeout=10)
        assert theirs.headers.get("access-control-allow-origin") is None, (path, dict(theirs.headers))


def test_cors_allows_only_configured_origins(app: Proc) -> None:
    assert_cors_only_configured(app)


def test_cors_on_the_dashboard_process(dashboard: Proc) -> None:
    assert_cors_only_configured(dashboard)


# -- body size ---------------------------------------------------------------------------------


def chunks(total: int, size: int = 8192) -> Iterator[bytes]:
    """A JSON array of log entries, sent chunked (no Content-Length), `total` bytes or a bit more."""
    entry = b'{"service":"security-chunked","message":"' + b"x" * (size - 60) + b'"},'
    yield b"["
    sent = 1
    while sent < total:
        yield entry
        sent += len(entry)
    yield b'{"service":"security-chunked","message":"end"}]'


@pytest.mark.parametrize("target", ["app", "dashboard"])
def test_bodies_above_the_limit_get_413(request: pytest.FixtureRequest, target: str) -> None:
    proc: Proc = request.getfixturevalue(target)
    with operator(proc) as c:
        under = c.post("/log", content=b"".join(chunks(MAX_BODY // 2)), headers={"content-type": "application/json"})
        assert under.status_code == 202, under.text
        before = query(proc.env["DATABASE_URL"], "SELECT count(*) AS n FROM logs WHERE service = 'security-chunked'")[0]["n"]
        by_length = c.post("/log", content=b"".join(chunks(MAX_BODY + 1)), headers={"content-type": "application/json"})
        chunked = c.post("/log", content=chunks(MAX_BODY * 4), headers={"content-type": "application/json"})
        task = c.post("/task", content=chunks(MAX_BODY * 4), headers={"content-type": "application/json"})
    for resp in (by_length, chunked, task):
        assert resp.status_code == 413, f"{resp.request.url.path} ({resp.request.headers.get('transfer-encoding', 'length')}): {resp.status_code}"
        assert "too large" in resp.json()["error"]
    assert "content-length" not in chunked.request.headers and chunked.request.headers["transfer-encoding"] == "chunked"
    after = query(proc.env["DATABASE_URL"], "SELECT count(*) AS n FROM logs WHERE service = 'security-chunked'")[0]["n"]
    assert after == before, "a refused body was stored"


def test_agent_refuses_bodies_above_its_limit(echo: Proc) -> None:
    big = httpx.post(echo.url + "/echo", content=b'{"payload":"' + b"x" * MAX_BODY + b'"}', headers={"X-Internal-Key": KEY}, timeout=10)
    assert big.status_code == 413, big.text  # the agent's own MAX_BODY_BYTES (64 KiB here), not the default 1 MiB
    chunked = httpx.post(
        echo.url + "/echo", content=chunks(MAX_BODY * 4), headers={"X-Internal-Key": KEY, "content-type": "application/json"}, timeout=10
    )
    assert "content-length" not in chunked.request.headers
    assert chunked.status_code == 413 and "too large" in chunked.json()["error"], chunked.text
