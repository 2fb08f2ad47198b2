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
HOSTILE_NEXT = [
    "https://evil.example/",
    "http://evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "javascript%3Aalert(1)",
    "%6A%61vascript:alert(1)",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\t/evil.example",
    "data:text/html,<script>alert(1)</script>",
]
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
            httpx.post(echo.url + "/echo", content=b"{bad", headers={"X-Internal-Key": KEY, "content-type": "application/json"}),
            httpx.post(echo.url + "/echo", content=b"{}", headers={"X-Internal-Key": KEY}),  # not JSON by its type: 415
            httpx.post(echo.url + "/echo", json={"traceId": 5}, headers={"X-Internal-Key": KEY}),
        ]
    statuses = sorted({r.status_code for r in answers})
    assert statuses == [400, 401, 403, 404, 405, 409, 413, 415, 422], statuses
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


def login_cookie(proc: Proc, **headers: str) -> str:
    resp = httpx.post(proc.url + "/auth/login", data={"username": USER, "password": PASSWORD}, headers=headers, timeout=10)
    assert resp.status_code == 303, resp.text
    return resp.cookies["opsloop_session"]


def session_id(value: str) -> str:
    """The `sessions` row a cookie names (its random id, hashed), read with the test's SESSION_SECRET."""
    import hashlib

    from itsdangerous import URLSafeTimedSerializer

    raw = URLSafeTimedSerializer(SECRETS["SESSION_SECRET"], salt="opsloop-session-v2").loads(value)
    return hashlib.sha256(raw.encode()).hexdigest()


def with_cookie(proc: Proc, value: str) -> httpx.Client:
    return httpx.Client(base_url=proc.url, cookies={"opsloop_session": value}, timeout=10)


def test_session_cookie_is_httponly_and_samesite(app: Proc) -> None:
    with httpx.Client(base_url=app.url, timeout=10) as c:
        plain = c.post("/auth/login", data={"username": USER, "password": PASSWORD, "next": "/dashboard/tasks"})
        claimed_tls = c.post("/auth/login", data={"username": USER, "password": PASSWORD}, headers={"X-Forwarded-Proto": "https"})
    assert plain.status_code == 303 and plain.headers["location"] == "/dashboard/tasks"
    cookie = plain.headers["set-cookie"].lower()
    assert cookie.startswith("opsloop_session=")
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    # X-Forwarded-Proto from a peer that is not a configured proxy is not believed
    assert "secure" not in claimed_tls.headers["set-cookie"].lower()


def test_secure_cookie_behind_a_trusted_proxy(database_url: str) -> None:
    proc = start_app(database_url, "security-proxy", OPSLOOP_TRUSTED_PROXIES="127.0.0.1/32, ::1")
    try:
        with httpx.Client(base_url=proc.url, timeout=10) as c:
            behind_tls = c.post("/auth/login", data={"username": USER, "password": PASSWORD}, headers={"X-Forwarded-Proto": "https"})
            behind_plain = c.post("/auth/login", data={"username": USER, "password": PASSWORD}, headers={"X-Forwarded-Proto": "http"})
        assert "secure" in behind_tls.headers["set-cookie"].lower()
        assert "secure" not in behind_plain.headers["set-cookie"].lower()
    finally:
        proc.stop()


@pytest.mark.parametrize("target", ["app", "dashboard"])
def test_login_next_is_a_same_origin_path_only(request: pytest.FixtureRequest, target: str) -> None:
    proc: Proc = request.getfixturevalue(target)
    hostile = [*HOSTILE_NEXT, "/\\evil.example", "/%2F%2Fevil.example", "/%5Cevil.example", "/%09/evil.example"]
    with httpx.Client(base_url=proc.url, timeout=10) as c:
        for value in hostile:
            ok = c.post("/auth/login", data={"username": USER, "password": PASSWORD, "next": value})
            assert ok.status_code == 303 and ok.headers["location"] == "/", (value, ok.headers["location"])
            bad = c.post("/auth/login", data={"username": USER, "password": "wrong", "next": value})
            assert bad.headers["location"] == "/login?error=1&next=/", (value, bad.headers["location"])
        fine = c.post("/auth/login", data={"username": USER, "password": PASSWORD, "next": "/dashboard/tasks?status=error"})
        assert fine.headers["location"] == "/dashboard/tasks?status=error"


def test_logout_revokes_the_session_on_http(app: Proc) -> None:
    value = login_cookie(app)
    with with_cookie(app, value) as c:
        assert c.get("/tasks").status_code == 200
        out = c.post("/auth/logout")
        assert out.status_code == 303 and out.headers["location"] == "/login"
    with with_cookie(app, value) as c:  # the same cookie, kept by whoever copied it
        assert c.get("/tasks").status_code == 401
    with with_cookie(app, login_cookie(app)) as c:  # a new login is a new session
        assert c.get("/tasks").status_code == 200


def test_expired_session_is_refused(app: Proc) -> None:
    value = login_cookie(app)
    with with_cookie(app, value) as c:
        assert c.get("/tasks").status_code == 200
        expired = query(app.env["DATABASE_URL"], "UPDATE sessions SET expires_at = now() WHERE id = %(id)s RETURNING id", {"id": session_id(value)})
        assert len(expired) == 1
        wait_for(lambda: c.get("/tasks").status_code == 401, 10, what="the expired session to be refused")


def test_session_survives_on_another_instance_and_logout_ends_it_there(database_url: str, app: Proc) -> None:
    """Two instances share sessions (and the generated signing secret, when SESSION_SECRET is unset)."""
    env = {k: v for k, v in ENV.items() if k != "SESSION_SECRET"}
    one = app_instance(database_url, name="security-nosecret-1", **env).start()
    two = app_instance(database_url, name="security-nosecret-2", **env).start()
    try:
        value = login_cookie(one)
        with with_cookie(two, value) as c:
            assert c.get("/tasks").status_code == 200
        with with_cookie(one, value) as c:
            assert c.post("/auth/logout").status_code == 303
        with with_cookie(two, value) as c:
            wait_for(lambda: c.get("/tasks").status_code == 401, 10, what="instance two to see the logout")
        secret = query(database_url, "SELECT value FROM app_secrets WHERE name = 'session_secret'")
        assert len(secret) == 1 and KEY not in secret[0]["value"]
    finally:
        one.stop()
        two.stop()


def minted_cookies(internal_key: str, user: str = USER) -> list[str]:
    """Cookies an agent could sign with what it holds: the earlier derivation HMAC(INTERNAL_KEY), and
    the key itself, in the earlier payload shape and in the current one."""
    import hashlib
    import hmac

    from itsdangerous import URLSafeTimedSerializer

    derived = hmac.new(internal_key.encode(), b"opsloop-session-v1", hashlib.sha256).hexdigest()
    out = []
    for secret in (derived, internal_key):
        out.append(URLSafeTimedSerializer(secret, salt="opsloop-dashboard-session").dumps({"u": user}))
        out.append(URLSafeTimedSerializer(secret, salt="opsloop-session-v2").dumps(secrets.token_urlsafe(32)))
    return out


def test_cookie_minted_from_the_internal_key_is_refused(database_url: str, app: Proc) -> None:
    env = {k: v for k, v in ENV.items() if k != "SESSION_SECRET"}  # the generated secret, not one from the env
    proc = app_instance(database_url, name="security-minted", **env).start()
    try:
        for target in (app, proc):
            for value in minted_cookies(KEY):
                with with_cookie(target, value) as c:
                    assert c.get("/tasks").status_code == 401, value
    finally:
        proc.stop()


# -- limiter -----------------------------------------------------------------------------------


def from_address(proc: Proc, address: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x.y.z is this machine's)."""
    return httpx.Client(base_url=proc.url, timeout=30, transport=httpx.HTTPTransport(local_address=address))


async def concurrent_logins(url: str, n: int, password: str, headers: dict[str, str] | None = None) -> list[httpx.Response]:
    import asyncio

    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as c:
        data = {"username": USER, "password": password}
        return await asyncio.gather(*(c.post("/auth/login", data=data, headers=headers) for _ in range(n)))


def evaluated(responses: list[httpx.Response]) -> int:
    """Attempts whose password was checked (a 303 either way); the rest must be 429."""
    assert all(r.status_code in (303, 429) for r in responses), {r.status_code for r in responses}
    for r in responses:
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1 and "set-cookie" not in r.headers
            assert "Too many failed logins" in r.json()["error"]
    return sum(r.status_code == 303 for r in responses)


@pytest.fixture
def limited(database_url: str) -> Iterator[Proc]:
    """A fresh instance per test: the limiter's memory is per process."""
    proc = start_app(database_url, "security-limiter")
    yield proc
    proc.stop()


def test_concurrent_guessing_is_throttled(limited: Proc) -> None:
    import asyncio

    responses = asyncio.run(concurrent_logins(limited.url, 300, "wrong-guess"))
    checked = evaluated(responses)
    assert checked <= 5, f"{checked} of 300 concurrent wrong logins were evaluated"


@pytest.mark.parametrize("peer", ["127.0.0.1", "127.0.0.3"])  # 127.0.0.1: uvicorn's own proxy handling trusts it
def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(limited: Proc, peer: str) -> None:
    """Each guess claims another X-Forwarded-For address: all are counted under the real peer."""
    with from_address(limited, peer) as c:
        answers = [
            c.post("/auth/login", data={"username": USER, "password": f"guess-{i}"}, headers={"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(40)
        ]
    assert evaluated(answers) <= 5
    # and the spoofed addresses were not charged: one of them logs in at once
    with from_address(limited, "127.0.0.4") as c:
        ok = c.post("/auth/login", data={"username": USER, "password": PASSWORD}, headers={"X-Forwarded-For": "203.0.113.7"})
    assert ok.status_code == 303 and "opsloop_session=" in ok.headers["set-cookie"]


def test_owner_logs_in_from_another_address_during_an_attack(limited: Proc) -> None:
    import asyncio

    attacker = httpx.AsyncHTTPTransport(local_address="127.0.0.5")

    async def attack() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=limited.url, timeout=60, transport=attacker) as c:
            return await asyncio.gather(*(c.post("/auth/login", data={"username": USER, "password": f"g{i}"}) for i in range(100)))

    assert evaluated(asyncio.run(attack())) <= 5
    with from_address(limited, "127.0.0.6") as owner:
        first = owner.post("/auth/login", data={"username": USER, "password": PASSWORD})
    assert first.status_code == 303 and "opsloop_session=" in first.headers["set-cookie"]


def test_owner_behind_a_trusted_proxy_is_told_apart_from_the_attacker(database_url: str) -> None:
    proc = start_app(database_url, "security-limiter-proxy", OPSLOOP_TRUSTED_PROXIES="127.0.0.0/8")
    try:
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            guesses = [
                c.post("/auth/login", data={"username": USER, "password": f"g{i}"}, headers={"X-Forwarded-For": "198.51.100.66"}) for i in range(20)
            ]
            owner = c.post("/auth/login", data={"username": USER, "password": PASSWORD}, headers={"X-Forwarded-For": "192.0.2.10"})
        assert evaluated(guesses) <= 5
        assert owner.status_code == 303 and "opsloop_session=" in owner.headers["set-cookie"]
    finally:
        proc.stop()


def test_basic_auth_guessing_is_throttled_per_address(limited: Proc) -> None:
    import asyncio

    async def guess() -> list[httpx.Response]:
        transport = httpx.AsyncHTTPTransport(local_address="127.0.0.7")
        async with httpx.AsyncClient(base_url=limited.url, timeout=60, transport=transport, limits=httpx.Limits(max_connections=100)) as c:
            return await asyncio.gather(*(c.get("/tasks", auth=(USER, f"guess-{i}")) for i in range(200)))

    answers = asyncio.run(guess())
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= 5, f"{statuses.count(401)} of 200 concurrent Basic guesses were evaluated"
    assert all(int(r.headers["retry-after"]) >= 1 for r in answers if r.status_code == 429)
    with from_address(limited, "127.0.0.8") as owner:
        assert owner.get("/tasks", auth=(USER, PASSWORD)).status_code == 200


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


# -- CSRF and content types --------------------------------------------------------------------


def task_count(proc: Proc, corr: str) -> int:
    return query(proc.env["DATABASE_URL"], "SELECT count(*) AS n FROM tasks WHERE correlation_id = %(c)s", {"c": corr})[0]["n"]


@pytest.mark.parametrize("target", ["app", "dashboard"])
def test_json_routes_refuse_other_content_types(request: pytest.FixtureRequest, target: str) -> None:
    proc: Proc = request.getfixturevalue(target)
    corr = "csrf-ctype-" + secrets.token_hex(4)
    body = f'{{"type":"echo","source":"csrf","correlationId":"{corr}"}}'
    with operator(proc) as c:
        answers = [
            c.post("/task", content=body, headers={"content-type": "text/plain"}),  # the hot route
            c.post("/task", content=body),  # no content type at all
            c.post("/task", content=body, headers={"content-type": "text/plain", "Origin": ALLOWED}),  # the full stack
            c.post("/task", data={"type": "echo", "source": "csrf", "correlationId": corr}),
            c.post("/log", content='{"service":"csrf","message":"x"}', headers={"content-type": "text/plain;charset=UTF-8"}),
            c.post("/task/event", content="{}", headers={"content-type": "application/x-www-form-urlencoded"}),
            c.patch(f"/task/{create(c, 'echo')['id']}", content='{"ifVersion":1}', headers={"content-type": "text/plain"}),
        ]
        for r in answers:
            assert r.status_code == 415, (r.request.method, r.request.url.path, r.status_code, r.text)
            assert r.json() == {"error": "Content-Type must be application/json"}
        assert task_count(proc, corr) == 0
        ok = c.post("/task", content=body, headers={"content-type": "Application/JSON; charset=utf-8"})
        assert ok.status_code == 202, ok.text
        assert task_count(proc, corr) == 1


@pytest.mark.parametrize("target", ["app", "dashboard"])
def test_cross_site_writes_are_refused(request: pytest.FixtureRequest, target: str) -> None:
    """What a page on another site can make a browser send, with the browser's cached credentials
    (Basic here; the session cookie below): refused before any route runs. Scripts (no Origin) work."""
    proc: Proc = request.getfixturevalue(target)
    corr = "csrf-cross-" + secrets.token_hex(4)
    body = {"type": "echo", "source": "csrf", "correlationId": corr}
    with operator(proc) as c:
        task = create(c, "echo", correlationId=corr + "-own")
        hostile = [
            {"Origin": FOREIGN},
            {"Origin": "null"},
            {"Origin": "http://127.0.0.1:1"},  # same site, other origin
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ]
        for headers in hostile:
            for r in (
                c.post("/task", json=body, headers=headers),
                c.post("/log", json={"service": "csrf", "message": corr}, headers=headers),
                c.post(f"/task/{task['id']}/cancel", headers=headers),
                c.post(f"/task/{task['id']}/retry", headers=headers),
            ):
                assert r.status_code == 403, (headers, r.request.url.path, r.status_code, r.text)
                assert r.json() == {"error": "Cross-site request refused"}
        assert task_count(proc, corr) == 0
        assert not c.get("/logs", params={"q": corr}).json()["logs"]
        assert c.get(f"/task/{task['id']}").json()["task"]["status"] != "cancelled"
        same = c.post("/task", json=body, headers={"Origin": proc.url, "Sec-Fetch-Site": "same-origin"})
        allowed = c.post("/task", json=body, headers={"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site"})
        script = c.post("/task", json=body)
    assert [same.status_code, allowed.status_code, script.status_code] == [202, 202, 202]
    assert task_count(proc, corr) == 3


def test_cross_site_login_and_logout_forms_are_refused(app: Proc) -> None:
    value = login_cookie(app)
    with with_cookie(app, value) as c:
        out = c.post("/auth/logout", headers={"Origin": FOREIGN})
        assert out.status_code == 403
        assert c.get("/tasks").status_code == 200  # still logged in
        forced = c.post("/auth/login", data={"username": USER, "password": PASSWORD}, headers={"Sec-Fetch-Site": "cross-site"})
        assert forced.status_code == 403 and "set-cookie" not in forced.headers
        mine = c.post("/auth/logout", headers={"Origin": app.url, "Sec-Fetch-Site": "same-origin"})
        assert mine.status_code == 303
        assert c.get("/tasks").status_code == 401


# -- security headers --------------------------------------------------------------------------

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def assert_security_headers(resp: httpx.Response) -> None:
    where = f"{resp.request.method} {resp.request.url.path} → {resp.status_code}"
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get_list(name) == [value], (where, name, resp.headers.get_list(name))
    csp = resp.headers.get_list("content-security-policy")
    assert len(csp) == 1, (where, csp)
    directives = {d.split()[0]: d.split()[1:] for d in csp[0].split("; ")}
    assert directives["frame-ancestors"] == ["'none'"], where
    assert directives["object-src"] == ["'none'"], where
    assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"], where
    assert directives["connect-src"] == ["'self'"], where


@pytest.mark.parametrize("target", ["app", "dashboard"])
def test_security_headers_on_every_answer(request: pytest.FixtureRequest, target: str) -> None:
    proc: Proc = request.getfixturevalue(target)
    with operator(proc) as c, httpx.Client(base_url=proc.url, timeout=10) as anon:
        answers = [
            anon.get("/health"),
            anon.get("/tasks"),
            anon.get("/no/such/route"),
            c.get("/tasks"),
            c.get("/docs"),
            c.get("/openapi.json"),
            c.post("/task", json={"type": "echo", "source": "headers"}),  # the hot route
            c.post("/log", json={"service": "headers", "message": "x"}),
            c.post("/task", content="x", headers={"content-type": "text/plain"}),
            anon.post("/auth/login", data={"username": USER, "password": PASSWORD}),
        ]
        if target == "dashboard":
            answers += [anon.get(p) for p in ("/", "/login", "/dashboard/tasks", "/dashboard/tasks/x")]
            assets = sorted(p for p in BUILD_DIR.glob("assets/*.js"))
            answers += [anon.get("/" + assets[0].relative_to(BUILD_DIR).as_posix())]
            answers += [anon.get("/" + next(BUILD_DIR.glob("assets/reflex-env-*.js")).relative_to(BUILD_DIR).as_posix())]
    for r in answers:
        assert r.status_code < 500, (r.request.url.path, r.status_code)
        assert_security_headers(r)


def test_csp_hashes_every_inline_script_of_the_build(dashboard: Proc) -> None:
    from opsloop.backend.api.security_headers import inline_script_hashes

    csp = httpx.get(dashboard.url + "/login", timeout=10).headers["content-security-policy"]
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src")).split()[1:]
    for page in BUILD_DIR.rglob("*.html"):
        missing = inline_script_hashes(page.read_bytes()) - set(script_src)
        assert not missing, f"{page}: inline scripts not allowed by the CSP: {missing}"
